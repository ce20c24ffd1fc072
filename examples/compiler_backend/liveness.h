// liveness.h — live-in and live-out sets per block (SSA liveness by path exploration).
//
// What it is for: register allocation and its verifier. A value is live-in at a block when a
// non-phi instruction of the block uses it and it is defined in another block, or when it is
// live-out and not defined in the block; it is live-out when it is live-in at a successor, or
// when a phi of a successor takes it from this block. Phi results are defined at the top of
// their block and never live-in there. Computed the SSA way (Brandner et al., "Computing
// Liveness Sets for SSA-Form Programs"): from each use, walk up the predecessors marking the
// value live until its defining block, stopping where it is already marked — so each
// (block, value) pair is inserted once, with no fixed-point rounds.
//
// What it costs: one hash set per block for live-in and one for live-out, O(live pairs) hash
// insertions; a value-to-block table and a walk stack. All from scratch: rewind when done.
//
// Example:
//   Liveness<S> live = compute_liveness(*f, scratch);
//   bool x_live = live.live_out[b->index].count(x->id) != 0;
#ifndef EXAMPLES_COMPILER_BACKEND_LIVENESS_H_
#define EXAMPLES_COMPILER_BACKEND_LIVENESS_H_

#include <cstdint>

#include "examples/compiler_backend/ir.h"

namespace compiler_backend {

template <class S>
struct Liveness {
  explicit Liveness(const S &a) : live_in(a), live_out(a) {}
  vec<hash_set<std::uint32_t, S>, S> live_in;  // by block index
  vec<hash_set<std::uint32_t, S>, S> live_out;
};

template <class A, class Scratch>
Liveness<decltype(std::declval<Scratch &>().alloc())> compute_liveness(Function<A> &f,
                                                                       Scratch &scratch) {
  auto a = scratch.alloc();
  using S = decltype(a);
  Liveness<S> live(a);
  const std::size_t n = f.blocks.size();
  live.live_in.reserve(n);
  live.live_out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    // push_back of a temporary, not emplace_back(a): polymorphic_allocator would add itself
    // as a second constructor argument (uses-allocator construction).
    live.live_in.push_back(hash_set<std::uint32_t, S>(a));
    live.live_out.push_back(hash_set<std::uint32_t, S>(a));
  }
  vec<std::uint32_t, S> def_block(f.values.size(), 0, a);
  for (Instr<A> *v : f.values) {
    if (v != nullptr) def_block[v->id] = v->block->index;
  }
  vec<std::uint32_t, S> stack(a);
  // `v` is live-in at block `b`: mark it there and up the predecessors to its definition.
  auto live_in_at = [&](std::uint32_t b, std::uint32_t v) {
    stack.push_back(b);
    while (!stack.empty()) {
      std::uint32_t x = stack.back();
      stack.pop_back();
      if (!live.live_in[x].insert(v).second) continue;
      for (Block<A> *p : f.blocks[x]->preds) {
        if (live.live_out[p->index].insert(v).second && def_block[v] != p->index) {
          stack.push_back(p->index);
        }
      }
    }
  };
  for (Block<A> *b : f.blocks) {
    for (Instr<A> *i : b->instrs) {
      if (i->op == Op::kPhi) {
        for (std::size_t k = 0; k < i->operands.size(); ++k) {
          const std::uint32_t p = b->preds[k]->index, v = i->operands[k]->id;
          if (live.live_out[p].insert(v).second && def_block[v] != p) live_in_at(p, v);
        }
        continue;
      }
      for (Instr<A> *o : i->operands) {
        if (def_block[o->id] != b->index) live_in_at(b->index, o->id);
      }
    }
  }
  return live;
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_LIVENESS_H_
