// liveness.h — live-in and live-out sets per block (SSA liveness by backward data flow).
//
// What it is for: register allocation and its verifier. A value is live-in at a block when a
// non-phi instruction of the block uses it and it is defined in another block, or when it is
// live-out and not defined in the block; it is live-out when it is live-in at a successor, or
// when a phi of a successor takes it from this block. Phi results are defined at the top of
// their block and never live-in there. Sets only grow, so iterating blocks in post-order until
// no set grows reaches the fixed point (usually in two or three rounds).
//
// What it costs: one hash set per block for live-in and one for live-out; O(rounds × sum of
// set sizes) hash operations. All from scratch: rewind when done with the result.
//
// Example:
//   Liveness<S> live = compute_liveness(*f, scratch);   // needs compute_dominance()
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
  std::uint32_t rounds = 0;
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
  for (Block<A> *b : f.blocks) {
    auto &in = live.live_in[b->index];
    for (Instr<A> *i : b->instrs) {
      if (i->op == Op::kPhi) {
        for (std::size_t k = 0; k < i->operands.size(); ++k) {
          live.live_out[b->preds[k]->index].insert(i->operands[k]->id);
        }
        continue;
      }
      for (Instr<A> *o : i->operands) {
        if (o->block != b) in.insert(o->id);
      }
    }
  }
  for (bool changed = true; changed;) {
    changed = false;
    ++live.rounds;
    for (std::size_t r = f.rpo.size(); r-- > 0;) {
      Block<A> *b = f.rpo[r];
      auto &out = live.live_out[b->index];
      auto &in = live.live_in[b->index];
      const std::size_t before = out.size() + in.size();
      for (Block<A> *s : b->succs) {
        for (std::uint32_t v : live.live_in[s->index]) out.insert(v);
      }
      for (std::uint32_t v : out) {
        if (f.values[v]->block != b) in.insert(v);
      }
      changed = changed || out.size() + in.size() != before;
    }
  }
  return live;
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_LIVENESS_H_
