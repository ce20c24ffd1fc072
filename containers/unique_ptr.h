// unique_ptr, resource_deleter, allocate_unique, allocate_shared — owning pointers whose
// objects (and, for shared_ptr, control blocks) come from a std::pmr::memory_resource.
//
// What it is for: `std::make_unique`/`std::make_shared` use global operator new. These give the
// same ownership with the memory from a resource, freed back to that resource with the right
// size and alignment.
//
// What it costs:
//   - resource_deleter<T> is one pointer: sizeof(mesa::unique_ptr<T>) == 2 * sizeof(void *).
//   - Plain types: no per-object overhead (the block is sizeof(T), alignof(T)).
//   - Types with a virtual destructor: two words before the object (16 bytes on 64-bit
//     targets; alignof(T) if larger) record the block's size and alignment, so that a
//     unique_ptr<Base> deleting a Derived returns sizeof(Derived) — the deleter stays one
//     pointer and needs no type erasure.
//   - Arrays: max(alignof(T), sizeof(size_t)) bytes before the elements hold the count (like
//     the cookie of new[]).
//   - allocate_shared: one block from the resource for the control block and the object
//     (std::allocate_shared over a polymorphic_allocator).
//
// Example:
//   auto node = mesa::allocate_unique<ir_node>(&arena, opcode, operands);
//   mesa::unique_ptr<ir_value> base = std::move(node);   // ir_value has a virtual destructor
//   auto regs = mesa::allocate_unique<uint32_t[]>(&arena, 64);     // value-initialized
//   std::shared_ptr<shader> s = mesa::allocate_shared<shader>(&arena, "vs");
//
// Objects are constructed with uses-allocator construction: allocate_unique<mesa::vector<int>>
// gives the vector the same resource. A resource_deleter only deletes objects made by
// allocate_unique (the layout above); do not hand it pointers from elsewhere. A unique_ptr
// converts to a unique_ptr of a base class only when that base has a virtual destructor.
#ifndef MESA_CONTAINERS_UNIQUE_PTR_H_
#define MESA_CONTAINERS_UNIQUE_PTR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <new>
#include <type_traits>
#include <utility>

#include "mesa_alloc/internal/diagnostics.h"

namespace mesa {
namespace internal {

// Block layout of allocate_unique<T> for a single object.
template <class T>
struct object_layout {
  // What the two words just before a polymorphic object hold.
  struct header {
    std::size_t bytes;
    std::size_t alignment;
  };
  static constexpr bool has_header = std::has_virtual_destructor_v<T>;
  static constexpr std::size_t alignment = has_header && alignof(header) > alignof(T)
                                               ? alignof(header)
                                               : alignof(T);
  static constexpr std::size_t offset =
      has_header ? (alignof(T) > sizeof(header) ? alignof(T) : sizeof(header)) : 0;
  static constexpr std::size_t bytes = offset + sizeof(T);
};

// Block layout of allocate_unique<T[]>: the count sits just before the first element.
template <class T>
struct array_layout {
  static constexpr std::size_t alignment = alignof(T) > alignof(std::size_t) ? alignof(T)
                                                                             : alignof(std::size_t);
  static constexpr std::size_t offset = alignof(T) > sizeof(std::size_t) ? alignof(T)
                                                                         : sizeof(std::size_t);
  static constexpr std::size_t max_count = (SIZE_MAX - offset) / sizeof(T);
  static constexpr std::size_t bytes(std::size_t count) { return offset + count * sizeof(T); }
  static std::size_t &count(T *first) { return reinterpret_cast<std::size_t *>(first)[-1]; }
};

// What a deleter without a resource lacks, when it is asked to delete an object.
[[noreturn]] inline void deleter_without_resource() noexcept {
  report_null_resource("resource_deleter",
                       "resource (a default-constructed deleter was given an object)");
}

}  // namespace internal

// Destroys an object made by allocate_unique and returns its block to the resource. A null
// `resource` (given to allocate_unique, or a default-constructed deleter asked to delete an
// object) is reported ("mesa_alloc: allocate_unique: no resource (null)", or for the deleter
// "mesa_alloc: resource_deleter: no resource (a default-constructed deleter was given an object)
// (null)") and aborts.
template <class T>
class resource_deleter {
 public:
  // A deleter with no resource: only for an empty unique_ptr (std::unique_ptr needs it).
  constexpr resource_deleter() noexcept = default;
  explicit resource_deleter(std::pmr::memory_resource *resource) noexcept : resource_(resource) {}

  // Derived-to-base: only towards a base with a virtual destructor (the header then tells the
  // deleter the size of what it deletes).
  template <class U, class = std::enable_if_t<std::is_convertible_v<U *, T *> &&
                                              (std::is_same_v<std::remove_cv_t<U>,
                                                              std::remove_cv_t<T>> ||
                                               std::has_virtual_destructor_v<T>)>>
  resource_deleter(const resource_deleter<U> &other) noexcept  // NOLINT: implicit like std's
      : resource_(other.resource()) {}

  std::pmr::memory_resource *resource() const noexcept { return resource_; }

