/*
 * mesa_alloc.h — the C callback table every allocation goes through.
 *
 * What it is for: C and C++ code in a driver stack allocates host memory through one
 * `mesa_allocator` table (laid out like VkAllocationCallbacks) instead of calling libc. The
 * table can be libc, the application's Vulkan callbacks, or any stack of mesa_alloc resources
 * (tracking, debug, fault injection, logging, arenas, slabs).
 *
 * What it costs: `mesa_malloc`/`mesa_free` are one call and one indirect jump over plain
 * malloc/free — straight to libc while the libc table is the default, to the table otherwise
 * (measured by //benchmarks:dispatch_benchmark). `mesa_realloc`, `mesa_alloc2` and `mesa_free2`
 * call libc directly when the table they use is the libc table, and so do `mesa_calloc` and
 * `mesa_zalloc2` (libc's calloc: a large block's fresh pages are not touched to zero them); the
 * strdup functions go through `mesa_malloc`; the others call through the table.
 *
 * Rules every table follows (the Vulkan rules for VkAllocationCallbacks):
 *   - `alignment` is a power of two; any other value makes the call fail (NULL).
 *   - failure returns NULL (every failure of the functions below sets errno as malloc does,
 *     whichever table refused: ENOMEM, or EINVAL for a bad alignment or scope or a table without
 *     the function; the libc table's own functions set it too).
 *   - `realloc_fn(NULL, ...)` allocates; `realloc_fn(p, 0, ...)` frees p and returns NULL;
 *     realloc keeps the contents up to min(old, new) size and the alignment; when realloc fails
 *     the original block is untouched; `free_fn(NULL)` does nothing.
 *   - a request of size 0 is a request of one byte: it returns a unique block that must be
 *     freed (every allocator in this project, and the C functions below, behave this way).
 *   - callbacks may be called from several threads at once, unless the table says otherwise
 *     (this project's arena, slab, slab child and pool tables, and a debug table made with
 *     thread_safe false, are for one thread at a time: fast_resources.h, debug_resources.h).
 *   - a table's functions return to their caller, the application's callbacks under a layer
 *     too: a C++ exception out of one ends the process under the layers that cannot pass it
 *     on (tracking, debug, the *2 functions), and a longjmp out of one leaves a layer as it was
 *     mid-call (a tracking budget keeps the charge, a logging table its lock: later calls
 *     wait for ever). Report failure with NULL.
 *
 * Example:
 *   char *name = mesa_strdup("pipeline");
 *   struct widget *w = mesa_zalloc2(device_alloc, create_info_alloc, sizeof(*w), 8,
 *                                   MESA_ALLOC_SCOPE_OBJECT);
 *   mesa_free2(device_alloc, create_info_alloc, w);
 *   mesa_free(name);
 */
#ifndef MESA_ALLOC_MESA_ALLOC_H
#define MESA_ALLOC_MESA_ALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Lifetime of an allocation; the same values as VkSystemAllocationScope. */
typedef enum mesa_alloc_scope {
  MESA_ALLOC_SCOPE_COMMAND = 0,
  MESA_ALLOC_SCOPE_OBJECT = 1,
  MESA_ALLOC_SCOPE_CACHE = 2,
  MESA_ALLOC_SCOPE_DEVICE = 3,
  MESA_ALLOC_SCOPE_INSTANCE = 4,
} mesa_alloc_scope;

#define MESA_ALLOC_SCOPE_COUNT 5

/* The alignment mesa_malloc and friends ask for: that of max_align_t. */
#define MESA_ALLOC_DEFAULT_ALIGNMENT 16

/* A callback table; the same field order as VkAllocationCallbacks. `internal_alloc_fn` and
 * `internal_free_fn` are optional notifications (both or neither). */
typedef struct mesa_allocator {
  void *user_data;
  void *(*alloc_fn)(void *user_data, size_t size, size_t alignment, mesa_alloc_scope scope);
  void *(*realloc_fn)(void *user_data, void *ptr, size_t size, size_t alignment,
                      mesa_alloc_scope scope);
  void (*free_fn)(void *user_data, void *ptr);
  void (*internal_alloc_fn)(void *user_data, size_t size, int type, mesa_alloc_scope scope);
  void (*internal_free_fn)(void *user_data, size_t size, int type, mesa_alloc_scope scope);
} mesa_allocator;

/* libc-backed table; honours any power-of-two alignment, on alloc and on realloc. */
const mesa_allocator *mesa_libc_allocator(void);

/* The process-wide default table. On first use it is built from the environment variable
 * MESA_ALLOC_DEBUG (debug, accounting and trace layers over libc; see README). Reading it is
 * thread-safe and cheap. */
const mesa_allocator *mesa_default_allocator(void);

/* Replaces the default and returns the previous one; NULL restores libc. A start-up operation:
 * blocks allocated before the change must still be freed through the table that made them, so
 * change it before anything is allocated, or keep the old table alive and use it for them. The
 * table is kept by pointer: it must outlive every block. The layers MESA_ALLOC_DEBUG names stay
 * over libc; replacing them as the default says so in one line on stderr (a table made over
 * them, with a NULL parent, still goes through them). A table without alloc_fn, realloc_fn or
 * free_fn is refused (one line on stderr): the default stays and is returned. The functions that
 * create a table over a parent (debug_resources.h, fast_resources.h, mesa_validator_create)
 * likewise return NULL for an incomplete parent. */
const mesa_allocator *mesa_set_default_allocator(const mesa_allocator *allocator);

/* Through the default table, with MESA_ALLOC_DEFAULT_ALIGNMENT and MESA_ALLOC_SCOPE_OBJECT.
 * All of them are freed by mesa_free. */
void *mesa_malloc(size_t size);
void *mesa_calloc(size_t count, size_t size); /* NULL if count * size overflows */
void *mesa_realloc(void *ptr, size_t size);   /* size 0 frees and returns NULL */
void mesa_free(void *ptr);
void *mesa_aligned_alloc(size_t alignment, size_t size);
void *mesa_aligned_realloc(void *ptr, size_t size, size_t alignment);
char *mesa_strdup(const char *str);
char *mesa_strndup(const char *str, size_t max_length);

/* The vk_alloc2 rule: use `alloc` if non-NULL, else `parent`, else the default table. A table
 * passed here that lacks the function the call needs is reported (one line on stderr) and the
 * call fails: NULL, or for mesa_free2 nothing is freed. */
void *mesa_alloc2(const mesa_allocator *parent, const mesa_allocator *alloc, size_t size,
                  size_t alignment, mesa_alloc_scope scope);
void *mesa_zalloc2(const mesa_allocator *parent, const mesa_allocator *alloc, size_t size,
                   size_t alignment, mesa_alloc_scope scope);
void *mesa_realloc2(const mesa_allocator *parent, const mesa_allocator *alloc, void *ptr,
                    size_t size, size_t alignment, mesa_alloc_scope scope);
void mesa_free2(const mesa_allocator *parent, const mesa_allocator *alloc, void *ptr);

/* Non-zero when `alignment` is a power of two (the only alignments tables accept). */
static inline int mesa_alloc_alignment_valid(size_t alignment) {
  return alignment != 0 && (alignment & (alignment - 1)) == 0;
}

#ifdef __cplusplus
}
#endif

#endif /* MESA_ALLOC_MESA_ALLOC_H */
