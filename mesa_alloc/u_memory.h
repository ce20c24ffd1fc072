/*
 * u_memory.h — Mesa's util/u_memory.h macros, routed through mesa_alloc.
 *
 * What it is for: existing Mesa code that uses MALLOC/CALLOC/FREE and friends moves over by
 * changing one include. Every macro allocates through the default allocator
 * (mesa_default_allocator()), so MESA_ALLOC_DEBUG layers and a replaced default see it all.
 * Inside Mesa, where most files reach util/u_memory.h through other headers, make that header
 * include this one instead of defining the names (docs/MIGRATING.md, section 1): the two cannot
 * both define them, and including this one after Mesa's is an #error that says so. All of Mesa's
 * names are here, the cache-line ones (MESA_CACHE_LINE_SIZE and the older CACHE_LINE_SIZE,
 * EXCLUSIVE_CACHELINE, MALLOC_STRUCT_CL, CALLOC_STRUCT_CL, FREE_CL) and, in C, Offset.
 *
 * What it costs: the same as mesa_malloc/mesa_free (one indirect call over the table).
 *
 * Differences from Mesa: align_free and FREE are the same function (mesa_free), so a block from
 * align_malloc freed with FREE is fine here; REALLOC and align_realloc ignore their old-size
 * argument (the table knows the size). CALLOC returns NULL when count × size overflows.
 * align_realloc keeps Mesa's own rules, which differ from mesa_aligned_realloc's: the old block
 * is freed whether or not the new one could be had (Mesa code drops its pointer on NULL), and
 * a new size of 0 gives a new zero-size block, not NULL.
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

#define align_malloc(_size, _alignment) mesa_aligned_alloc(_alignment, _size)
#define align_free(_ptr) mesa_free(_ptr)
#define align_realloc(_ptr, _old_size, _new_size, _alignment) \
  ((void)(_old_size), mesa_u_memory_align_realloc(_ptr, _new_size, _alignment))

/* Mesa's align_realloc (os_realloc_aligned): a new block with the contents, and the old one
 * freed in every case, a failure included; size 0 is a new zero-size block. */
static inline void *mesa_u_memory_align_realloc(void *ptr, size_t new_size, size_t alignment) {
  void *moved;
  if (new_size == 0) {
    mesa_free(ptr);
    return mesa_aligned_alloc(alignment, 0);
  }
  moved = mesa_aligned_realloc(ptr, new_size, alignment);
  if (moved == NULL) mesa_free(ptr);
  return moved;
}

static inline void *align_calloc(size_t size, size_t alignment) {
  void *ptr = mesa_aligned_alloc(alignment, size);
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
 * before this one has defined it already. */
#define MESA_CACHE_LINE_SIZE 64
#ifndef CACHE_LINE_SIZE
#define CACHE_LINE_SIZE MESA_CACHE_LINE_SIZE
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

/* A copy of `size` bytes at `src`, freed with FREE. NULL in, NULL out (as mesa_strdup). */
static inline void *mem_dup(const void *src, size_t size) {
  void *dup;
  if (src == NULL) return NULL;
  dup = MALLOC(size);
  if (dup != NULL && size != 0) memcpy(dup, src, size);
  return dup;
}

#ifdef __cplusplus
}
#endif

#endif /* MESA_ALLOC_U_MEMORY_H */
