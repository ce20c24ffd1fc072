// string_hash — transparent hashing and equality for string keys, so that looking a key up by a
// literal or a std::string_view allocates nothing.
//
// What it is for: the string-keyed container aliases (mesa::flat_hash_map<mesa::string, T> and
// the other Abseil ones, in containers.h and arena_containers.h) use these by default. Without
// them, m.find("a literal longer than 15 characters") converts the literal to a mesa::string
// first, on the default resource: a call to global operator new on every lookup, the escape
// these containers exist to prevent. The ordered aliases get the same from std::less<>.
// (std::unordered_map has no lookup by another type before C++20: prefer mesa::flat_hash_map
// for string keys, or look up with a mesa::string made on the container's resource.)
//
// What it costs: nothing over hashing the key itself; every basic_string<char> key, whatever its
// allocator, hashes and compares as the std::string_view of its characters.
//
// Example:
//   mesa::flat_hash_map<mesa::string, int> ids(&resource);   // string_hash, string_eq
//   ids.find("a literal or a string_view");                   // no temporary string
//   absl::flat_hash_set<std::string_view, mesa::string_hash, mesa::string_eq> names;
#ifndef MESA_CONTAINERS_STRING_HASH_H_
#define MESA_CONTAINERS_STRING_HASH_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/container/internal/hash_function_defaults.h"
#include "absl/hash/hash.h"

namespace mesa {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return absl::Hash<std::string_view>{}(s);
  }
};

struct string_eq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};

namespace internal {

// The Abseil aliases' defaults: string_hash/string_eq for string keys, Abseil's own otherwise.
template <class Key>
struct default_hash_eq {
  using hash = absl::container_internal::hash_default_hash<Key>;
  using eq = absl::container_internal::hash_default_eq<Key>;
};
template <class Allocator>
struct default_hash_eq<std::basic_string<char, std::char_traits<char>, Allocator>> {
  using hash = string_hash;
  using eq = string_eq;
};

}  // namespace internal

template <class Key>
using default_hash = typename internal::default_hash_eq<Key>::hash;
template <class Key>
using default_eq = typename internal::default_hash_eq<Key>::eq;

}  // namespace mesa

#endif  // MESA_CONTAINERS_STRING_HASH_H_
