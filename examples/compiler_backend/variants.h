// variants.h — the memory set-ups the compiler can run on, from std::allocator to arenas.
//
// What it is for: the command-line driver, the tests and the benchmark compile the same
// shaders with the same code on each of these and compare time, memory and checksums:
//
//   std_variant            std::allocator (global operator new), scratch likewise
//   pmr_variant            std::pmr::polymorphic_allocator on one resource for IR and scratch
//                          (e.g. std::pmr::new_delete_resource(): "pmr_newdelete")
//   monotonic_variant      polymorphic_allocator on a std::pmr::monotonic_buffer_resource per
//                          shader; scratch: a fresh monotonic_buffer_resource per scratch scope
//   arena_variant<A>       a mesa::arena_resource per shader for the IR (released when the
//                          shader is done) and one long-lived scratch arena that each pass
//                          pops with mark()/rewind(); A = polymorphic_allocator ("arena") or
//                          the non-virtual mesa::arena_allocator ("arena_static")
//
// Each variant gives `alloc_type`, `begin_shader()` (the allocator for a new shader's IR),
// `scratch()` (a Scratch, see scratch.h), `end_shader()`, and kDropByRelease: true when the
// shader's memory is reclaimed wholesale, so its destructors need not run.
//
// What it costs: the variants add nothing per allocation; begin/end_shader construct and
// release a resource.
//
// Example:
//   arena_variant<mesa::arena_allocator<std::byte>> v(&ir_tracker, &scratch_tracker);
//   compile_shaders(v, ...);   // driver.h
#ifndef EXAMPLES_COMPILER_BACKEND_VARIANTS_H_
#define EXAMPLES_COMPILER_BACKEND_VARIANTS_H_

#include <cstddef>
#include <memory>
#include <memory_resource>
#include <new>
#include <optional>

#include "containers/arena_allocator.h"
#include "examples/compiler_backend/scratch.h"
#include "mesa_alloc/arena_resource.h"

namespace compiler_backend {

// Scratch on an arena: mark()/rewind() pop everything a scope allocated.
template <class A>
class arena_scratch {
 public:
  using marker = mesa::arena_mark;

  explicit arena_scratch(mesa::arena_resource *arena) : arena_(arena) {}

  A alloc() const { return A(arena_); }
  marker mark() { return arena_->mark(); }
  void rewind(const marker &m) { arena_->rewind(m); }

 private:
  mesa::arena_resource *arena_;
};

// Scratch as a stack of monotonic_buffer_resources: mark() opens a fresh one over the
// upstream, rewind() destroys it (a pass-local arena per scope).
class monotonic_scratch {
 public:
  using marker = int;
  static constexpr int kMaxDepth = 8;

  explicit monotonic_scratch(std::pmr::memory_resource *upstream) : upstream_(upstream) {}
  ~monotonic_scratch() {
    while (depth_ > 0) pop();
  }

  std::pmr::polymorphic_allocator<std::byte> alloc() const {
    return depth_ == 0 ? upstream_ : top();
  }
  marker mark() {
    if (depth_ == kMaxDepth) throw std::length_error("monotonic_scratch: scopes nested too deep");
    ::new (static_cast<void *>(&levels_[depth_++])) std::pmr::monotonic_buffer_resource(upstream_);
    return depth_;
  }
  void rewind(marker m) {
    while (depth_ >= m && depth_ > 0) pop();
  }

 private:
  using level = std::aligned_storage_t<sizeof(std::pmr::monotonic_buffer_resource),
                                       alignof(std::pmr::monotonic_buffer_resource)>;
  std::pmr::monotonic_buffer_resource *top() const {
    return std::launder(reinterpret_cast<std::pmr::monotonic_buffer_resource *>(
        const_cast<level *>(&levels_[depth_ - 1])));
  }
  void pop() {
    top()->~monotonic_buffer_resource();
    --depth_;
  }

  std::pmr::memory_resource *upstream_;
  int depth_ = 0;
  level levels_[kMaxDepth];
};

struct std_variant {
  using alloc_type = std::allocator<std::byte>;
  using scratch_type = heap_scratch<alloc_type>;
  static constexpr bool kDropByRelease = false;

  alloc_type begin_shader() { return {}; }
  void end_shader() {}
  scratch_type &scratch() { return scratch_; }

 private:
  scratch_type scratch_;
};

struct pmr_variant {
  using alloc_type = std::pmr::polymorphic_allocator<std::byte>;
  using scratch_type = heap_scratch<alloc_type>;
  static constexpr bool kDropByRelease = false;

  pmr_variant(std::pmr::memory_resource *ir, std::pmr::memory_resource *scratch)
      : ir_(ir), scratch_(alloc_type(scratch)) {}

  alloc_type begin_shader() { return alloc_type(ir_); }
  void end_shader() {}
  scratch_type &scratch() { return scratch_; }

 private:
  std::pmr::memory_resource *ir_;
  scratch_type scratch_;
};

struct monotonic_variant {
  using alloc_type = std::pmr::polymorphic_allocator<std::byte>;
  using scratch_type = monotonic_scratch;
  static constexpr bool kDropByRelease = true;

  monotonic_variant(std::pmr::memory_resource *ir, std::pmr::memory_resource *scratch)
      : ir_upstream_(ir), scratch_(scratch) {}

  alloc_type begin_shader() { return alloc_type(&ir_.emplace(ir_upstream_)); }
  void end_shader() { ir_.reset(); }
  scratch_type &scratch() { return scratch_; }

 private:
  std::pmr::memory_resource *ir_upstream_;
  std::optional<std::pmr::monotonic_buffer_resource> ir_;
  scratch_type scratch_;
};

// Arena blocks for a compiler: small enough that the unused tail of the last block stays small
// next to a shader's IR (a few hundred KiB), large enough that upstream calls are rare.
inline mesa::arena_options compiler_arena_options() {
  mesa::arena_options o;
  o.initial_block_size = 4 << 10;
  o.max_block_size = 16 << 10;
  return o;
}

template <class A>
struct arena_variant {
  using alloc_type = A;
  using scratch_type = arena_scratch<A>;
  static constexpr bool kDropByRelease = true;

  arena_variant(std::pmr::memory_resource *ir, std::pmr::memory_resource *scratch,
                const mesa::arena_options &options = compiler_arena_options())
      : ir_(ir, options), scratch_arena_(scratch, options), scratch_(&scratch_arena_) {}

  alloc_type begin_shader() { return A(&ir_); }
  void end_shader() { ir_.release(); }
  scratch_type &scratch() { return scratch_; }
  mesa::arena_resource &ir_arena() { return ir_; }
  mesa::arena_resource &scratch_arena() { return scratch_arena_; }

 private:
  mesa::arena_resource ir_;
  mesa::arena_resource scratch_arena_;
  scratch_type scratch_;
};

using arena_pmr_variant = arena_variant<std::pmr::polymorphic_allocator<std::byte>>;
using arena_static_variant = arena_variant<mesa::arena_allocator<std::byte>>;

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_VARIANTS_H_
