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
// so heterogeneous lookup stay; a final class or a function pointer is held as a member), and a
// table is built from it, or from anything it is built from (a lambda for a std::function), as
// before:
//   mesa::flat_hash_map<std::string, int, my_hash> m(0, my_hash{seed}, {}, &resource);
// hash_function() and key_eq() return these wrappers, which convert to the program's functor.
//
// What it costs: nothing (a zero-cost try/catch around the inlined call).
#ifndef MESA_CONTAINERS_NOTHROW_FUNCTORS_H_
#define MESA_CONTAINERS_NOTHROW_FUNCTORS_H_

#include <cstddef>
#include <type_traits>
#include <utility>

namespace mesa {
namespace internal {

// `which` ("hash function", "key equality") threw inside a table: one line on stderr, abort.
[[noreturn, gnu::noinline]] void hash_table_functor_failed(const char *which) noexcept;

// The program's functor F: derived from (empty ones stay empty, is_transparent stays) when F is
// a class that allows it, else held as a member (a final class, a function pointer), with
// is_transparent repeated.
template <class F, class = void>
struct transparency {};
template <class F>
struct transparency<F, std::void_t<typename F::is_transparent>> {
  using is_transparent = typename F::is_transparent;
};

template <class F, bool = std::is_class_v<F> && !std::is_final_v<F>>
class functor_holder : public F {
 public:
  functor_holder() = default;
  template <class G, class = std::enable_if_t<std::is_constructible_v<F, G &&>>>
  functor_holder(G &&f) : F(std::forward<G>(f)) {}  // NOLINT: from the program's functor
  const F &functor() const noexcept { return *this; }
};

template <class F>
class functor_holder<F, false> : public transparency<F> {
 public:
  functor_holder() = default;
  template <class G, class = std::enable_if_t<std::is_constructible_v<F, G &&>>>
  functor_holder(G &&f) : f_(std::forward<G>(f)) {}  // NOLINT: from the program's functor
  const F &functor() const noexcept { return f_; }
  operator const F &() const noexcept { return f_; }  // NOLINT: hash_function() reads as F

 private:
  F f_{};
};

template <class Hash>
struct nothrow_hash : functor_holder<Hash> {
  using functor_holder<Hash>::functor_holder;

  template <class... Keys>
  std::enable_if_t<std::is_invocable_v<const Hash &, const Keys &...>, std::size_t> operator()(
      const Keys &...keys) const noexcept {
    try {
      return this->functor()(keys...);
    } catch (...) {
      hash_table_functor_failed("hash function");
    }
  }
};

template <class Eq>
struct nothrow_eq : functor_holder<Eq> {
  using functor_holder<Eq>::functor_holder;

  template <class A, class B>
  std::enable_if_t<std::is_invocable_v<const Eq &, const A &, const B &>, bool> operator()(
      const A &a, const B &b) const noexcept {
    try {
      return this->functor()(a, b);
    } catch (...) {
      hash_table_functor_failed("key equality");
    }
  }
};

}  // namespace internal
}  // namespace mesa

#endif  // MESA_CONTAINERS_NOTHROW_FUNCTORS_H_
