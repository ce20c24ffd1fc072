// The C functions of fast_resources.h: each resource is built with internal/c_handle.h (or,
// for the slab, its own header-less table) on top of the parent table.
#include "mesa_alloc/fast_resources.h"

#include <new>

#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/internal/c_handle.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/slab_resource.h"

using mesa::internal::c_handle_create;
using mesa::internal::c_handle_destroy;
using mesa::internal::c_handle_resource;

namespace {

// The slab's own table: no per-block header (every block is one slot, so C frees need no size).
struct c_slab {
  c_slab(const mesa_allocator *parent_table, std::size_t object_size)
      : table{this, &alloc, &realloc, &free, nullptr, nullptr},
        parent(parent_table),
        upstream(parent_table),
        slab(&upstream, object_size) {}

  static bool fits(c_slab *self, std::size_t size, std::size_t alignment) {
    return size <= self->slab.object_size() && alignment <= self->slab.alignment();
  }
  static void *alloc(void *user_data, std::size_t size, std::size_t alignment, mesa_alloc_scope) {
    if (!mesa_alloc_alignment_valid(alignment)) {
      mesa::internal::report_invalid_alignment("mesa_slab alloc", alignment);
      return nullptr;
    }
    auto *self = static_cast<c_slab *>(user_data);
    if (!fits(self, size, alignment)) return nullptr;
    try {
      return self->slab.allocate_object();
    } catch (...) {
      return nullptr;
    }
  }
  static void *realloc(void *user_data, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope) {
    if (ptr == nullptr) return alloc(user_data, size, alignment, scope);
    if (size == 0) {
      free(user_data, ptr);
      return nullptr;
    }
    if (!mesa_alloc_alignment_valid(alignment)) {
      mesa::internal::report_invalid_alignment("mesa_slab realloc", alignment);
      return nullptr;
    }
    return fits(static_cast<c_slab *>(user_data), size, alignment) ? ptr : nullptr;
  }
  static void free(void *user_data, void *ptr) {
    if (ptr != nullptr) static_cast<c_slab *>(user_data)->slab.deallocate_object(ptr);
  }

  mesa_allocator table;
  const mesa_allocator *parent;
  mesa::callback_resource upstream;
  mesa::slab_resource slab;
};

}  // namespace

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

const mesa_allocator *mesa_slab_create(const mesa_allocator *parent, size_t object_size) {
  if (object_size == 0) return nullptr;
  if (parent == nullptr) parent = mesa_default_allocator();
  void *storage =
      parent->alloc_fn(parent->user_data, sizeof(c_slab), alignof(c_slab), MESA_ALLOC_SCOPE_OBJECT);
  if (storage == nullptr) return nullptr;
  try {
    return &(new (storage) c_slab(parent, object_size))->table;
  } catch (...) {
    parent->free_fn(parent->user_data, storage);
    return nullptr;
  }
}

void mesa_slab_destroy(const mesa_allocator *slab) {
  if (slab == nullptr) return;
  auto *self = static_cast<c_slab *>(slab->user_data);
  const mesa_allocator *parent = self->parent;
  self->~c_slab();
  parent->free_fn(parent->user_data, self);
}

}  // extern "C"
