// vulkan.h — the bridge between VkAllocationCallbacks, mesa_allocator and std::pmr.
//
// What it is for: a Vulkan driver receives the application's VkAllocationCallbacks at every
// vkCreate*/vkDestroy*; this header lets every allocation the driver makes on the
// application's behalf — C code, C++ containers, arenas — reach those callbacks, and lets a tool
// hand any project resource (tracking, debug, fault, arena) to vkCreateInstance:
//   - to_mesa / to_vk: VkAllocationCallbacks ⇄ mesa_allocator. The two structs have the same
//     layout (checked at compile time), so the conversion is a pointer cast: a call costs exactly
//     the one indirect call it cost before.
//   - vk_alloc2 / vk_zalloc2 / vk_realloc2 / vk_free2: Mesa's fallback rule (the object's
//     allocator, else the parent's, else the default table).
//   - vk_resource: a std::pmr::memory_resource over the callbacks chosen by that rule (object,
//     else device, else instance, else default) with a scope. One indirect call per operation.
//   - vk_callbacks: VkAllocationCallbacks over any std::pmr::memory_resource or mesa_allocator,
//     optionally forwarding internal-allocation notifications to an observer. Over a table with
//     no observer it is the table itself (no cost); over a resource it costs the
//     resource_callbacks header (16 bytes per block, see resource_callbacks.h), and the scope
//     is dropped (over a debug_resource it is the resource's own table: no header); an observer
//     adds one direct call per operation.
//   - vk_multialloc: several arrays in one allocation, aligned to the largest alignment.
//
// Example:
//   const mesa_allocator *tracking = mesa_tracking_create(nullptr, "app", nullptr);
//   mesa::vk_callbacks callbacks(tracking);
//   vkCreateInstance(&info, callbacks.get(), &instance);  // every host allocation, by scope
//   ...
//   mesa_tracking_print_report(tracking, stderr);
//   mesa_tracking_destroy(tracking);
//
//   // In a driver: one block for an object and its trailing arrays.
//   mesa::vk_multialloc ma;
//   my_pipeline *pipeline;  my_stage *stages;
//   ma.add(&pipeline);  ma.add(&stages, stage_count);
//   if (!ma.zalloc2(&device->alloc, pAllocator, VK_SYSTEM_ALLOCATION_SCOPE_OBJECT))
//     return VK_ERROR_OUT_OF_HOST_MEMORY;
//   ...
//   mesa::vk_free2(&device->alloc, pAllocator, pipeline);
#ifndef MESA_ALLOC_VULKAN_H_
#define MESA_ALLOC_VULKAN_H_

#include <vulkan/vulkan_core.h>

#include <cstddef>
#include <memory_resource>

#include "mesa_alloc/mesa_alloc.h"
#include "mesa_alloc/resource_callbacks.h"

