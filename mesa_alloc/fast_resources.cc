// The C functions of fast_resources.h: each resource is built with internal/c_handle.h (or,
// for the slab, its own header-less table) on top of the parent table.
#include "mesa_alloc/fast_resources.h"

#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/internal/c_handle.h"

using mesa::internal::c_handle_create;
using mesa::internal::c_handle_destroy;
using mesa::internal::c_handle_resource;

extern "C" {

const mesa_allocator *mesa_arena_create(const mesa_allocator *parent) {
  return c_handle_create<mesa::arena_resource>(parent);
}

void mesa_arena_release(const mesa_allocator *arena) {
  if (arena != nullptr) c_handle_resource<mesa::arena_resource>(arena)->release();
}

void mesa_arena_destroy(const mesa_allocator *arena) {
  c_handle_destroy<mesa::arena_resource>(arena);
}

}  // extern "C"
