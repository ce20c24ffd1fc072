// hash_table_allocator — the allocator of mesa's Abseil hash-table aliases: a
// std::pmr::polymorphic_allocator that never lets an exception into the table.
//
// What it is for: Abseil's raw_hash_set (flat_hash_map/set, node_hash_map/set; Debian's
// 20220623 and later) is not exception-safe: resize() records the new capacity before it
// allocates, and insertion marks a slot full before the element is constructed. A
// std::bad_alloc from the resource (a budget, fault injection, the application's callbacks
// returning NULL) or an exception from an element's constructor leaves the table corrupt — its
// destructor then frees memory it never owned. Google builds without exceptions, so there this
// is an abort. This allocator makes it one here too, with a clear message instead of memory
// corruption:
//   mesa_alloc: out of memory in an Abseil hash table (N bytes) ...
//   mesa_alloc: exception while constructing an element of an Abseil hash table ...
// std:: containers, mesa::inlined_vector, unique_ptr, allocate_shared and the mixin keep their
// exception guarantees; code that must survive allocation failure uses those (or reserves its
// hash tables where failure is acceptable to treat as fatal).
//
// What it costs: nothing on the success path (zero-cost try/catch); same size as
// polymorphic_allocator (one pointer).
#ifndef MESA_CONTAINERS_HASH_TABLE_ALLOCATOR_H_
#define MESA_CONTAINERS_HASH_TABLE_ALLOCATOR_H_

#include <cstddef>
#include <memory_resource>
#include <new>
#include <utility>

namespace mesa {
namespace internal {

[[noreturn, gnu::noinline]] void hash_table_out_of_memory(std::size_t bytes) noexcept;
[[noreturn, gnu::noinline]] void hash_table_construct_failed() noexcept;

}  // namespace internal

template <class T>
class hash_table_allocator : public std::pmr::polymorphic_allocator<T> {
  using base = std::pmr::polymorphic_allocator<T>;

 public:
  using base::base;
  hash_table_allocator() noexcept = default;
  template <class U>
  hash_table_allocator(const std::pmr::polymorphic_allocator<U> &other) noexcept  // NOLINT
      : base(other.resource()) {}

  T *allocate(std::size_t n) {
    try {
      return base::allocate(n);
    } catch (...) {
      internal::hash_table_out_of_memory(n * sizeof(T));
    }
  }

  template <class U, class... Args>
  void construct(U *p, Args &&...args) {
    try {
      base::construct(p, std::forward<Args>(args)...);
    } catch (...) {
      internal::hash_table_construct_failed();
    }
  }

  // As polymorphic_allocator: a copy-constructed table uses the default resource.
  hash_table_allocator select_on_container_copy_construction() const noexcept {
    return hash_table_allocator();
  }
};

}  // namespace mesa

#endif  // MESA_CONTAINERS_HASH_TABLE_ALLOCATOR_H_
