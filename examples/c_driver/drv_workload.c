/* The frame loop behind drv_run_workload and c_driver_demo: every driver path, and a clean
 * unwind from any failed allocation. */
#include "examples/c_driver/c_driver.h"

#define CONTEXTS 2
#define RESOURCES 8
#define TRANSFERS_PER_FRAME 100 /* more than a slab page, so pages are added and reused */

int drv_run_workload(int frames, uint64_t *checksum) {
  struct drv_context *ctx[CONTEXTS] = {0};
  struct drv_resource *resources[RESOURCES] = {0};
  struct drv_transfer *transfers[TRANSFERS_PER_FRAME] = {0};
  uint64_t sum = 0;
  int result = -1;

  struct drv_screen *screen = drv_screen_create("c_driver");
  if (screen == NULL) return -1;
  for (int c = 0; c < CONTEXTS; c++)
    if ((ctx[c] = drv_context_create(screen)) == NULL) goto out;
  for (int r = 0; r < RESOURCES; r++)
    if ((resources[r] = drv_resource_create(screen, 4096u * (r + 1))) == NULL) goto out;

  for (int frame = 0; frame < frames; frame++) {
    for (int i = 0; i < TRANSFERS_PER_FRAME; i++) {
      struct drv_context *owner = ctx[i % CONTEXTS];
      const struct drv_blend_desc desc = {(uint8_t)(i & 1), (uint8_t)(frame % 3), (uint8_t)(i % 7),
                                          (uint8_t)(frame % 5), 0xfu};
      const struct drv_blend_state *state = drv_create_blend_state(owner, &desc);
      if (state == NULL) goto out;
      drv_delete_blend_state(owner, state);

      struct drv_resource *resource = resources[i % RESOURCES];
      uint8_t *map = drv_transfer_map(owner, resource, (size_t)(i % 16) * 64, 256, &transfers[i]);
      if (map == NULL) goto out;
      for (int b = 0; b < 256; b++) map[b] = (uint8_t)(map[b] + frame + i + b);
      sum = sum * 31 + map[i % 256];
      if (drv_emit(owner, (uint32_t)frame << 16 | (uint32_t)i) != 0) goto out;
    }
    /* Unmap from the other context: the slab elements migrate back to their owner. */
    for (int i = 0; i < TRANSFERS_PER_FRAME; i++) {
      drv_transfer_unmap(ctx[(i + 1) % CONTEXTS], transfers[i]);
      transfers[i] = NULL;
    }
  }
  for (int c = 0; c < CONTEXTS; c++) sum += drv_command_count(ctx[c]);
  sum += drv_state_cache_count(screen);
  result = 0;

out:
  for (int i = 0; i < TRANSFERS_PER_FRAME; i++)
    if (transfers[i] != NULL) drv_transfer_unmap(ctx[0], transfers[i]);
  for (int r = 0; r < RESOURCES; r++) drv_resource_destroy(resources[r]);
  for (int c = 0; c < CONTEXTS; c++) drv_context_destroy(ctx[c]);
  drv_screen_destroy(screen);
  if (checksum != NULL) *checksum = sum;
  return result;
}