namespace mesa {

static_assert(
    sizeof(VkAllocationCallbacks) == sizeof(mesa_allocator) &&
        offsetof(VkAllocationCallbacks, pUserData) == offsetof(mesa_allocator, user_data) &&
        offsetof(VkAllocationCallbacks, pfnAllocation) == offsetof(mesa_allocator, alloc_fn) &&
        offsetof(VkAllocationCallbacks, pfnReallocation) == offsetof(mesa_allocator, realloc_fn) &&
        offsetof(VkAllocationCallbacks, pfnFree) == offsetof(mesa_allocator, free_fn) &&
        offsetof(VkAllocationCallbacks, pfnInternalAllocation) ==
            offsetof(mesa_allocator, internal_alloc_fn) &&
        offsetof(VkAllocationCallbacks, pfnInternalFree) ==
            offsetof(mesa_allocator, internal_free_fn),
    "mesa_allocator must have the layout of VkAllocationCallbacks");
static_assert(sizeof(VkSystemAllocationScope) == sizeof(mesa_alloc_scope) &&
                  sizeof(VkInternalAllocationType) == sizeof(int),
              "the callback signatures must have the same ABI");
static_assert(static_cast<int>(VK_SYSTEM_ALLOCATION_SCOPE_COMMAND) == MESA_ALLOC_SCOPE_COMMAND &&
                  static_cast<int>(VK_SYSTEM_ALLOCATION_SCOPE_OBJECT) == MESA_ALLOC_SCOPE_OBJECT &&
                  static_cast<int>(VK_SYSTEM_ALLOCATION_SCOPE_CACHE) == MESA_ALLOC_SCOPE_CACHE &&
                  static_cast<int>(VK_SYSTEM_ALLOCATION_SCOPE_DEVICE) == MESA_ALLOC_SCOPE_DEVICE &&
                  static_cast<int>(VK_SYSTEM_ALLOCATION_SCOPE_INSTANCE) ==
                      MESA_ALLOC_SCOPE_INSTANCE,
              "scopes must have the same values");

// The same table seen from the other side (NULL stays NULL). The callback signatures differ
// only in enum vs. int parameters of the same size, which every supported ABI passes alike.
// (clang's -fsanitize=function, in -fsanitize=undefined for C++, reports such calls: the
// library's Meson build compiles its sources with -fno-sanitize=function under b_sanitize's
// undefined; see docs/MIGRATING.md section 2.)
inline const mesa_allocator *to_mesa(const VkAllocationCallbacks *callbacks) noexcept {
  return reinterpret_cast<const mesa_allocator *>(callbacks);
}
inline const VkAllocationCallbacks *to_vk(const mesa_allocator *table) noexcept {
  return reinterpret_cast<const VkAllocationCallbacks *>(table);
}
inline mesa_alloc_scope to_mesa(VkSystemAllocationScope scope) noexcept {
  return static_cast<mesa_alloc_scope>(scope);
}
inline VkSystemAllocationScope to_vk(mesa_alloc_scope scope) noexcept {
  return static_cast<VkSystemAllocationScope>(scope);
}

// Mesa's vk_alloc2 family: `alloc` if non-NULL, else `parent`, else the default table.
inline void *vk_alloc2(const VkAllocationCallbacks *parent, const VkAllocationCallbacks *alloc,
                       std::size_t size, std::size_t alignment,
                       VkSystemAllocationScope scope) noexcept {
  return mesa_alloc2(to_mesa(parent), to_mesa(alloc), size, alignment, to_mesa(scope));
}
inline void *vk_zalloc2(const VkAllocationCallbacks *parent, const VkAllocationCallbacks *alloc,
                        std::size_t size, std::size_t alignment,
                        VkSystemAllocationScope scope) noexcept {
  return mesa_zalloc2(to_mesa(parent), to_mesa(alloc), size, alignment, to_mesa(scope));
}
inline void *vk_realloc2(const VkAllocationCallbacks *parent, const VkAllocationCallbacks *alloc,
                         void *ptr, std::size_t size, std::size_t alignment,
                         VkSystemAllocationScope scope) noexcept {
  return mesa_realloc2(to_mesa(parent), to_mesa(alloc), ptr, size, alignment, to_mesa(scope));
}
inline void vk_free2(const VkAllocationCallbacks *parent, const VkAllocationCallbacks *alloc,
                     void *ptr) noexcept {
  mesa_free2(to_mesa(parent), to_mesa(alloc), ptr);
}

// A std::pmr::memory_resource over the callbacks chosen by the vk_alloc2 rule, extended to the
// whole Vulkan object hierarchy: `object` (the pAllocator of a vkCreate* call) if non-NULL, else
// `device`, else `instance`, else the default table. Every block is requested with `scope`.
// NULL from the callbacks becomes std::bad_alloc. Equal to another vk_resource using the same
// callbacks. Callbacks without pfnAllocation or pfnFree (the two it calls) are refused at
// construction (a message on stderr naming the missing one, then abort).
class vk_resource final : public std::pmr::memory_resource {
 public:
  explicit vk_resource(const VkAllocationCallbacks *object,
                       VkSystemAllocationScope scope = VK_SYSTEM_ALLOCATION_SCOPE_OBJECT) noexcept
      : vk_resource(object, nullptr, nullptr, scope) {}
  vk_resource(const VkAllocationCallbacks *object, const VkAllocationCallbacks *device,
              const VkAllocationCallbacks *instance, VkSystemAllocationScope scope) noexcept;

  // The callbacks in use (never NULL: the default table when nothing else was given).
  const VkAllocationCallbacks *callbacks() const noexcept { return callbacks_; }
  VkSystemAllocationScope scope() const noexcept { return scope_; }

 private:
  void *do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void *p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override;

  const VkAllocationCallbacks *callbacks_;
  VkSystemAllocationScope scope_;
};

// Receives the internal-allocation notifications a driver sends through vk_callbacks
// (vkAllocationCallbacks::pfnInternalAllocation / pfnInternalFree). Called from any thread.
class vk_internal_observer {
 public:
  virtual void internal_allocation(std::size_t size, VkInternalAllocationType type,
                                   VkSystemAllocationScope scope) noexcept = 0;
  virtual void internal_free(std::size_t size, VkInternalAllocationType type,
                             VkSystemAllocationScope scope) noexcept = 0;

