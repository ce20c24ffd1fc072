/*
 * c_driver.h — a small C "driver" in Mesa's Gallium style that allocates only through mesa_alloc.
 *
 * What it is for: the sample a Mesa developer reads to see a C driver moved over. It has the
 * usual pieces: a screen, contexts with a growing command stream, a screen-wide cache of
 * refcounted state objects (like cso_cache), and a util/slab-like transfer pool (a parent pool
 * per screen, a child per context, and unmaps from another context handed back through the
 * owner's "migrated" list). It is written with MALLOC / CALLOC_STRUCT / REALLOC / FREE /
 * align_malloc from mesa_alloc/u_memory.h, and built with mesa_alloc/poison.h forced on
 * (mesa_cc_library in Bazel, `-include mesa_alloc/poison.h` in Meson), so no direct libc call
 * can creep in; its link-level audit (alloc_audit_test) proves none did.
 *
 * Which allocator: the macros allocate through mesa_default_allocator(), so the driver uses the
 * allocator the process creates it with — the table the loader installs with
 * mesa_set_default_allocator() before drv_screen_create() (a tracking table with a budget in
 * the tests), or the stack MESA_ALLOC_DEBUG builds (e.g. cookie,leaks). Every object records
 * nothing else: a failed allocation makes the entry point return NULL (or -1) with everything
 * it had allocated freed again.
 *
 * What it costs: one table call per MALLOC/FREE; transfers come from 64-element pages.
 *
 * Example:
 *   struct drv_screen *screen = drv_screen_create("sample");
 *   struct drv_context *ctx = drv_context_create(screen);
 *   struct drv_resource *buf = drv_resource_create(screen, 4096);
 *   struct drv_transfer *t;
 *   uint32_t *map = drv_transfer_map(ctx, buf, 0, 256, &t);
 *   drv_transfer_unmap(ctx, t);
 *   drv_resource_destroy(buf);
 *   drv_context_destroy(ctx);
 *   drv_screen_destroy(screen);
 */
#ifndef C_DRIVER_H
#define C_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct drv_screen;
struct drv_context;
struct drv_resource;
struct drv_transfer;
struct drv_blend_state;

struct drv_blend_desc {
  uint8_t enable, rgb_func, src_factor, dst_factor;
  uint32_t colormask;
};

/* NULL when out of memory. The screen must outlive its contexts and resources. */
struct drv_screen *drv_screen_create(const char *name);
void drv_screen_destroy(struct drv_screen *screen);
const char *drv_screen_name(const struct drv_screen *screen);

struct drv_context *drv_context_create(struct drv_screen *screen);
/* Every transfer mapped through `ctx` must have been unmapped (by any context). */
void drv_context_destroy(struct drv_context *ctx);
/* Appends to the command stream, growing it with REALLOC; -1 when out of memory. */
int drv_emit(struct drv_context *ctx, uint32_t dword);
size_t drv_command_count(const struct drv_context *ctx);

/* The screen-wide state cache: equal descriptions give the same refcounted object. */
const struct drv_blend_state *drv_create_blend_state(struct drv_context *ctx,
                                                     const struct drv_blend_desc *desc);
void drv_delete_blend_state(struct drv_context *ctx, const struct drv_blend_state *state);
size_t drv_state_cache_count(const struct drv_screen *screen);

/* A buffer of `size` bytes, 64-byte aligned, zeroed. */
struct drv_resource *drv_resource_create(struct drv_screen *screen, size_t size);
void drv_resource_destroy(struct drv_resource *resource);

/* Maps [offset, offset + size) of `resource` for `ctx`; the transfer object comes from the
 * context's slab child pool. NULL when out of memory or out of range. Unmap from any context of
 * the same screen. */
void *drv_transfer_map(struct drv_context *ctx, struct drv_resource *resource, size_t offset,
                       size_t size, struct drv_transfer **transfer);
void drv_transfer_unmap(struct drv_context *ctx, struct drv_transfer *transfer);

/* A frame loop over all of the above (two contexts, buffers, cached states, transfers unmapped
 * by the other context): 0 on success, -1 if an allocation failed, in which case everything it
 * allocated has been freed. `checksum` (may be NULL) receives a value that depends on every
 * byte written. */
int drv_run_workload(int frames, uint64_t *checksum);

#ifdef __cplusplus
}
#endif

#endif /* C_DRIVER_H */
