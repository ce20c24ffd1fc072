// liveness_check.h — checks compute_liveness() against liveness computed another way.
//
// What it is for: the allocator and the register verifier both use compute_liveness(), so a bug
// there would give wrong allocations that the verifier accepts. check_liveness() recomputes
// liveness by the classic iterative data-flow fixpoint, written for clarity, not speed, and
// sharing only the Liveness result type with liveness.h: live_out(b) = the live-in of every
// successor, plus the operands the successors' phis take from b; live_in(b) = the operands of b's
// non-phi instructions defined in other blocks, plus live_out(b) minus what b defines. The sets
// start empty and only grow, so sweeping the blocks until nothing changes reaches the least
// fixpoint. It then compares both results set by set. The pipeline runs it under
// CompileOptions::check_liveness (the tests turn it on; the benchmark and the CLI do not).
//
// What it costs: O(rounds × live pairs) hash-set operations, rounds being about the loop
// nesting depth plus two; scratch: one live-in and one live-out hash set per block.
//
// Example:
//   auto live = compute_liveness(*f, scratch);
//   Diagnostic d = check_liveness(*f, live, scratch);
//   if (!d.ok) fprintf(stderr, "%s\n", d.message);
#ifndef EXAMPLES_COMPILER_BACKEND_LIVENESS_CHECK_H_
#define EXAMPLES_COMPILER_BACKEND_LIVENESS_CHECK_H_

#include <cstdint>

#include "examples/compiler_backend/diagnostic.h"
#include "examples/compiler_backend/ir.h"
#include "examples/compiler_backend/liveness.h"

namespace compiler_backend {

template <class A, class Scratch>
Liveness<decltype(std::declval<Scratch &>().alloc())> compute_liveness_by_dataflow(
    Function<A> &f, Scratch &scratch) {
  auto a = scratch.alloc();
  using S = decltype(a);
  Liveness<S> live(a);
  for (std::size_t k = 0; k < f.blocks.size(); ++k) {
    live.live_in.push_back(hash_set<std::uint32_t, S>(a));
    live.live_out.push_back(hash_set<std::uint32_t, S>(a));
  }
  bool changed = true;
  while (changed) {
    changed = false;
    // Any order reaches the fixpoint; last block first usually needs fewer rounds.
    for (std::size_t k = f.blocks.size(); k-- > 0;) {
      Block<A> *b = f.blocks[k];
      auto &out = live.live_out[b->index];
      for (Block<A> *s : b->succs) {
        for (std::uint32_t v : live.live_in[s->index]) changed |= out.insert(v).second;
        for (Instr<A> *phi : s->instrs) {
          if (phi->op != Op::kPhi) break;
          for (std::size_t p = 0; p < s->preds.size(); ++p) {
            if (s->preds[p] == b) changed |= out.insert(phi->operands[p]->id).second;
          }
        }
      }
      auto &in = live.live_in[b->index];
      for (std::uint32_t v : out) {
        if (f.values[v]->block != b) changed |= in.insert(v).second;
      }
      for (Instr<A> *i : b->instrs) {
        if (i->op == Op::kPhi) continue;
        for (Instr<A> *o : i->operands) {
          if (o->block != b) changed |= in.insert(o->id).second;
        }
      }
    }
  }
  return live;
}

// The first value on which `live` and the data-flow fixpoint disagree, as a clear message.
template <class A, class S, class Scratch>
Diagnostic check_liveness(Function<A> &f, const Liveness<S> &live, Scratch &scratch) {
  auto reference = compute_liveness_by_dataflow(f, scratch);
  auto compare = [&](std::uint32_t b, const char *kind, const auto &got,
                     const auto &want) -> Diagnostic {
    for (std::uint32_t v : got) {
      if (want.count(v) == 0) {
        return Diagnostic::error("@%s: bb%u: liveness has %%%u %s, the data-flow fixpoint not",
                                 shown(f.name).text, b, v, kind);
      }
    }
    for (std::uint32_t v : want) {
      if (got.count(v) == 0) {
        return Diagnostic::error("@%s: bb%u: liveness misses %%%u %s (data-flow fixpoint)",
                                 shown(f.name).text, b, v, kind);
      }
    }
    return {};
  };
  if (live.live_in.size() != f.blocks.size() || live.live_out.size() != f.blocks.size()) {
    return Diagnostic::error("@%s: liveness has sets for %zu blocks, the function has %zu",
                             shown(f.name).text, live.live_in.size(), f.blocks.size());
  }
  for (std::uint32_t b = 0; b < f.blocks.size(); ++b) {
    if (Diagnostic d = compare(b, "live-in", live.live_in[b], reference.live_in[b]); !d.ok) {
      return d;
    }
    if (Diagnostic d = compare(b, "live-out", live.live_out[b], reference.live_out[b]); !d.ok) {
      return d;
    }
  }
  return {};
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_LIVENESS_CHECK_H_
