#include "mesa_alloc/vulkan.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "mesa_alloc/debug_resource.h"
#include "mesa_alloc/internal/align_up.h"
#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/checked_alloc.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/request_limit.h"
#include "mesa_alloc/internal/resource_cast.h"

namespace mesa {

vk_resource::vk_resource(const VkAllocationCallbacks *object, const VkAllocationCallbacks *device,
                         const VkAllocationCallbacks *instance,
                         VkSystemAllocationScope scope) noexcept
    : callbacks_(object != nullptr     ? object
                 : device != nullptr   ? device
                 : instance != nullptr ? instance
                                       : to_vk(mesa_default_allocator())),
      scope_(scope) {
  // As vk_callbacks: a missing function is named here, not called at address 0 later.
  if (callbacks_->pfnAllocation == nullptr || callbacks_->pfnFree == nullptr) {
    std::fprintf(stderr,
                 "mesa_alloc: vk_resource: the callbacks have no %s (it calls pfnAllocation and "
                 "pfnFree)\n",
                 callbacks_->pfnAllocation == nullptr ? "pfnAllocation" : "pfnFree");
    std::abort();
  }
  if (static_cast<unsigned>(scope) >= MESA_ALLOC_SCOPE_COUNT)
    internal::report_bad_scope("vk_resource", scope);
}

// As callback_resource: a request the callbacks may not be given fails here, untouched by them.
void *vk_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (internal::request_refused(bytes, alignment))
    internal::refuse_request("vk_resource::allocate", alignment);
  // The application's callback may allocate through a debug or logging layer of its own: that
  // allocation's stack is its own, not the C API call that led here (internal/api_caller.h).
  // Called through its own type (a mesa_allocator's alloc_fn takes another enum).
  const void *set_aside = internal::set_aside_api_caller_if_recorded(to_mesa(callbacks_));
  void *p = callbacks_->pfnAllocation(callbacks_->pUserData, bytes, alignment, scope_);
  if (set_aside != nullptr) internal::restore_api_caller(set_aside);
  if (p == nullptr) throw std::bad_alloc();
  // refuse_misaligned frees through the table's free_fn, whose type is pfnFree's.
  if ((reinterpret_cast<std::uintptr_t>(p) & (alignment - 1)) != 0) {
    internal::refuse_misaligned(to_mesa(callbacks_), p, alignment, "vk_resource", "callbacks");
    throw std::bad_alloc();
  }
  return p;
}

void vk_resource::do_deallocate(void *p, std::size_t, std::size_t) {
  callbacks_->pfnFree(callbacks_->pUserData, p);
}

bool vk_resource::do_is_equal(const std::pmr::memory_resource &other) const noexcept {
  if (internal::answer_resource_query(other, this)) return false;
  if (this == &other) return true;
  const auto *that = internal::resource_cast<vk_resource>(other);
  return that != nullptr && that->callbacks_ == callbacks_;
}

namespace {

// A debug_resource's own table(), or nullptr when `resource` is not a debug_resource. Over a
// debug_resource the callbacks are that table: it takes unsized frees and reallocs with no
// header of ours, and every free reaches the layer's checks. Through resource_callbacks, whose
// header sits inside the debug layer's block, a second free would read that header from memory
// the layer has given back (or from another block's, once the address is reused) and never
// reach the layer's double-free check.
const mesa_allocator *debug_table_of(const std::pmr::memory_resource *resource) noexcept {
  if (resource == nullptr) return nullptr;
  const auto *debug = static_cast<const debug_resource *>(
      internal::find_resource(*resource, internal::resource_kind::debug));
  return debug != nullptr ? debug->table() : nullptr;
}

}  // namespace

vk_callbacks::vk_callbacks(std::pmr::memory_resource *resource,
                           vk_internal_observer *observer) noexcept
    : vk_callbacks(resource, debug_table_of(resource), observer) {}

vk_callbacks::vk_callbacks(std::pmr::memory_resource *resource, const mesa_allocator *debug_table,
                           vk_internal_observer *observer) noexcept
    : over_resource_(debug_table == nullptr ? resource : nullptr),
      source_(debug_table != nullptr ? debug_table
              : resource != nullptr  ? over_resource_.table()
                                     : mesa_default_allocator()) {
  init(observer);
}

vk_callbacks::vk_callbacks(const mesa_allocator *table, vk_internal_observer *observer) noexcept
    : over_resource_(nullptr), source_(table != nullptr ? table : mesa_default_allocator()) {
  init(observer);
}