  void operator()(T *p) const noexcept {
    using layout = internal::object_layout<std::remove_cv_t<T>>;
    if (resource_ == nullptr) internal::deleter_without_resource();
    if constexpr (layout::has_header) {
      // The most-derived object, where the block's header is (multiple inheritance moves `p`).
      auto *object =
          static_cast<char *>(const_cast<void *>(dynamic_cast<const volatile void *>(p)));
      const auto header = reinterpret_cast<const typename layout::header *>(object)[-1];
      const std::size_t offset =
          header.alignment > sizeof(header) ? header.alignment : sizeof(header);
      p->~T();
      resource_->deallocate(object - offset, header.bytes, header.alignment);
    } else {
      p->~T();
      resource_->deallocate(const_cast<std::remove_cv_t<T> *>(p), sizeof(T), alignof(T));
    }
  }

 private:
  std::pmr::memory_resource *resource_ = nullptr;
};

// Arrays: destroys the elements in reverse order, then returns the block.
template <class T>
class resource_deleter<T[]> {
 public:
  constexpr resource_deleter() noexcept = default;
  explicit resource_deleter(std::pmr::memory_resource *resource) noexcept : resource_(resource) {}
  // As std::default_delete<T[]>: from the deleter of U[] when a U(*)[] converts to a T(*)[],
  // so a unique_ptr<const T[]> can take over a unique_ptr<T[]>.
  template <class U, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
  resource_deleter(const resource_deleter<U[]> &other) noexcept  // NOLINT: implicit, as std's
      : resource_(other.resource()) {}

  std::pmr::memory_resource *resource() const noexcept { return resource_; }

  void operator()(T *const_first) const noexcept {
    using value = std::remove_cv_t<T>;  // the array was made as value[] (allocate_unique)
    using layout = internal::array_layout<value>;
    value *first = const_cast<value *>(const_first);
    if (resource_ == nullptr) internal::deleter_without_resource();
    const std::size_t count = layout::count(first);
    for (std::size_t i = count; i > 0; --i) first[i - 1].~value();
    resource_->deallocate(reinterpret_cast<char *>(first) - layout::offset, layout::bytes(count),
                          layout::alignment);
  }

 private:
  std::pmr::memory_resource *resource_ = nullptr;
};

template <class T>
using unique_ptr = std::unique_ptr<T, resource_deleter<T>>;

// One object of type T from `resource`, constructed from `args` (uses-allocator construction).
template <class T, class... Args>
std::enable_if_t<!std::is_array_v<T>, unique_ptr<T>> allocate_unique(
    std::pmr::memory_resource *resource, Args &&...args) {
  using value = std::remove_cv_t<T>;  // allocate_unique<const T> builds a T and hands out const
  using layout = internal::object_layout<value>;
  if (resource == nullptr) internal::report_null_resource("allocate_unique", "resource");
  char *block = static_cast<char *>(resource->allocate(layout::bytes, layout::alignment));
  value *object = reinterpret_cast<value *>(block + layout::offset);
  if constexpr (layout::has_header) {
    new (reinterpret_cast<typename layout::header *>(object) - 1)
        typename layout::header{layout::bytes, layout::alignment};
  }
  try {
    std::pmr::polymorphic_allocator<value>(resource).construct(object, std::forward<Args>(args)...);
  } catch (...) {
    resource->deallocate(block, layout::bytes, layout::alignment);
    throw;
  }
  return unique_ptr<T>(object, resource_deleter<T>(resource));
}

// `count` value-initialized elements of type T from `resource` (uses-allocator construction).
// Throws std::bad_array_new_length if the block size overflows.
template <class T>
std::enable_if_t<std::is_array_v<T> && std::extent_v<T> == 0, unique_ptr<T>> allocate_unique(
    std::pmr::memory_resource *resource, std::size_t count) {
  using element = std::remove_cv_t<std::remove_extent_t<T>>;  // const T[]: built as T[]
  using layout = internal::array_layout<element>;
  if (resource == nullptr) internal::report_null_resource("allocate_unique", "resource");
  if (count > layout::max_count) throw std::bad_array_new_length();
  char *block = static_cast<char *>(resource->allocate(layout::bytes(count), layout::alignment));
  element *first = reinterpret_cast<element *>(block + layout::offset);
  std::size_t constructed = 0;
  try {
    std::pmr::polymorphic_allocator<element> allocator(resource);
    for (; constructed < count; ++constructed) allocator.construct(first + constructed);
  } catch (...) {
    while (constructed > 0) first[--constructed].~element();
    resource->deallocate(block, layout::bytes(count), layout::alignment);
    throw;
  }
  layout::count(first) = count;
  return unique_ptr<T>(first, resource_deleter<T>(resource));
}

// Arrays of known bound are not supported (as std::make_unique).
template <class T, class... Args>
std::enable_if_t<std::extent_v<T> != 0> allocate_unique(std::pmr::memory_resource *,
                                                        Args &&...) = delete;

// A shared_ptr whose control block and object are one block from `resource`.
template <class T, class... Args>
std::shared_ptr<T> allocate_shared(std::pmr::memory_resource *resource, Args &&...args) {
  if (resource == nullptr) internal::report_null_resource("allocate_shared", "resource");
  using value = std::remove_cv_t<T>;  // allocate_shared<const T> builds a T and hands out const
  return std::allocate_shared<value>(std::pmr::polymorphic_allocator<value>(resource),
                                     std::forward<Args>(args)...);
}

}  // namespace mesa

#endif  // MESA_CONTAINERS_UNIQUE_PTR_H_
