// alloc.h — the allocator parameter of the compiler backend's IR and passes.
//
// What it is for: every container and object of the example compiler is built from one
// allocator type `A` (an allocator of std::byte), rebound per element type. The SAME compiler
// code compiles against std::allocator, std::pmr::polymorphic_allocator (on new_delete, a
// monotonic buffer, or a mesa::arena_resource) and the non-virtual mesa::arena_allocator.
// With A = std::pmr::polymorphic_allocator<std::byte>, `vec<T, A>` is exactly mesa::vector<T>.
//
// What it costs: nothing beyond the allocator itself; all aliases are compile-time.
//
// Out of memory: the allocator's std::bad_alloc propagates. At every point where an allocation
// can fail, each object is owned by a container, or by an object_guard until it is, so
// destroying the Shader frees everything; pipeline.h and driver.h turn it into a Diagnostic.
//
// Example:
//   std::pmr::polymorphic_allocator<std::byte> a(&arena);
//   compiler_backend::vec<int, decltype(a)> v(a);
//   Block<decltype(a)> *b = compiler_backend::new_object<Block<decltype(a)>>(a, a);
//   compiler_backend::delete_object(a, b);
#ifndef EXAMPLES_COMPILER_BACKEND_ALLOC_H_
#define EXAMPLES_COMPILER_BACKEND_ALLOC_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace compiler_backend {

template <class A, class T>
using rebind_t = typename std::allocator_traits<A>::template rebind_alloc<T>;

template <class T, class A>
using vec = std::vector<T, rebind_t<A, T>>;

template <class A>
using str = std::basic_string<char, std::char_traits<char>, rebind_t<A, char>>;

template <class K, class V, class A, class H = std::hash<K>, class E = std::equal_to<K>>
using hash_map = std::unordered_map<K, V, H, E, rebind_t<A, std::pair<const K, V>>>;

template <class K, class A, class H = std::hash<K>, class E = std::equal_to<K>>
using hash_set = std::unordered_set<K, H, E, rebind_t<A, K>>;

// One object of type T from `a`; T's constructor gets `args` (pass the allocator explicitly
// to allocator-aware members).
template <class T, class A, class... Args>
T *new_object(const A &a, Args &&...args) {
  rebind_t<A, T> typed(a);
  T *p = std::allocator_traits<rebind_t<A, T>>::allocate(typed, 1);
  try {
    ::new (static_cast<void *>(p)) T(std::forward<Args>(args)...);
  } catch (...) {
    std::allocator_traits<rebind_t<A, T>>::deallocate(typed, p, 1);
    throw;
  }
  return p;
}

template <class T, class A>
void delete_object(const A &a, T *p) {
  if (p == nullptr) return;
  p->~T();
  rebind_t<A, T> typed(a);
  std::allocator_traits<rebind_t<A, T>>::deallocate(typed, p, 1);
}

// Owns a new_object() result until release(): frees it if the code that hands it to its owner
// (typically a push_back, which may throw std::bad_alloc) does not get that far.
template <class T, class A>
class object_guard {
 public:
  object_guard(const A &a, T *p) : a_(a), p_(p) {}
  object_guard(const object_guard &) = delete;
  object_guard &operator=(const object_guard &) = delete;
  ~object_guard() { delete_object(a_, p_); }

  T *get() const { return p_; }
  T *release() {
    T *p = p_;
    p_ = nullptr;
    return p;
  }

 private:
  A a_;
  T *p_;
};

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_ALLOC_H_
