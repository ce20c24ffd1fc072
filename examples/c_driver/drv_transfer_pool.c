/* The util/slab-like transfer pool (see drv_priv.h). */
#include <assert.h>
#include <stdatomic.h>

#include "examples/c_driver/drv_priv.h"
#include "mesa_alloc/u_memory.h"

struct slab_element {
  struct slab_element *next;
  struct slab_child_pool *owner;
};

struct slab_page {
  struct slab_page *next;
  /* elements follow */
};

#define SLAB_ALIGN 16
#define SLAB_HEADER_SIZE \
  ((sizeof(struct slab_element) + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1))
#define SLAB_PAGE_HEADER ((sizeof(struct slab_page) + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1))

void slab_create_parent(struct slab_parent_pool *parent, size_t item_size,
                        unsigned elements_per_page) {
  pthread_mutex_init(&parent->lock, NULL);
  parent->element_size =
      SLAB_HEADER_SIZE + ((item_size + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1));
  parent->elements_per_page = elements_per_page;
}

void slab_destroy_parent(struct slab_parent_pool *parent) { pthread_mutex_destroy(&parent->lock); }

void slab_create_child(struct slab_child_pool *child, struct slab_parent_pool *parent) {
  child->parent = parent;
  child->pages = NULL;
  child->free = NULL;
  child->migrated = NULL;
  atomic_init(&child->live, 0);
}

void slab_destroy_child(struct slab_child_pool *child) {
  assert(atomic_load(&child->live) == 0 && "a transfer of this context is still mapped");
  struct slab_page *page = child->pages;
  while (page != NULL) {
    struct slab_page *next = page->next;
    FREE(page);
    page = next;
  }
  child->pages = NULL;
  child->free = NULL;
  child->migrated = NULL;
}

static int slab_add_page(struct slab_child_pool *child) {
  const struct slab_parent_pool *parent = child->parent;
  struct slab_page *page =
      MALLOC(SLAB_PAGE_HEADER + (size_t)parent->elements_per_page * parent->element_size);
  if (page == NULL) return 0;
  page->next = child->pages;
  child->pages = page;
  uint8_t *elements = (uint8_t *)page + SLAB_PAGE_HEADER;
  for (unsigned i = 0; i < parent->elements_per_page; i++) {
    struct slab_element *element = (struct slab_element *)(elements + i * parent->element_size);
    element->owner = child;
    element->next = child->free;
    child->free = element;
  }
  return 1;
}

void *slab_alloc(struct slab_child_pool *child) {
  if (child->free == NULL) {
    /* Take back what other contexts unmapped before growing. */
    pthread_mutex_lock(&child->parent->lock);
    child->free = child->migrated;
    child->migrated = NULL;
    pthread_mutex_unlock(&child->parent->lock);
    if (child->free == NULL && !slab_add_page(child)) return NULL;
  }
  struct slab_element *element = child->free;
  child->free = element->next;
  atomic_fetch_add_explicit(&child->live, 1, memory_order_relaxed);
  return (uint8_t *)element + SLAB_HEADER_SIZE;
}

void slab_free(struct slab_child_pool *child, void *item) {
  struct slab_element *element = (struct slab_element *)((uint8_t *)item - SLAB_HEADER_SIZE);
  struct slab_child_pool *owner = element->owner;
  if (owner == child) {
    element->next = child->free;
    child->free = element;
  } else {
    pthread_mutex_lock(&owner->parent->lock);
    element->next = owner->migrated;
    owner->migrated = element;
    pthread_mutex_unlock(&owner->parent->lock);
  }
  atomic_fetch_sub_explicit(&owner->live, 1, memory_order_relaxed);
}
