/*
 * u_memory.h — Mesa's util/u_memory.h macros, routed through mesa_alloc.
 *
 * What it is for: existing Mesa code that uses MALLOC/CALLOC/FREE and friends moves over by
 * changing one include. Every macro allocates through the default allocator
 * (mesa_default_allocator()), so MESA_ALLOC_DEBUG layers and a replaced default see it all.
 * Inside Mesa, where most files reach util/u_memory.h through other headers, make that header
 * and util/os_memory.h include this one instead of defining the names (docs/MIGRATING.md,
 * section 1): the two cannot both define them, and including this one after Mesa's is an #error
 * that says so. All of Mesa's names are here, the cache-line ones (MESA_CACHE_LINE_SIZE and the
 * older CACHE_LINE_SIZE, EXCLUSIVE_CACHELINE, MALLOC_STRUCT_CL, CALLOC_STRUCT_CL, FREE_CL) and,
 * in C, Offset; in Mesa's tree (MESA_ALLOC_U_MEMORY_IS_MESAS) also util/os_memory.h's os_malloc,
 * os_calloc, os_realloc, os_free, os_malloc_aligned, os_realloc_aligned and os_free_aligned,
 * which Mesa code calls directly too.
 *
 * What it costs: the same as mesa_malloc/mesa_free (one indirect call over the table).
 *
 * Differences from Mesa: align_free and FREE are the same function (mesa_free), so a block from
 * align_malloc freed with FREE is fine here; REALLOC ignores its old-size argument (the table
 * knows the size). CALLOC returns NULL when count × size overflows. mem_dup(NULL, n) is NULL for
 * n > 0 (Mesa's reads address 0). The rest keeps Mesa's rules: the align_* functions round the
 * alignment up to a multiple of sizeof(void *) (on 64-bit 4 is 8 and 12 is 16; 24, not a power of
 * two after it, fails, and so does 12 on 32-bit); align_realloc allocates, copies min(old size, new
 * size) bytes and frees the old block, which it frees whether or not the new one could be had (Mesa
 * code drops its pointer on NULL), and a new size of 0 gives a new zero-size block; it never calls
 * the table's realloc, so a new alignment is no realloc with a changed one (which Vulkan forbids).
 *
 * Example:
 *   struct pipe_screen *screen = CALLOC_STRUCT(pipe_screen);
 *   float *weights = align_malloc(n * sizeof(float), 64);
 *   align_free(weights);
 *   FREE(screen);
 */
#ifndef MESA_ALLOC_U_MEMORY_H
#define MESA_ALLOC_U_MEMORY_H

#if defined(U_MEMORY_H) && !defined(MESA_ALLOC_U_MEMORY_IS_MESAS)
#error \
    "mesa_alloc/u_memory.h after Mesa's util/u_memory.h: make util/u_memory.h include mesa_alloc/u_memory.h instead of defining MALLOC and friends (docs/MIGRATING.md, section 1)"
#endif

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mesa_alloc/mesa_alloc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MALLOC(_size) mesa_malloc(_size)
#define CALLOC(_count, _size) mesa_calloc(_count, _size)
#define FREE(_ptr) mesa_free(_ptr)
#define REALLOC(_ptr, _old_size, _size) ((void)(_old_size), mesa_realloc(_ptr, _size))

#define MALLOC_STRUCT(T) (struct T *)MALLOC(sizeof(struct T))
#define CALLOC_STRUCT(T) (struct T *)CALLOC(1, sizeof(struct T))

