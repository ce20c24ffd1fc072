/*
 * fast_resources.h — the arena, slab and pool resources for C code.
 *
 * What it is for: C drivers get the same fast resources as C++ code. Each create function
 * builds the resource on top of a parent table (NULL: the default allocator) and returns a
 * table over it; pass that table anywhere a `const mesa_allocator *` goes (mesa_alloc2, ...).
 * The matching destroy function returns everything the resource holds to the parent, whether
 * or not its blocks were freed. Create functions return NULL when the parent fails. Destroy
 * and release functions given NULL or a table of another kind do nothing. The arena, pool and
 * slab tables pass the parent's internal-allocation notifications on, as debug_resources.h's
 * layers do (a slab child's go to the table its slab parent was made over).
 *
 * What it costs: the arena and pool tables keep a 16-byte header before each block (C frees are
 * unsized; see resource_callbacks.h). The slab table has no header: it serves blocks of at most
 * `object_size` bytes (as given, though a slot may be larger: a 1-byte slab refuses 2 bytes) and
 * alignment at most the slab's: `object_size` rounded up to a multiple of 8, its lowest set bit,
 * at most 16 (a 24-byte slab serves 8, a 12-byte one 16); a larger or more aligned request fails
 * (NULL).
 *
 * Misuse: the arena and pool tables check their tag in each freed block's header, so another
 * table's block, an interior pointer or a block freed already is refused with one line. The
 * slab tables have no header. A block of another allocator freed through mesa_slab_create's
 * table is taken as one of its slots and handed out again; a slab child's table reads the page
 * header where its parent's page would be, so it refuses another parent's block when both have
 * the same page size and reads unrelated memory otherwise. Put mesa_debug_create's table in
 * front to catch any of these.
 *
 * Example:
 *   const mesa_allocator *arena = mesa_arena_create(device_alloc);
 *   struct node *n = mesa_alloc2(NULL, arena, sizeof(*n), 8, MESA_ALLOC_SCOPE_COMMAND);
 *   mesa_arena_destroy(arena);   // frees n and everything else
 *
 * Thread safety: the arena, slab, slab child and pool tables are for one thread at a time, a
 * slab child's free_fn included; the synchronized pool table and mesa_slab_parent_free may be
 * used from any number of threads.
 */
#ifndef MESA_ALLOC_FAST_RESOURCES_H
#define MESA_ALLOC_FAST_RESOURCES_H

#include <stddef.h>

#include "mesa_alloc/mesa_alloc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bump arena; freeing a block is a no-op, mesa_arena_release frees everything at once (a free
 * or realloc of a block from before it is then refused with one line, unless its address was
 * handed out again since: over the heap the first blocks after a release usually are, and a
 * stale pointer equal to one is taken for the new block; the debug layer in front sees it). */
const mesa_allocator *mesa_arena_create(const mesa_allocator *parent);
void mesa_arena_release(const mesa_allocator *arena);
void mesa_arena_destroy(const mesa_allocator *arena);

/* Fixed-size slab: blocks of at most object_size bytes (alignment: that of object_size rounded
 * up to a multiple of 8, at most 16); larger or more aligned requests return NULL, and realloc
 * within object_size returns the same block (NULL and a line on stderr for a block freed already,
 * as its second free is refused). NULL also for object_size 0, and with a line on stderr saying why
 * for an object_size no slab takes (over 1 GiB; on 32-bit targets, one whose 64 slots do not fit
 * the largest page). */
const mesa_allocator *mesa_slab_create(const mesa_allocator *parent, size_t object_size);
void mesa_slab_destroy(const mesa_allocator *slab);

/* The thread-safe slab (util/slab's parent/child pools): one parent shared by all threads,
 * one child table per thread or context. A child table, free_fn included, is used by one thread
 * at a time, without a lock (its own blocks' frees are an unlocked push, as util/slab's
 * slab_free); its free_fn accepts a block of any child of the same parent (it migrates back to
 * its owner), so a thread frees another's blocks through its own child table, or, with no child
 * of its own, through mesa_slab_parent_free (any thread, under the parent's lock). A child may be
 * destroyed while its blocks are live elsewhere; destroy every child before the parent. Blocks
 * follow mesa_slab's fixed-size rules; a child's free and realloc refuse a block of another
 * parent's, an interior pointer and a page's header with a line on stderr (realloc: NULL). */
typedef struct mesa_slab_parent mesa_slab_parent;
/* NULL as mesa_slab_create. */
mesa_slab_parent *mesa_slab_parent_create(const mesa_allocator *parent, size_t object_size);
void mesa_slab_parent_destroy(mesa_slab_parent *parent);
/* Frees a block of any child of `parent`, from any thread. NULL parent or block: nothing. */
void mesa_slab_parent_free(mesa_slab_parent *parent, void *block);
const mesa_allocator *mesa_slab_child_create(mesa_slab_parent *parent);
void mesa_slab_child_destroy(const mesa_allocator *child);

/* Size-class pool for mixed sizes; mesa_pool_destroy frees everything. */
const mesa_allocator *mesa_pool_create(const mesa_allocator *parent);
void mesa_pool_destroy(const mesa_allocator *pool);

/* The same, usable from any number of threads at once (the parent is called under a lock). */
const mesa_allocator *mesa_synchronized_pool_create(const mesa_allocator *parent);
void mesa_synchronized_pool_destroy(const mesa_allocator *pool);

#ifdef __cplusplus
}
#endif

#endif /* MESA_ALLOC_FAST_RESOURCES_H */
