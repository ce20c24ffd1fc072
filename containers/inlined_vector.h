// inlined_vector — absl::InlinedVector on a std::pmr::polymorphic_allocator, with the
// operations Abseil gets wrong for allocators that do not propagate, or for huge counts, fixed.
//
// What it is for: small vectors (operand lists, successor lists) that live inline up to N
// elements and spill to the resource beyond that.
//
// Why a class and not an alias: Abseil 20220623's move assignment takes the other vector's
// heap buffer without comparing allocators, so with two resources the buffer is later freed
// through the wrong one; its member swap() swaps the allocators unconditionally, which does
// not compile for polymorphic_allocator. Here move assignment steals only between equal
// resources (element-wise move otherwise, like std::pmr::vector) and swap() keeps each
// vector's resource (mesa::swap_contents semantics). And Abseil adds size() + n unchecked in
// insert(pos, n, value) and range insert, so a count that wraps (`insert(end(), want - size(),
// x)` with size() > want) writes past the inline buffer; resize() past max_size() is a debug
// assertion, and reserve() and the sized constructors past it throw whatever the allocator
// does. Here all of them throw std::length_error, as std::vector does (the checks are in
// internal::length_checked_inlined_vector, which mesa::arena_inlined_vector uses too).
// Everything else is absl::InlinedVector.
//
// What it costs: N * sizeof(T) inline plus a size word and the allocator pointer; nothing
// over absl::InlinedVector at run time except the allocator comparison in move assignment and
// a compare in insert-of-many, resize, reserve and the sized constructors.
//
// Example:
//   mesa::inlined_vector<int, 4> operands(&arena);
//   operands.push_back(1);   // inline; the 5th element spills to `arena`
#ifndef MESA_CONTAINERS_INLINED_VECTOR_H_
#define MESA_CONTAINERS_INLINED_VECTOR_H_

#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <memory_resource>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "absl/container/inlined_vector.h"

namespace mesa {
namespace internal {

// absl::InlinedVector whose growth by a caller-given count throws std::length_error past
// max_size() instead of wrapping (see the top of this header).
template <class T, std::size_t N, class A>
class length_checked_inlined_vector : public absl::InlinedVector<T, N, A> {
  using base = absl::InlinedVector<T, N, A>;

 public:
  using base::base;
  using typename base::const_iterator;
  using typename base::iterator;
  using typename base::size_type;

  explicit length_checked_inlined_vector(size_type n, const A &allocator = A())
      : base(checked_size(n), allocator) {}
  length_checked_inlined_vector(size_type n, const T &value, const A &allocator = A())
      : base(checked_size(n), value, allocator) {}

  // Abseil's counts elements up to SIZE_MAX / 2 whatever their size; no allocation of more than
  // PTRDIFF_MAX bytes can succeed (the allocator throws std::bad_array_new_length), so a size
  // past this is std::vector's std::length_error, not that.
  size_type max_size() const noexcept { return kMaxSize; }

  // Abseil's emplace copies the element into a "dealias" temporary first (at every position,
  // the end included, and for every insert of n copies) without the allocator: a pmr element's
  // copy then lands on the default resource. Here the end goes to emplace_back, which builds
  // the element in place with the allocator, and elsewhere the temporary is built with the
  // vector's allocator, and Abseil's copy of it is a move, which keeps that allocator.
  template <class... Args>
  iterator emplace(const_iterator pos, Args &&...args) {
    if constexpr (!std::uses_allocator_v<T, A>) {
      return base::emplace(pos, std::forward<Args>(args)...);
    } else {
      if (pos == this->cend()) {
        this->emplace_back(std::forward<Args>(args)...);
        return this->end() - 1;
      }
      const allocator_built value(this->get_allocator(), std::forward<Args>(args)...);
      return base::emplace(pos, std::move(value.get()));
    }
  }
  iterator insert(const_iterator pos, const T &value) { return emplace(pos, value); }
  iterator insert(const_iterator pos, T &&value) { return emplace(pos, std::move(value)); }
  iterator insert(const_iterator pos, size_type n, const T &value) {
    check_growth(n);
    if constexpr (!std::uses_allocator_v<T, A>) {
      return base::insert(pos, n, value);
    } else {
      if (n == 0) return this->begin() + (pos - this->cbegin());
      // Each copy made from one temporary on the vector's allocator (it may alias an element).
      const allocator_built copy(this->get_allocator(), value);
      return base::insert(pos, repeat_iterator(&copy.get(), 0),
                          repeat_iterator(&copy.get(), static_cast<std::ptrdiff_t>(n)));
    }
  }
  iterator insert(const_iterator pos, std::initializer_list<T> list) {
    return insert(pos, list.begin(), list.end());
  }
  template <class It, class Category = typename std::iterator_traits<It>::iterator_category>
  iterator insert(const_iterator pos, It first, It last) {
    if constexpr (std::is_base_of_v<std::forward_iterator_tag, Category>) {
      check_growth(static_cast<size_type>(std::distance(first, last)));
    }
    return base::insert(pos, first, last);
  }

