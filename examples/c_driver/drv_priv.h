/*
 * drv_priv.h — the c_driver's internal structures (not part of c_driver.h).
 *
 * The transfer pool follows Mesa's util/slab: a parent pool per screen fixes the element size
 * and owns the lock; each context has a child pool with its own pages and free list, so a map
 * or an unmap on the owning context takes no lock. An element unmapped by another context is
 * pushed, under the parent's lock, onto its owner's "migrated" list, which the owner takes back
 * when its free list runs dry.
 */
#ifndef C_DRIVER_DRV_PRIV_H
#define C_DRIVER_DRV_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "examples/c_driver/c_driver.h"

struct slab_element;
struct slab_page;

struct slab_parent_pool {
  pthread_mutex_t lock; /* pthread, not C11 mtx_t: ThreadSanitizer sees only the former */
  size_t element_size;  /* including the element header */
  unsigned elements_per_page;
};

struct slab_child_pool {
  struct slab_parent_pool *parent;
  struct slab_page *pages;
  struct slab_element *free;     /* owner only */
  struct slab_element *migrated; /* under parent->lock */
  atomic_size_t live;            /* elements handed out and not yet back */
};

void slab_create_parent(struct slab_parent_pool *parent, size_t item_size,
                        unsigned elements_per_page);
void slab_destroy_parent(struct slab_parent_pool *parent);
void slab_create_child(struct slab_child_pool *child, struct slab_parent_pool *parent);
/* All elements must be back (free or migrated); frees the child's pages. */
void slab_destroy_child(struct slab_child_pool *child);
/* NULL when a new page cannot be allocated. */
void *slab_alloc(struct slab_child_pool *child);
/* `child` is the pool of the context freeing, which may not be the element's owner. */
void slab_free(struct slab_child_pool *child, void *item);

struct drv_state_cache {
  struct drv_blend_state **slots; /* open addressing, power-of-two size, NULL = empty */
  size_t size, count;
};

int drv_state_cache_init(struct drv_state_cache *cache);
void drv_state_cache_fini(struct drv_state_cache *cache);

struct drv_blend_state {
  struct drv_blend_desc desc;
  uint32_t hash;
  unsigned refcount;
  uint32_t hw[4]; /* the "packed hardware state" a real driver would compute */
};

struct drv_screen {
  char *name;
  struct slab_parent_pool transfer_pool;
  struct drv_state_cache states;
};

struct drv_context {
  struct drv_screen *screen;
  struct slab_child_pool transfers;
  uint32_t *commands;
  size_t command_count, command_capacity;
};

struct drv_resource {
  struct drv_screen *screen;
  uint8_t *data;
  size_t size;
};

struct drv_transfer {
  struct drv_resource *resource;
  size_t offset, size;
};

#endif /* C_DRIVER_DRV_PRIV_H */
