// Internal: the machinery behind the C functions that create a C++ resource on top of a C parent
// table and hand back a table (mesa_arena_create, mesa_tracking_create, ...).
//
// One allocation from the parent holds the whole stack: the parent seen as a pmr upstream
// (callback_resource), the resource, and a table over the resource (resource_callbacks, whose
// per-block header makes unsized C frees work). The table returned to C is the handle; the
// matching destroy function gets the stack back from it. The table passes the parent's
// internal-allocation notifications on (forwarded_notifications.h).
//
//   const mesa_allocator *mesa_arena_create(const mesa_allocator *parent) {
//     return mesa::internal::c_handle_create<mesa::arena_resource>("mesa_arena", parent);
//   }
//   void mesa_arena_destroy(const mesa_allocator *arena) {
//     mesa::internal::c_handle_destroy<mesa::arena_resource>(arena);
//   }
#ifndef MESA_ALLOC_INTERNAL_C_HANDLE_H_
#define MESA_ALLOC_INTERNAL_C_HANDLE_H_

#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/internal/checked_alloc.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/forwarded_notifications.h"
#include "mesa_alloc/internal/per_copy.h"
#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/resource_callbacks.h"

namespace mesa::internal {

template <class Resource>
class c_handle final : public resource_callbacks {
 public:
  // `name`: what the table's lines call it (resource_callbacks.h).
  template <class... Args>
  c_handle(const char *name, const mesa_allocator *parent, Args &&...args)
      : resource_callbacks(&resource_, &kind_tag_, name),
        parent_(parent),
        upstream_(parent),
        resource_(&upstream_, std::forward<Args>(args)...) {}

  Resource &resource() noexcept { return resource_; }
  // The resource's release(), and a new tag for the table: the blocks it freed are refused
  // afterwards, not taken for live ones.
  void release() noexcept {
    resource_.release();
    blocks_released();
  }
  const mesa_allocator *parent() const noexcept { return parent_; }

  // Gives the table the parent's internal-allocation notifications, forwarded
  // (forwarded_notifications.h; `where`: the create function). Before the table is handed out.
  void forward_notifications(const char *where) noexcept {
    const notifications n = forwarded_notifications<&parent_of>(parent_, where);
    set_notifications(n.internal_alloc, n.internal_free);
  }

  // The handle behind a table returned by c_handle_create<Resource>; NULL for NULL or any
  // other table (another resource's handle, a tracking or debug table, libc's, ...).
  static c_handle *from_table(const mesa_allocator *table) noexcept {
    const resource_callbacks *callbacks = resource_callbacks::from_table(table);
    if (callbacks == nullptr || callbacks->kind() != &kind_tag_) return nullptr;
    return static_cast<c_handle *>(const_cast<resource_callbacks *>(callbacks));
  }

 private:
  static const mesa_allocator *parent_of(void *user_data) noexcept {
    return static_cast<c_handle *>(static_cast<resource_callbacks *>(user_data))->parent_;
  }

  // Its address tells this Resource's handles apart (not const: distinct constants may be
  // merged, variables may not).
  MESA_ALLOC_PER_COPY static inline char kind_tag_ = 0;

  const mesa_allocator *parent_;
  callback_resource upstream_;
  Resource resource_;
};

// Creates the stack in one block from `parent` (NULL: the default); NULL if that allocation
// or the resource's constructor fails, or if `parent` is incomplete (reported, naming the create
// function, `<name>_create`). `name` (a string literal, "mesa_arena") is what the table's lines
// call it. The table passes the parent's internal-allocation notifications on.
template <class Resource, std::size_t N, class... Args>
const mesa_allocator *c_handle_create(const char (&name)[N], const mesa_allocator *parent,
                                      Args &&...args) noexcept {
  char where[N + 7];  // the create function's name
  std::memcpy(where, name, N - 1);
  std::memcpy(where + N - 1, "_create", 8);
  parent = parent_or_default(parent, where);
  if (parent == nullptr) return nullptr;
  void *storage = checked_alloc(parent, sizeof(c_handle<Resource>), alignof(c_handle<Resource>),
                                MESA_ALLOC_SCOPE_OBJECT, where);
  if (storage == nullptr) return nullptr;
  try {
    auto *handle = new (storage) c_handle<Resource>(name, parent, std::forward<Args>(args)...);
    handle->forward_notifications(where);
    return handle->table();
  } catch (...) {
    parent->free_fn(parent->user_data, storage);
    return nullptr;
  }
}

// The resource behind a table from c_handle_create<Resource> (for stats, release, ...); NULL
// for NULL or a table of another kind.
template <class Resource>
Resource *c_handle_resource(const mesa_allocator *table) noexcept {
  c_handle<Resource> *handle = c_handle<Resource>::from_table(table);
  return handle == nullptr ? nullptr : &handle->resource();
}

// Destroys the resource (returning what it holds to the parent) and frees the handle. NULL,
// or a table of another kind: no-op.
template <class Resource>
void c_handle_destroy(const mesa_allocator *table) noexcept {
  c_handle<Resource> *handle = c_handle<Resource>::from_table(table);
  if (handle == nullptr) return;
  const mesa_allocator *parent = handle->parent();
  handle->~c_handle<Resource>();
  parent->free_fn(parent->user_data, handle);
}

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_C_HANDLE_H_