  void resize(size_type n) { base::resize(checked_size(n)); }
  void resize(size_type n, const T &value) { base::resize(checked_size(n), value); }
  void reserve(size_type n) { base::reserve(checked_size(n)); }

 private:
  // A T built with an allocator, as a container builds its elements (uses-allocator
  // construction), destroyed with it.
  class allocator_built {
   public:
    template <class... Args>
    explicit allocator_built(A allocator, Args &&...args) : allocator_(allocator) {
      std::allocator_traits<A>::construct(allocator_, &get(), std::forward<Args>(args)...);
    }
    ~allocator_built() { std::allocator_traits<A>::destroy(allocator_, &get()); }
    allocator_built(const allocator_built &) = delete;
    allocator_built &operator=(const allocator_built &) = delete;
    T &get() const noexcept { return *std::launder(reinterpret_cast<T *>(storage_)); }

   private:
    A allocator_;
    alignas(T) mutable unsigned char storage_[sizeof(T)];
  };

  // `count` times the same element, for Abseil's range insert (which builds each element with
  // the allocator).
  class repeat_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = const T *;
    using reference = const T &;
    repeat_iterator() = default;
    repeat_iterator(const T *value, std::ptrdiff_t index) : value_(value), index_(index) {}
    reference operator*() const { return *value_; }
    pointer operator->() const { return value_; }
    repeat_iterator &operator++() {
      ++index_;
      return *this;
    }
    repeat_iterator operator++(int) {
      repeat_iterator old = *this;
      ++index_;
      return old;
    }
    friend bool operator==(const repeat_iterator &a, const repeat_iterator &b) {
      return a.index_ == b.index_;
    }
    friend bool operator!=(const repeat_iterator &a, const repeat_iterator &b) {
      return a.index_ != b.index_;
    }

   private:
    const T *value_ = nullptr;
    std::ptrdiff_t index_ = 0;
  };

  void check_growth(size_type n) const {
    if (n > this->max_size() - this->size())
      throw std::length_error("mesa::inlined_vector: insert past max_size()");
  }
  static constexpr size_type kMaxSize = static_cast<size_type>(PTRDIFF_MAX) / sizeof(T);

  static size_type checked_size(size_type n) {
    if (n > kMaxSize) throw std::length_error("mesa::inlined_vector: size past max_size()");
    return n;
  }
};

}  // namespace internal

template <class T, std::size_t N>
class inlined_vector
    : public internal::length_checked_inlined_vector<T, N, std::pmr::polymorphic_allocator<T>> {
  using base = internal::length_checked_inlined_vector<T, N, std::pmr::polymorphic_allocator<T>>;

 public:
  using base::base;
  inlined_vector() = default;
  // Copies keep the source's resource. Through Abseil's range constructor, not its copy
  // constructor: that one leaks its heap buffer when an element's copy throws (it marks the
  // buffer as owned only once every element is built).
  inlined_vector(const inlined_vector &other) : inlined_vector(other, other.get_allocator()) {}
  // noexcept exactly when Abseil's is: moving inline elements that allocate (a mesa::deque)
  // can throw, and std::vector relies on this to choose between moving and copying on growth.
  inlined_vector(inlined_vector &&other) noexcept(std::is_nothrow_move_constructible_v<base>) =
      default;
  inlined_vector(const inlined_vector &other, const typename base::allocator_type &allocator)
      : base(other.begin(), other.end(), allocator) {}
  inlined_vector(inlined_vector &&other, const typename base::allocator_type &allocator)
      : base(std::move(other), allocator) {}
  ~inlined_vector() = default;

  inlined_vector &operator=(const inlined_vector &other) = default;
  // Declared here, or `v = {1, 2, 3}` would build a temporary on the default resource.
  inlined_vector &operator=(std::initializer_list<T> list) {
    this->assign(list.begin(), list.end());
    return *this;
  }
  inlined_vector &operator=(inlined_vector &&other) {
    if (this->get_allocator() == other.get_allocator()) {
      base::operator=(std::move(other));
    } else {
      this->assign(std::make_move_iterator(other.begin()), std::make_move_iterator(other.end()));
      other.clear();
    }
    return *this;
  }

  void swap(inlined_vector &other) {
    inlined_vector moved(std::move(*this), other.get_allocator());
    *this = std::move(other);
    other = std::move(moved);
  }
};

template <class T, std::size_t N>
void swap(inlined_vector<T, N> &a, inlined_vector<T, N> &b) {
  a.swap(b);
}

}  // namespace mesa

#endif  // MESA_CONTAINERS_INLINED_VECTOR_H_