 protected:
  ~vk_internal_observer() = default;
};

// VkAllocationCallbacks over a std::pmr::memory_resource or a mesa_allocator, to hand to
// vkCreateInstance / vkCreateDevice / any vkCreate*. Over a resource the callbacks are a
// resource_callbacks table: each block carries its 16-byte header, which the resource counts
// as its own bytes, and the Vulkan scope is not passed on (a resource has none; hand a
// mesa_tracking_create table to count by scope). A debug_resource is the exception: the
// callbacks are its own table(), with no header, so every free reaches its checks. Notifications
// go to `observer` (if any) and
// then to the table's own internal_alloc_fn/internal_free_fn (if any). Must outlive every block
// allocated through it. Not copyable (the callbacks point at it). A NULL resource or table means
// the default table; a table without alloc_fn, realloc_fn or free_fn, or with only one of
// internal_alloc_fn and internal_free_fn (Vulkan takes both or neither), is refused at
// construction (a message on stderr, then abort), not passed on to crash at the driver's first
// call.
class vk_callbacks {
 public:
  explicit vk_callbacks(std::pmr::memory_resource *resource,
                        vk_internal_observer *observer = nullptr) noexcept;
  explicit vk_callbacks(const mesa_allocator *table,
                        vk_internal_observer *observer = nullptr) noexcept;
  // The default table (nullptr alone would name neither overload).
  explicit vk_callbacks(std::nullptr_t, vk_internal_observer *observer = nullptr) noexcept
      : vk_callbacks(static_cast<const mesa_allocator *>(nullptr), observer) {}
  vk_callbacks(const vk_callbacks &) = delete;
  vk_callbacks &operator=(const vk_callbacks &) = delete;

  const VkAllocationCallbacks *get() const noexcept { return &callbacks_; }
  const mesa_allocator *table() const noexcept { return to_mesa(&callbacks_); }

 private:
  vk_callbacks(std::pmr::memory_resource *resource, const mesa_allocator *debug_table,
               vk_internal_observer *observer) noexcept;
  void init(vk_internal_observer *observer) noexcept;
  static void *forward_alloc(void *self, std::size_t size, std::size_t alignment,
                             VkSystemAllocationScope scope);
  static void *forward_realloc(void *self, void *ptr, std::size_t size, std::size_t alignment,
                               VkSystemAllocationScope scope);
  static void forward_free(void *self, void *ptr);
  static void notify_alloc(void *self, std::size_t size, VkInternalAllocationType type,
                           VkSystemAllocationScope scope);
  static void notify_free(void *self, std::size_t size, VkInternalAllocationType type,
                          VkSystemAllocationScope scope);

  resource_callbacks over_resource_;  // used only when built over a resource
  const mesa_allocator *source_;
  vk_internal_observer *observer_ = nullptr;
  VkAllocationCallbacks callbacks_{};
};

// Several arrays in one allocation (Mesa's vk_multialloc): add() each pointer with its count,
// then allocate once; each array starts at its own alignment, the block has the largest one.
// The block is freed by freeing the first pointer added. At most kMaxArrays arrays.
class vk_multialloc {
 public:
  static constexpr int kMaxArrays = 8;

  // Adds `*out` = `count` objects of T aligned to `alignment` (a power of two).
  template <class T>
  void add(T **out, std::size_t count = 1, std::size_t alignment = alignof(T)) noexcept {
    add_slot(out, &set_pointer<T>, sizeof(T), count, alignment);
  }
  // The same for untyped bytes.
  void add_bytes(void **out, std::size_t size, std::size_t alignment) noexcept {
    add_slot(out, &set_pointer<void>, size, 1, alignment);
  }

  // Allocates the block through the vk_alloc2 rule and points every added pointer into it.
  // NULL (and every added pointer NULL) on failure, on overflow or on more than kMaxArrays.
  void *alloc2(const VkAllocationCallbacks *parent, const VkAllocationCallbacks *alloc,
               VkSystemAllocationScope scope) noexcept;
  void *zalloc2(const VkAllocationCallbacks *parent, const VkAllocationCallbacks *alloc,
                VkSystemAllocationScope scope) noexcept;
  // Same from a memory resource; free with resource->deallocate(p, size(), alignment()). A null
  // resource is refused: one line, then abort.
  void *allocate(std::pmr::memory_resource *resource) noexcept;

  std::size_t size() const noexcept { return size_; }
  std::size_t alignment() const noexcept { return alignment_; }

 private:
  // Writes through the pointer's real type (no T** → void** aliasing).
  template <class T>
  static void set_pointer(void *slot, void *value) noexcept {
    *static_cast<T **>(slot) = static_cast<T *>(value);
  }
  void add_slot(void *slot, void (*set)(void *, void *), std::size_t element_size,
                std::size_t count, std::size_t alignment) noexcept;
  void *place(void *block) noexcept;

  std::size_t size_ = 0;
  std::size_t alignment_ = 1;
  int count_ = 0;
  bool invalid_ = false;
  void *slots_[kMaxArrays] = {};
  void (*setters_[kMaxArrays])(void *, void *) = {};
  std::size_t offsets_[kMaxArrays] = {};
};

}  // namespace mesa

#endif  // MESA_ALLOC_VULKAN_H_
