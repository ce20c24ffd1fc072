// containers — STL and Abseil containers whose every allocation goes through a resource.
//
// What it is for: C++ driver components keep their data in these aliases instead of std:: or
// absl:: containers with the default allocator, so that the application's callbacks, the
// tracking and debug resources, arenas and budgets see every byte — including what inline
// header code allocates (growth, rehash, nodes, nested strings).
//
// What it costs: the allocator is std::pmr::polymorphic_allocator: one pointer per container
// and one virtual call per allocation/deallocation. For hot paths on an arena use
// mesa::arena_allocator (containers/arena_allocator.h): no virtual call. The Abseil hash tables
// use mesa::hash_table_allocator, a polymorphic_allocator that turns an exception inside the
// table into a clear abort, because Abseil's tables are not exception-safe (see that header).
//
// Example:
//   mesa::callback_resource resource(device_allocator, MESA_ALLOC_SCOPE_DEVICE);
//   mesa::vector<mesa::string> names(&resource);
//   names.emplace_back("a name long enough to leave the small-string buffer");  // on resource
//   mesa::flat_hash_map<int, mesa::vector<int>> uses(&resource);
//   uses[7].push_back(1);                 // the inner vector allocates from `resource` too
//
// Rules (the std::pmr rules, enforced by nothing — see README "Containers and RAII"):
//   - Always pass the resource. A default-constructed container uses
//     std::pmr::get_default_resource(), which is operator new unless set at start-up.
//   - Copy construction does NOT copy the resource (polymorphic_allocator's
//     select_on_container_copy_construction gives the default resource; only inlined_vector
//     keeps the source's): write `mesa::vector<int> copy(v, v.get_allocator())` or
//     `copy(v, &resource)`. Likewise `a + b` on mesa::string returns a string on the default
//     resource: append into a string made on the resource instead.
//   - Nested containers get the outer container's resource (uses-allocator construction),
//     through one level of std::pair or std::tuple. Under C++17 it stops at a pair inside a
//     pair (a map whose mapped type is a pair of strings: the strings are on the default
//     resource; C++20 recurses), and in any standard at std::optional, std::variant and a
//     struct without allocator-extended constructors: give those the resource yourself.
//   - s.substr() returns a string on the default resource (until C++23), like `a + b`: use
//     mesa::string(s.data() + pos, n, s.get_allocator()) or a std::string_view.
//   - String keys are looked up without a temporary (string_hash.h; std::less<> for map and
//     set), except in unordered_map/unordered_set, which cannot before C++20.
//   - Move construction steals the buffer and the resource. Move assignment between
//     containers on unequal resources copies element by element into the target's resource.
//   - Member swap() between containers on unequal resources is undefined behaviour (the
//     standard's rule; in practice blocks are later freed through the wrong resource): use
//     mesa::swap_contents, which costs no allocation when the resources are equal. The same
//     rule holds for every operation that moves nodes between containers: merge(),
//     extract() + insert(node) and list::splice() across resources free the moved nodes
//     through the wrong resource later (libstdc++ aborts list's at once): move the elements
//     instead (insert(std::make_move_iterator(...)), then erase). Abseil's node handles
//     (extract) do not compile on the mesa:: hash aliases: polymorphic_allocator cannot be
//     assigned.
#ifndef MESA_CONTAINERS_CONTAINERS_H_
#define MESA_CONTAINERS_CONTAINERS_H_

#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory_resource>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/container/node_hash_set.h"
#include "containers/hash_table_allocator.h"
#include "containers/inlined_vector.h"
#include "containers/nothrow_functors.h"
#include "containers/string_hash.h"

namespace mesa {

template <class T>
using allocator = std::pmr::polymorphic_allocator<T>;

template <class T>
using vector = std::pmr::vector<T>;
template <class T>
using deque = std::pmr::deque<T>;
template <class T>
using list = std::pmr::list<T>;
using string = std::pmr::string;

template <class Key, class Compare = std::less<>>
using set = std::pmr::set<Key, Compare>;
template <class Key, class T, class Compare = std::less<>>
using map = std::pmr::map<Key, T, Compare>;
template <class Key, class Hash = std::hash<Key>, class Eq = std::equal_to<Key>>
using unordered_set = std::pmr::unordered_set<Key, Hash, Eq>;
template <class Key, class T, class Hash = std::hash<Key>, class Eq = std::equal_to<Key>>
using unordered_map = std::pmr::unordered_map<Key, T, Hash, Eq>;

template <class Key, class Hash = default_hash<Key>, class Eq = default_eq<Key>>
using flat_hash_set =
    absl::flat_hash_set<Key, internal::nothrow_hash<Hash>, internal::nothrow_eq<Eq>,
                        hash_table_allocator<allocator<Key>>>;
template <class Key, class T, class Hash = default_hash<Key>, class Eq = default_eq<Key>>
using flat_hash_map =
    absl::flat_hash_map<Key, T, internal::nothrow_hash<Hash>, internal::nothrow_eq<Eq>,
                        hash_table_allocator<allocator<std::pair<const Key, T>>>>;
template <class Key, class Hash = default_hash<Key>, class Eq = default_eq<Key>>
using node_hash_set =
    absl::node_hash_set<Key, internal::nothrow_hash<Hash>, internal::nothrow_eq<Eq>,
                        hash_table_allocator<allocator<Key>>>;
template <class Key, class T, class Hash = default_hash<Key>, class Eq = default_eq<Key>>
using node_hash_map =
    absl::node_hash_map<Key, T, internal::nothrow_hash<Hash>, internal::nothrow_eq<Eq>,
                        hash_table_allocator<allocator<std::pair<const Key, T>>>>;
// mesa::inlined_vector<T, N> is in containers/inlined_vector.h (a thin class over
// absl::InlinedVector: Abseil's move assignment and swap mishandle unequal resources).

// Exchanges the contents of two containers of the same type, each keeping its own resource
// (or arena: for the arena twins, whose allocator propagates, too). Equal resources: the
// buffers change hands and nothing is allocated, except that the inline elements of a
// mesa::inlined_vector are moved, which allocates for elements whose move does (libstdc++'s
// deque). Unequal resources: the elements move into the other resource one by one (allocates;
// if that throws std::bad_alloc both containers are left valid but their contents unspecified
// — the basic guarantee of the moves it is made of).
template <class Container>
void swap_contents(Container &a, Container &b) {
  if (a.get_allocator() == b.get_allocator()) {
    a.swap(b);  // defined for equal allocators; a deque's moves would allocate new maps
    return;
  }
  // Each new content is built on its target's allocator, so the assignments below hand a and
  // b their own allocators back whether the allocator propagates on move assignment or not.
  Container into_a(std::move(b), a.get_allocator());
  Container into_b(std::move(a), b.get_allocator());
  a = std::move(into_a);
  b = std::move(into_b);
}

}  // namespace mesa

#endif  // MESA_CONTAINERS_CONTAINERS_H_
