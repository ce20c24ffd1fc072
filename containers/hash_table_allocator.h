// hash_table_allocator — the allocator of mesa's Abseil hash-table aliases: the underlying
// allocator (polymorphic_allocator or arena_allocator), except that no exception ever
// reaches the table.
//
// What it is for: Abseil's raw_hash_set (flat_hash_map/set, node_hash_map/set; Debian's
// 20220623 and later) is not exception-safe: resize() records the new capacity before it
// allocates, and insertion marks a slot full before the element is constructed. A
// std::bad_alloc from the resource (a budget, fault injection, the application's callbacks
// returning NULL) or an exception from an element's constructor leaves the table corrupt — its
// destructor then frees memory it never owned. Google builds without exceptions, so there this
// is an abort. This allocator makes it one here too, with a clear message instead of memory
// corruption:
//   mesa_alloc: out of memory in an Abseil hash table (a block of N bytes); ...
//   mesa_alloc: exception while constructing an element of an Abseil hash table ...
// std:: containers, mesa::inlined_vector, unique_ptr, allocate_shared and the mixin keep their
// exception guarantees; code that must survive allocation failure uses those (or reserves its
// hash tables where failure is acceptable to treat as fatal).
//
// What it costs: nothing on the success path (zero-cost try/catch); the same size as the
// allocator underneath (one pointer).
#ifndef MESA_CONTAINERS_HASH_TABLE_ALLOCATOR_H_
#define MESA_CONTAINERS_HASH_TABLE_ALLOCATOR_H_

#include <cstddef>
#include <memory>
#include <memory_resource>
#include <type_traits>
#include <utility>

#include "mesa_alloc/internal/diagnostics.h"

namespace mesa {
namespace internal {

// `count` objects of `size` bytes could not be allocated (count * size may not fit size_t).
[[noreturn, gnu::noinline]] void hash_table_out_of_memory(std::size_t count,
                                                          std::size_t size) noexcept;
[[noreturn, gnu::noinline]] void hash_table_construct_failed() noexcept;

}  // namespace internal

// `Allocator` is the allocator underneath: std::pmr::polymorphic_allocator<T> (mesa::flat_hash_map
// and friends) or mesa::arena_allocator<T> (mesa::arena_flat_hash_map and friends).
template <class Allocator>
class hash_table_allocator : public Allocator {
  using traits = std::allocator_traits<Allocator>;

 public:
  using value_type = typename traits::value_type;
  template <class U>
  struct rebind {
    using other = hash_table_allocator<typename traits::template rebind_alloc<U>>;
  };

  hash_table_allocator() = default;
  // From a resource or an arena, implicitly. A null one is reported here ("mesa_alloc:
  // hash_table_allocator: no resource (null)") and aborts, rather than crashing at the table's
  // first allocation.
  template <class Source, class = std::enable_if_t<std::is_pointer_v<Source> &&
                                                   std::is_constructible_v<Allocator, Source>>>
  hash_table_allocator(Source source) noexcept : Allocator(not_null(source)) {}  // NOLINT
  // A literal nullptr does not compile.
  hash_table_allocator(std::nullptr_t) = delete;
  // From the underlying allocator or anything that converts to it (another
  // hash_table_allocator, the allocator of an outer container in uses-allocator construction).
  template <class Other,
            class = std::enable_if_t<!std::is_pointer_v<Other> && !std::is_null_pointer_v<Other> &&
                                     std::is_convertible_v<const Other &, Allocator>>>
  hash_table_allocator(const Other &other) noexcept : Allocator(other) {}  // NOLINT

  value_type *allocate(std::size_t n) {
    try {
      return traits::allocate(static_cast<Allocator &>(*this), n);
    } catch (...) {
      internal::hash_table_out_of_memory(n, sizeof(value_type));
    }
  }

  template <class U, class... Args>
  void construct(U *p, Args &&...args) {
    try {
      traits::construct(static_cast<Allocator &>(*this), p, std::forward<Args>(args)...);
    } catch (...) {
      internal::hash_table_construct_failed();
    }
  }

  // As the underlying allocator (polymorphic_allocator: a copied table uses the default
  // resource; arena_allocator: the same arena).
  hash_table_allocator select_on_container_copy_construction() const {
    return traits::select_on_container_copy_construction(*this);
  }

 private:
  template <class Source>
  static Source not_null(Source source) noexcept {
    if (source == nullptr) internal::report_null_resource("hash_table_allocator", "resource");
    return source;
  }
};

}  // namespace mesa

#endif  // MESA_CONTAINERS_HASH_TABLE_ALLOCATOR_H_
