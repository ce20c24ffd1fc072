/* The screen-wide cache of blend states (like Gallium's cso_cache): an open-addressing hash table
 * of refcounted objects, grown with CALLOC and rehashing. */
#include <string.h>

#include "examples/c_driver/drv_priv.h"
#include "mesa_alloc/u_memory.h"

#define CACHE_INITIAL_SIZE 8

static uint32_t hash_desc(const struct drv_blend_desc *desc) {
  /* FNV-1a over the fields (not the padding). */
  const uint32_t words[5] = {desc->enable, desc->rgb_func, desc->src_factor, desc->dst_factor,
                             desc->colormask};
  uint32_t hash = 2166136261u;
  for (size_t i = 0; i < 5; i++) hash = (hash ^ words[i]) * 16777619u;
  return hash;
}

static int desc_equal(const struct drv_blend_desc *a, const struct drv_blend_desc *b) {
  return a->enable == b->enable && a->rgb_func == b->rgb_func && a->src_factor == b->src_factor &&
         a->dst_factor == b->dst_factor && a->colormask == b->colormask;
}

int drv_state_cache_init(struct drv_state_cache *cache) {
  cache->slots = CALLOC(CACHE_INITIAL_SIZE, sizeof(*cache->slots));
  cache->size = CACHE_INITIAL_SIZE;
  cache->count = 0;
  return cache->slots != NULL;
}

void drv_state_cache_fini(struct drv_state_cache *cache) {
  for (size_t i = 0; i < cache->size; i++) FREE(cache->slots[i]);
  FREE(cache->slots);
  cache->slots = NULL;
}

static size_t find_slot(struct drv_blend_state **slots, size_t size, uint32_t hash,
                        const struct drv_blend_desc *desc) {
  size_t i = hash & (size - 1);
  while (slots[i] != NULL && !(slots[i]->hash == hash && desc_equal(&slots[i]->desc, desc)))
    i = (i + 1) & (size - 1);
  return i;
}

static int cache_grow(struct drv_state_cache *cache) {
  size_t size = cache->size * 2;
  struct drv_blend_state **slots = CALLOC(size, sizeof(*slots));
  if (slots == NULL) return 0;
  for (size_t i = 0; i < cache->size; i++) {
    struct drv_blend_state *state = cache->slots[i];
    if (state != NULL) slots[find_slot(slots, size, state->hash, &state->desc)] = state;
  }
  FREE(cache->slots);
  cache->slots = slots;
  cache->size = size;
  return 1;
}

const struct drv_blend_state *drv_create_blend_state(struct drv_context *ctx,
                                                     const struct drv_blend_desc *desc) {
  struct drv_state_cache *cache = &ctx->screen->states;
  const uint32_t hash = hash_desc(desc);
  size_t slot = find_slot(cache->slots, cache->size, hash, desc);
  if (cache->slots[slot] != NULL) {
    cache->slots[slot]->refcount++;
    return cache->slots[slot];
  }
  /* Keep the load under 3/4. */
  if (4 * (cache->count + 1) > 3 * cache->size) {
    if (!cache_grow(cache)) return NULL;
    slot = find_slot(cache->slots, cache->size, hash, desc);
  }
  struct drv_blend_state *state = CALLOC_STRUCT(drv_blend_state);
  if (state == NULL) return NULL;
  state->desc = *desc;
  state->hash = hash;
  state->refcount = 1;
  state->hw[0] = desc->enable ? 0x80000000u | desc->rgb_func : 0;
  state->hw[1] = (uint32_t)desc->src_factor << 8 | desc->dst_factor;
  state->hw[2] = desc->colormask;
  state->hw[3] = hash;
  cache->slots[slot] = state;
  cache->count++;
  return state;
}

/* Drops a reference. Unreferenced states stay cached until the screen is destroyed, as a
 * cso_cache keeps them for the next bind. */
void drv_delete_blend_state(struct drv_context *ctx, const struct drv_blend_state *state) {
  (void)ctx;
  ((struct drv_blend_state *)state)->refcount--;
}

size_t drv_state_cache_count(const struct drv_screen *screen) { return screen->states.count; }
