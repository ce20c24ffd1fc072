// Internal: a C layer's internal-allocation notifications, forwarded to its parent table. Not
// part of the public API.
//
// What it is for: internal_alloc_fn / internal_free_fn (Vulkan's pfnInternalAllocation /
// pfnInternalFree) tell an application about memory a driver allocated without its callbacks.
// The tables made over a parent table (mesa_tracking_create, mesa_debug_create,
// mesa_logging_create, mesa_fault_create, and the arena, pool and slab tables of
// fast_resources.h through c_handle.h) pass them on unchanged to the parent's, so wrapping an
// application's table in them does not silence its notifications. Decided when the layer is
// made: over a parent with both, the layer has both; over one with neither, neither (NULL, so a
// driver skips them at no cost); over one with only one of them, neither, with one line on
// stderr (Vulkan takes both or neither).
//
// What it costs: one more indirect call per notification; nothing per allocation.
//
// Example (a layer whose table's user_data is the layer, holding its parent table):
//   static const mesa_allocator *parent_of(void *user_data) noexcept {
//     return static_cast<layer *>(user_data)->parent;
//   }
//   const notifications n = forwarded_notifications<&parent_of>(parent, "mesa_layer_create");
//   table.internal_alloc_fn = n.internal_alloc;
//   table.internal_free_fn = n.internal_free;
#ifndef MESA_ALLOC_INTERNAL_FORWARDED_NOTIFICATIONS_H_
#define MESA_ALLOC_INTERNAL_FORWARDED_NOTIFICATIONS_H_

#include <cstddef>
#include <cstdio>

#include "mesa_alloc/mesa_alloc.h"

namespace mesa::internal {

using notification_fn = void (*)(void *user_data, std::size_t size, int type,
                                 mesa_alloc_scope scope);

// A table's two notification functions; both NULL when it has none.
struct notifications {
  notification_fn internal_alloc = nullptr;
  notification_fn internal_free = nullptr;
};

// Called with a layer table's user_data, returns the parent table the layer was made over.
using parent_of_fn = const mesa_allocator *(*)(void *user_data) noexcept;

template <parent_of_fn ParentOf>
struct notification_forwarder {
  static void internal_alloc(void *user_data, std::size_t size, int type, mesa_alloc_scope scope) {
    const mesa_allocator *parent = ParentOf(user_data);
    parent->internal_alloc_fn(parent->user_data, size, type, scope);
  }
  static void internal_free(void *user_data, std::size_t size, int type, mesa_alloc_scope scope) {
    const mesa_allocator *parent = ParentOf(user_data);
    parent->internal_free_fn(parent->user_data, size, type, scope);
  }
};

// True if `parent` has both notification functions; false if it has neither, or only one
// (then said on stderr, naming `where`).
inline bool parent_notifies(const mesa_allocator *parent, const char *where) noexcept {
  const bool alloc = parent->internal_alloc_fn != nullptr;
  const bool free = parent->internal_free_fn != nullptr;
  if (alloc != free) {
    std::fprintf(stderr,
                 "mesa_alloc: %s: the parent table has %s without %s (Vulkan takes both or "
                 "neither); its notifications are not forwarded\n",
                 where, alloc ? "internal_alloc_fn" : "internal_free_fn",
                 alloc ? "internal_free_fn" : "internal_alloc_fn");
  }
  return alloc && free;
}

// The notification functions of a layer made over `parent` (`where`: its create function).
template <parent_of_fn ParentOf>
notifications forwarded_notifications(const mesa_allocator *parent, const char *where) noexcept {
  if (!parent_notifies(parent, where)) return {};
  return {&notification_forwarder<ParentOf>::internal_alloc,
          &notification_forwarder<ParentOf>::internal_free};
}

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_FORWARDED_NOTIFICATIONS_H_
