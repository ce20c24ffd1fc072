// inlined_vector — absl::InlinedVector on a std::pmr::polymorphic_allocator, with the two
// operations Abseil gets wrong for allocators that do not propagate fixed.
//
// What it is for: small vectors (operand lists, successor lists) that live inline up to N
// elements and spill to the resource beyond that.
//
// Why a class and not an alias: Abseil 20220623's move assignment takes the other vector's
// heap buffer without comparing allocators, so with two resources the buffer is later freed
// through the wrong one; its member swap() swaps the allocators unconditionally, which does
// not compile for polymorphic_allocator. Here move assignment steals only between equal
// resources (element-wise move otherwise, like std::pmr::vector) and swap() keeps each
// vector's resource (mesa::swap_contents semantics). Everything else is absl::InlinedVector.
//
// What it costs: N * sizeof(T) inline plus a size word and the allocator pointer; nothing
// over absl::InlinedVector at run time except the allocator comparison in move assignment.
//
// Example:
//   mesa::inlined_vector<int, 4> operands(&arena);
//   operands.push_back(1);   // inline; the 5th element spills to `arena`
#ifndef MESA_CONTAINERS_INLINED_VECTOR_H_
#define MESA_CONTAINERS_INLINED_VECTOR_H_

#include <cstddef>
#include <iterator>
#include <memory_resource>
#include <utility>

#include "absl/container/inlined_vector.h"

namespace mesa {

template <class T, std::size_t N>
class inlined_vector : public absl::InlinedVector<T, N, std::pmr::polymorphic_allocator<T>> {
  using base = absl::InlinedVector<T, N, std::pmr::polymorphic_allocator<T>>;

 public:
  using base::base;
  inlined_vector() = default;
  inlined_vector(const inlined_vector &other) = default;
  inlined_vector(inlined_vector &&other) noexcept = default;
  inlined_vector(const inlined_vector &other, const typename base::allocator_type &allocator)
      : base(other, allocator) {}
  inlined_vector(inlined_vector &&other, const typename base::allocator_type &allocator)
      : base(std::move(other), allocator) {}
  ~inlined_vector() = default;

  inlined_vector &operator=(const inlined_vector &other) = default;
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