/* a + b, or SIZE_MAX (a request that fails) when the sum does not fit. */
static inline size_t mesa_size_add_saturating(size_t a, size_t b) {
  return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* A struct followed by `more_size` bytes of variable-length data, zeroed. NULL (not a short
 * block) when the total overflows size_t. */
#define CALLOC_VARIANT_LENGTH_STRUCT(T, more_size) \
  ((struct T *)CALLOC(1, mesa_size_add_saturating(sizeof(struct T), (more_size))))

/* Mesa's alignment for the align_* functions: rounded up to a multiple of sizeof(void *), as
 * its os_malloc_aligned does before posix_memalign. One that is not a power of two after it
 * (24) still fails, as it does there. */
static inline size_t mesa_u_memory_alignment(size_t alignment) {
  if (alignment > SIZE_MAX - (sizeof(void *) - 1)) return alignment;
  return (alignment + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
}

#define align_malloc(_size, _alignment) \
  mesa_aligned_alloc(mesa_u_memory_alignment(_alignment), _size)
#define align_free(_ptr) mesa_free(_ptr)
#define align_realloc(_ptr, _old_size, _new_size, _alignment) \
  mesa_u_memory_align_realloc(_ptr, _old_size, _new_size, _alignment)

/* Mesa's align_realloc (os_realloc_aligned): a new block with min(old_size, new_size) bytes of
 * the old one, which is freed in every case, a failure included; size 0 is a new zero-size
 * block. */
static inline void *mesa_u_memory_align_realloc(void *ptr, size_t old_size, size_t new_size,
                                                size_t alignment) {
  void *moved = mesa_aligned_alloc(mesa_u_memory_alignment(alignment), new_size);
  if (moved != NULL && ptr != NULL) memcpy(moved, ptr, old_size < new_size ? old_size : new_size);
  mesa_free(ptr);
  return moved;
}

static inline void *align_calloc(size_t size, size_t alignment) {
  void *ptr = mesa_aligned_alloc(mesa_u_memory_alignment(alignment), size);
  if (ptr != NULL) memset(ptr, 0, size);
  return ptr;
}

/* The byte offset of MEMBER in TYPE. C only: in C++ a function-like macro of that name breaks
 * every class with an Offset() member (Abseil's layout.h, which the containers include, and
 * LLVM's headers); C++ has offsetof. */
#ifndef __cplusplus
#define Offset(TYPE, MEMBER) offsetof(TYPE, MEMBER)
#endif

/* Cache-line-aligned allocation, for data that threads must not share a line of. Newer Mesa
 * calls the size MESA_CACHE_LINE_SIZE; the old name is defined too, unless a header included
 * before this one has defined it already. Both are the literal 64, as in Mesa (the old name in
 * util/macros.h), so that Mesa's own definition after this one is no redefinition. */
#define MESA_CACHE_LINE_SIZE 64
#ifndef CACHE_LINE_SIZE
#define CACHE_LINE_SIZE 64
#endif
#define EXCLUSIVE_CACHELINE(decl)                                   \
  union {                                                           \
    char MESA_ALLOC_CACHE_LINE_PAD(__LINE__)[MESA_CACHE_LINE_SIZE]; \
    decl;                                                           \
  }
/* The padding's name: one per line, so that a struct can hold several. */
#define MESA_ALLOC_CACHE_LINE_PAD(line) MESA_ALLOC_CACHE_LINE_PAD_(line)
#define MESA_ALLOC_CACHE_LINE_PAD_(line) mesa_alloc_cache_line_##line
#define MALLOC_STRUCT_CL(T) (struct T *)align_malloc(sizeof(struct T), MESA_CACHE_LINE_SIZE)
#define CALLOC_STRUCT_CL(T) (struct T *)align_calloc(sizeof(struct T), MESA_CACHE_LINE_SIZE)
#define FREE_CL(_ptr) align_free(_ptr)

/* A copy of `size` bytes at `src`, freed with FREE. mem_dup(NULL, 0) is a zero-size block, as
 * in Mesa (an empty array's copy); NULL with a size is NULL. */
static inline void *mem_dup(const void *src, size_t size) {
  void *dup;
  if (src == NULL && size != 0) return NULL;
  dup = MALLOC(size);
  if (dup != NULL && size != 0) memcpy(dup, src, size);
  return dup;
}

#ifdef __cplusplus
}
#endif

#endif /* MESA_ALLOC_U_MEMORY_H */

/* util/os_memory.h's names, which Mesa code calls directly too (util/sparse_array.c, crocus,
 * nv30): in Mesa's tree only, where the wrapped util/os_memory.h includes this header; Mesa's
 * own definitions, if its unwrapped header came first, are replaced. Outside the include guard,
 * so that they come with the wrapped header whatever included this one before it. */
#if defined(MESA_ALLOC_U_MEMORY_IS_MESAS) && !defined(MESA_ALLOC_U_MEMORY_OS_NAMES)
#define MESA_ALLOC_U_MEMORY_OS_NAMES
#undef os_malloc
#undef os_calloc
#undef os_realloc
#undef os_free
#undef os_malloc_aligned
#undef os_realloc_aligned
#undef os_free_aligned
#define os_malloc(_size) MALLOC(_size)
#define os_calloc(_count, _size) CALLOC(_count, _size)
#define os_realloc(_ptr, _old_size, _size) REALLOC(_ptr, _old_size, _size)
#define os_free(_ptr) FREE(_ptr)
#define os_malloc_aligned(_size, _alignment) align_malloc(_size, _alignment)
#define os_realloc_aligned(_ptr, _old_size, _new_size, _alignment) \
  align_realloc(_ptr, _old_size, _new_size, _alignment)
#define os_free_aligned(_ptr) align_free(_ptr)
#endif