void vk_callbacks::init(vk_internal_observer *observer) noexcept {
  // A missing function would crash the driver at its first call; say so here instead.
  if (const char *missing = internal::missing_table_function(source_)) {
    internal::report_incomplete_table("vk_callbacks", missing);
    std::abort();
  }
  // Vulkan takes the notification callbacks as a pair (VUID-VkAllocationCallbacks-
  // pfnInternalAllocation-00635): a driver would call the missing one at its first free.
  if ((source_->internal_alloc_fn == nullptr) != (source_->internal_free_fn == nullptr)) {
    std::fprintf(stderr,
                 "mesa_alloc: vk_callbacks: the table has %s without %s (Vulkan takes both or "
                 "neither)\n",
                 source_->internal_alloc_fn != nullptr ? "internal_alloc_fn" : "internal_free_fn",
                 source_->internal_alloc_fn != nullptr ? "internal_free_fn" : "internal_alloc_fn");
    std::abort();
  }
  observer_ = observer;
  if (observer == nullptr) {
    callbacks_ = *to_vk(source_);
    return;
  }
  callbacks_.pUserData = this;
  callbacks_.pfnAllocation = &forward_alloc;
  callbacks_.pfnReallocation = &forward_realloc;
  callbacks_.pfnFree = &forward_free;
  callbacks_.pfnInternalAllocation = &notify_alloc;
  callbacks_.pfnInternalFree = &notify_free;
}

void *vk_callbacks::forward_alloc(void *self, std::size_t size, std::size_t alignment,
                                  VkSystemAllocationScope scope) {
  const mesa_allocator *t = static_cast<vk_callbacks *>(self)->source_;
  return t->alloc_fn(t->user_data, size, alignment, to_mesa(scope));
}

void *vk_callbacks::forward_realloc(void *self, void *ptr, std::size_t size, std::size_t alignment,
                                    VkSystemAllocationScope scope) {
  const mesa_allocator *t = static_cast<vk_callbacks *>(self)->source_;
  return t->realloc_fn(t->user_data, ptr, size, alignment, to_mesa(scope));
}

void vk_callbacks::forward_free(void *self, void *ptr) {
  const mesa_allocator *t = static_cast<vk_callbacks *>(self)->source_;
  t->free_fn(t->user_data, ptr);
}

void vk_callbacks::notify_alloc(void *self, std::size_t size, VkInternalAllocationType type,
                                VkSystemAllocationScope scope) {
  auto *me = static_cast<vk_callbacks *>(self);
  me->observer_->internal_allocation(size, type, scope);
  const mesa_allocator *t = me->source_;
  if (t->internal_alloc_fn != nullptr)
    t->internal_alloc_fn(t->user_data, size, type, to_mesa(scope));
}

void vk_callbacks::notify_free(void *self, std::size_t size, VkInternalAllocationType type,
                               VkSystemAllocationScope scope) {
  auto *me = static_cast<vk_callbacks *>(self);
  me->observer_->internal_free(size, type, scope);
  const mesa_allocator *t = me->source_;
  if (t->internal_free_fn != nullptr) t->internal_free_fn(t->user_data, size, type, to_mesa(scope));
}

void vk_multialloc::add_slot(void *slot, void (*set)(void *, void *), std::size_t element_size,
                             std::size_t count, std::size_t alignment) noexcept {
  if (count_ == kMaxArrays || !mesa_alloc_alignment_valid(alignment)) {
    invalid_ = true;
    if (slot != nullptr) set(slot, nullptr);
    return;
  }
  std::size_t bytes;
  const std::size_t offset = internal::align_up(size_, alignment);
  if (offset < size_ || __builtin_mul_overflow(element_size, count, &bytes) ||
      __builtin_add_overflow(offset, bytes, &size_) || size_ > internal::kMaxRequestBytes) {
    invalid_ = true;
  }
  if (alignment > alignment_) alignment_ = alignment;
  slots_[count_] = slot;
  setters_[count_] = set;
  offsets_[count_] = offset;
  ++count_;
}

void *vk_multialloc::place(void *block) noexcept {
  for (int i = 0; i < count_; ++i) {
    if (slots_[i] != nullptr)
      setters_[i](slots_[i],
                  block == nullptr ? nullptr : static_cast<unsigned char *>(block) + offsets_[i]);
  }
  return block;
}

void *vk_multialloc::alloc2(const VkAllocationCallbacks *parent, const VkAllocationCallbacks *alloc,
                            VkSystemAllocationScope scope) noexcept {
  if (invalid_ || count_ == 0) return place(nullptr);
  return place(vk_alloc2(parent, alloc, size_, alignment_, scope));
}

void *vk_multialloc::zalloc2(const VkAllocationCallbacks *parent,
                             const VkAllocationCallbacks *alloc,
                             VkSystemAllocationScope scope) noexcept {
  void *block = alloc2(parent, alloc, scope);
  if (block != nullptr) std::memset(block, 0, size_);
  return block;
}

void *vk_multialloc::allocate(std::pmr::memory_resource *resource) noexcept {
  if (resource == nullptr) internal::report_null_resource("vk_multialloc::allocate", "resource");
  if (invalid_ || count_ == 0) return place(nullptr);
  try {
    return place(resource->allocate(size_, alignment_));
  } catch (...) {
    return place(nullptr);
  }
}

}  // namespace mesa
