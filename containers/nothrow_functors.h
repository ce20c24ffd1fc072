// nothrow_hash, nothrow_eq — the hash and key-equality functors of mesa's Abseil hash-table
// aliases (mesa::flat_hash_map and friends, the arena twins): the program's own, except that an
// exception from one ends the program with a line instead of leaving the table corrupt.
//
// What it is for: Abseil's raw_hash_set (20220623) calls the hash of every element while it
// rehashes, after it has recorded the new capacity and allocated the new array. A hash that
// throws in the middle leaves the table half moved: size() counts elements that iteration and
// find() no longer see, and the old array leaks with the elements still in it. std's unordered
// containers survive such a hash; Abseil's cannot, so, as hash_table_allocator does for
// allocation and element construction, these turn the exception into one line and an abort:
//   mesa_alloc: exception from the hash function of an Abseil hash table; ...
//   mesa_alloc: exception from the key equality of an Abseil hash table; ...
// The functor given is kept whole (derived from: empty functors stay empty, is_transparent and
// so heterogeneous lookup stay), and a table is built from it as before:
//   mesa::flat_hash_map<std::string, int, my_hash> m(0, my_hash{seed}, {}, &resource);
// hash_function() and key_eq() return these wrappers, which convert to the program's functor.
//
// What it costs: nothing (a zero-cost try/catch around the inlined call).
#ifndef MESA_CONTAINERS_NOTHROW_FUNCTORS_H_
#define MESA_CONTAINERS_NOTHROW_FUNCTORS_H_

#include <cstddef>
#include <type_traits>

namespace mesa {
namespace internal {

// `which` ("hash function", "key equality") threw inside a table: one line on stderr, abort.
[[noreturn, gnu::noinline]] void hash_table_functor_failed(const char *which) noexcept;

template <class Hash>
struct nothrow_hash : Hash {
  static_assert(std::is_class_v<Hash> && !std::is_final_v<Hash>,
                "mesa's hash tables take a hash function object of a non-final class");
  nothrow_hash() = default;
  nothrow_hash(const Hash &hash) : Hash(hash) {}  // NOLINT: a table is built from the program's

  template <class... Keys>
  std::size_t operator()(const Keys &...keys) const noexcept {
    try {
      return static_cast<const Hash &>(*this)(keys...);
    } catch (...) {
      hash_table_functor_failed("hash function");
    }
  }
};

template <class Eq>
struct nothrow_eq : Eq {
  static_assert(std::is_class_v<Eq> && !std::is_final_v<Eq>,
                "mesa's hash tables take a key equality object of a non-final class");
  nothrow_eq() = default;
  nothrow_eq(const Eq &eq) : Eq(eq) {}  // NOLINT: a table is built from the program's

  template <class A, class B>
  bool operator()(const A &a, const B &b) const noexcept {
    try {
      return static_cast<const Eq &>(*this)(a, b);
    } catch (...) {
      hash_table_functor_failed("key equality");
    }
  }
};

}  // namespace internal
}  // namespace mesa

#endif  // MESA_CONTAINERS_NOTHROW_FUNCTORS_H_
