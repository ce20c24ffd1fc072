// arena_containers — STL and Abseil containers on mesa::arena_allocator: the hot-path twins of
// the aliases in containers/containers.h.
//
// What it is for: containers built and thrown away inside one pass on one arena (worklists,
// value numbering tables, liveness sets). Every allocation is the arena's inline bump — no
// virtual call — and every deallocation a no-op; the memory comes back when the arena is
// rewound or released.
//
// What it costs: one pointer per container (the arena); measured against
// polymorphic_allocator over the same arena and std::allocator in
// //benchmarks:container_benchmark (README "Containers and RAII"). Memory freed by a container
// (growth, erase, rehash) stays in the arena until rewind/release: a container that grows by
// doubling leaves about its final size again behind.
//
// Example:
//   mesa::arena_resource arena(upstream);
//   mesa::arena_vector<int> worklist(&arena);
//   mesa::arena_flat_hash_map<int, int> value_numbers(&arena);
//
// Differences from the pmr aliases: the allocator propagates on copy/move assignment and swap
// (member swap is fine across arenas, the arena moves with the contents), and a copy keeps the
// arena. There is no uses-allocator construction: an inner container needs the arena spelled
// out (`outer.emplace_back(&arena)`); arena_allocator has no default constructor, so forgetting
// it does not compile. The hash tables use hash_table_allocator: out of memory inside one is
// a clear abort (Abseil's tables are not exception-safe). Not thread-safe, like the arena.
#ifndef MESA_CONTAINERS_ARENA_CONTAINERS_H_
#define MESA_CONTAINERS_ARENA_CONTAINERS_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <initializer_list>
#include <list>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/container/node_hash_set.h"
#include "containers/arena_allocator.h"
#include "containers/hash_table_allocator.h"
#include "containers/inlined_vector.h"
#include "containers/nothrow_functors.h"
#include "containers/string_hash.h"

namespace mesa {

template <class T>
using arena_vector = std::vector<T, arena_allocator<T>>;
template <class T>
using arena_deque = std::deque<T, arena_allocator<T>>;
template <class T>
using arena_list = std::list<T, arena_allocator<T>>;
using arena_string = std::basic_string<char, std::char_traits<char>, arena_allocator<char>>;

template <class Key, class Compare = std::less<>>
using arena_set = std::set<Key, Compare, arena_allocator<Key>>;
template <class Key, class T, class Compare = std::less<>>
using arena_map = std::map<Key, T, Compare, arena_allocator<std::pair<const Key, T>>>;
template <class Key, class Hash = std::hash<Key>, class Eq = std::equal_to<Key>>
using arena_unordered_set = std::unordered_set<Key, Hash, Eq, arena_allocator<Key>>;
template <class Key, class T, class Hash = std::hash<Key>, class Eq = std::equal_to<Key>>
using arena_unordered_map =
    std::unordered_map<Key, T, Hash, Eq, arena_allocator<std::pair<const Key, T>>>;

template <class Key, class Hash = default_hash<Key>, class Eq = default_eq<Key>>
using arena_flat_hash_set =
    absl::flat_hash_set<Key, internal::nothrow_hash<Hash>, internal::nothrow_eq<Eq>,
                        hash_table_allocator<arena_allocator<Key>>>;
template <class Key, class T, class Hash = default_hash<Key>, class Eq = default_eq<Key>>
using arena_flat_hash_map =
    absl::flat_hash_map<Key, T, internal::nothrow_hash<Hash>, internal::nothrow_eq<Eq>,
                        hash_table_allocator<arena_allocator<std::pair<const Key, T>>>>;
template <class Key, class Hash = default_hash<Key>, class Eq = default_eq<Key>>
using arena_node_hash_set =
    absl::node_hash_set<Key, internal::nothrow_hash<Hash>, internal::nothrow_eq<Eq>,
                        hash_table_allocator<arena_allocator<Key>>>;
template <class Key, class T, class Hash = default_hash<Key>, class Eq = default_eq<Key>>
using arena_node_hash_map =
    absl::node_hash_map<Key, T, internal::nothrow_hash<Hash>, internal::nothrow_eq<Eq>,
                        hash_table_allocator<arena_allocator<std::pair<const Key, T>>>>;
// Abseil's assignments keep the target's allocator, even where they take the source's heap
// buffer: on arenas that would leave the target holding another arena's memory. Here the arena
// moves (and copies) with the contents, as for every other arena container.
template <class T, std::size_t N>
class arena_inlined_vector
    : public internal::length_checked_inlined_vector<T, N, arena_allocator<T>> {
  using base = internal::length_checked_inlined_vector<T, N, arena_allocator<T>>;

 public:
  using base::base;
  // Through Abseil's range constructor: its copy constructor leaks the heap buffer when an
  // element's copy throws (here the arena would take it back, but not until its release).
  arena_inlined_vector(const arena_inlined_vector &other)
      : base(other.begin(), other.end(), other.get_allocator()) {}
  arena_inlined_vector(arena_inlined_vector &&other) noexcept(
      std::is_nothrow_move_constructible_v<base>) = default;
  ~arena_inlined_vector() = default;

  // On one arena, Abseil's assignments (which reuse this vector's storage); across arenas, the
  // new contents are built with the source's arena and swapped in (swap swaps the allocators).
  arena_inlined_vector &operator=(const arena_inlined_vector &other) {
    if (this->get_allocator() == other.get_allocator()) {
      base::operator=(other);
    } else {
      base copy(other);
      base::swap(copy);
    }
    return *this;
  }
  arena_inlined_vector &operator=(std::initializer_list<T> list) {
    this->assign(list.begin(), list.end());
    return *this;
  }
  arena_inlined_vector &operator=(arena_inlined_vector &&other) {
    if (this->get_allocator() == other.get_allocator()) {
      base::operator=(std::move(other));
    } else {
      base moved(std::move(other));
      base::swap(moved);
    }
    return *this;
  }
};

template <class T, std::size_t N>
void swap(arena_inlined_vector<T, N> &a, arena_inlined_vector<T, N> &b) {
  a.swap(b);
}

}  // namespace mesa

#endif  // MESA_CONTAINERS_ARENA_CONTAINERS_H_
