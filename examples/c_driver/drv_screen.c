/* Screen, contexts, command streams and resources. */
#include <string.h>

#include "examples/c_driver/drv_priv.h"
#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/u_memory.h"

#define TRANSFERS_PER_PAGE 64
#define INITIAL_COMMANDS 16

struct drv_screen *drv_screen_create(const char *name) {
  struct drv_screen *screen = CALLOC_STRUCT(drv_screen);
  if (screen == NULL) return NULL;
  screen->name = mesa_strdup(name);
  if (screen->name == NULL || !drv_state_cache_init(&screen->states)) {
    FREE(screen->name);
    FREE(screen);
    return NULL;
  }
  slab_create_parent(&screen->transfer_pool, sizeof(struct drv_transfer), TRANSFERS_PER_PAGE);
  return screen;
}

void drv_screen_destroy(struct drv_screen *screen) {
  if (screen == NULL) return;
  slab_destroy_parent(&screen->transfer_pool);
  drv_state_cache_fini(&screen->states);
  FREE(screen->name);
  FREE(screen);
}

const char *drv_screen_name(const struct drv_screen *screen) { return screen->name; }

struct drv_context *drv_context_create(struct drv_screen *screen) {
  struct drv_context *ctx = CALLOC_STRUCT(drv_context);
  if (ctx == NULL) return NULL;
  ctx->commands = MALLOC(INITIAL_COMMANDS * sizeof(*ctx->commands));
  if (ctx->commands == NULL) {
    FREE(ctx);
    return NULL;
  }
  ctx->command_capacity = INITIAL_COMMANDS;
  ctx->screen = screen;
  slab_create_child(&ctx->transfers, &screen->transfer_pool);
  return ctx;
}

void drv_context_destroy(struct drv_context *ctx) {
  if (ctx == NULL) return;
  slab_destroy_child(&ctx->transfers);
  FREE(ctx->commands);
  FREE(ctx);
}

int drv_emit(struct drv_context *ctx, uint32_t dword) {
  if (ctx->command_count == ctx->command_capacity) {
    const size_t old_size = ctx->command_capacity * sizeof(*ctx->commands);
    uint32_t *grown = REALLOC(ctx->commands, old_size, 2 * old_size);
    if (grown == NULL) return -1; /* the old stream is intact */
    ctx->commands = grown;
    ctx->command_capacity *= 2;
  }
  ctx->commands[ctx->command_count++] = dword;
  return 0;
}

size_t drv_command_count(const struct drv_context *ctx) { return ctx->command_count; }

struct drv_resource *drv_resource_create(struct drv_screen *screen, size_t size) {
  struct drv_resource *resource = CALLOC_STRUCT(drv_resource);
  if (resource == NULL) return NULL;
  resource->data = align_calloc(size, 64);
  if (resource->data == NULL) {
    FREE(resource);
    return NULL;
  }
  resource->screen = screen;
  resource->size = size;
  return resource;
}

void drv_resource_destroy(struct drv_resource *resource) {
  if (resource == NULL) return;
  align_free(resource->data);
  FREE(resource);
}

void *drv_transfer_map(struct drv_context *ctx, struct drv_resource *resource, size_t offset,
                       size_t size, struct drv_transfer **transfer) {
  *transfer = NULL;
  if (offset > resource->size || size > resource->size - offset) return NULL;
  struct drv_transfer *t = slab_alloc(&ctx->transfers);
  if (t == NULL) return NULL;
  t->resource = resource;
  t->offset = offset;
  t->size = size;
  *transfer = t;
  return resource->data + offset;
}

void drv_transfer_unmap(struct drv_context *ctx, struct drv_transfer *transfer) {
  slab_free(&ctx->transfers, transfer);
}
