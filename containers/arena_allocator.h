// mesa::arena_allocator<T> — a non-virtual STL allocator bound to an arena_resource.
//
// What it is for: hot containers in compiler passes and other arena-scoped code (ACO's
// monotonic_allocator lesson): every allocation is the arena's inline bump, with no virtual
// call as std::pmr::polymorphic_allocator would make, and deallocate is a no-op.
//
// What it costs: one pointer per container. The allocator propagates on copy assignment, move
// assignment and swap (unlike polymorphic_allocator), so containers moved around a pass keep
// pointing at the arena they were built in. Two arena_allocators compare equal when they use
// the same arena.
//
// Example:
//   mesa::arena_resource arena(upstream);
//   std::vector<instr *, mesa::arena_allocator<instr *>> worklist(&arena);
//   std::unordered_map<int, int, std::hash<int>, std::equal_to<int>,
//                      mesa::arena_allocator<std::pair<const int, int>>> values(&arena);
//
// The arena must outlive the containers. Not thread-safe (neither is the arena).
#ifndef MESA_CONTAINERS_ARENA_ALLOCATOR_H_
#define MESA_CONTAINERS_ARENA_ALLOCATOR_H_

#include <cstddef>
#include <new>
#include <type_traits>

#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/internal/diagnostics.h"

namespace mesa {

template <class T>
class arena_allocator {
 public:
  using value_type = T;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  using is_always_equal = std::false_type;

  // Implicit, like polymorphic_allocator, so `container c(&arena)` works. A null arena is
  // reported here ("mesa_alloc: arena_allocator: no arena (null)") and aborts, rather than
  // crashing at the container's first allocation.
  arena_allocator(arena_resource *arena) noexcept : arena_(arena) {  // NOLINT
    if (arena == nullptr) internal::report_null_resource("arena_allocator", "arena");
  }
  // A literal nullptr does not compile.
  arena_allocator(std::nullptr_t) = delete;
  template <class U>
  arena_allocator(const arena_allocator<U> &other) noexcept : arena_(other.arena()) {}  // NOLINT

  [[nodiscard]] T *allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T *>(arena_->allocate(n * sizeof(T), alignof(T)));
  }
  void deallocate(T *, std::size_t) noexcept {}

  // Copies of a container keep the arena (select_on_container_copy_construction default).
  arena_resource *arena() const noexcept { return arena_; }

  template <class U>
  friend bool operator==(const arena_allocator &a, const arena_allocator<U> &b) noexcept {
    return a.arena() == b.arena();
  }
  template <class U>
  friend bool operator!=(const arena_allocator &a, const arena_allocator<U> &b) noexcept {
    return a.arena() != b.arena();
  }

 private:
  arena_resource *arena_;
};

}  // namespace mesa

#endif  // MESA_CONTAINERS_ARENA_ALLOCATOR_H_
