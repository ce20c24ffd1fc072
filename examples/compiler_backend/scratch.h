// scratch.h — scratch memory for compiler passes: the interface and the heap version.
//
// What it is for: every pass takes a `Scratch &` and builds its temporary containers from
// `scratch.alloc()`. The driver brackets each pass with `mark()`/`rewind()`, and a pass may
// do the same around a loop body, so on an arena the scratch memory of a pass is popped at
// the pass end with no per-object frees. Any type with these members is a Scratch:
//   A alloc();  marker mark();  void rewind(marker);
// heap_scratch<A> is the version for allocators that free per object (std::allocator,
// std::pmr::new_delete_resource): mark/rewind do nothing. The arena versions are in
// variants.h.
//
// What it costs: nothing here; the allocator's own cost.
//
// Example:
//   heap_scratch<std::allocator<std::byte>> scratch;
//   auto m = scratch.mark();
//   vec<int, std::allocator<std::byte>> worklist(scratch.alloc());
//   scratch.rewind(m);
#ifndef EXAMPLES_COMPILER_BACKEND_SCRATCH_H_
#define EXAMPLES_COMPILER_BACKEND_SCRATCH_H_

namespace compiler_backend {

template <class A>
class heap_scratch {
 public:
  struct marker {};

  heap_scratch() = default;
  explicit heap_scratch(const A &a) : alloc_(a) {}

  A alloc() const { return alloc_; }
  marker mark() { return {}; }
  void rewind(marker) {}

 private:
  A alloc_;
};

// Rewinds `scratch` to the point of construction when it goes out of scope.
template <class Scratch>
class scratch_scope {
 public:
  explicit scratch_scope(Scratch &scratch) : scratch_(scratch), marker_(scratch.mark()) {}
  scratch_scope(const scratch_scope &) = delete;
  scratch_scope &operator=(const scratch_scope &) = delete;
  ~scratch_scope() { scratch_.rewind(marker_); }

 private:
  Scratch &scratch_;
  typename Scratch::marker marker_;
};

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_SCRATCH_H_
