// regalloc_verify.h — checks a register assignment against liveness, independently of how it
// was made.
//
// What it is for: the safety net of the register allocator (and its tests). It recomputes
// liveness, then walks every block backwards from its live-out set: at each definition, the
// defined value interferes with every other value live after it (a phi with every value live
// at its block's entry, the other phis included), and two interfering values must not share a
// register. It also checks that every value has a register or a spill slot and that no
// register number is out of range.
//
// What it costs: O(instructions × live values); scratch: the liveness sets and one working
// set per block, popped with mark()/rewind() after each block.
//
// Example:
//   Diagnostic d = verify_registers(*f, /*num_registers=*/16, scratch);
//   if (!d.ok) fprintf(stderr, "%s\n", d.message);
#ifndef EXAMPLES_COMPILER_BACKEND_REGALLOC_VERIFY_H_
#define EXAMPLES_COMPILER_BACKEND_REGALLOC_VERIFY_H_

#include <cstdint>

#include "examples/compiler_backend/diagnostic.h"
#include "examples/compiler_backend/ir.h"
#include "examples/compiler_backend/liveness.h"
#include "examples/compiler_backend/scratch.h"

namespace compiler_backend {

template <class A, class Scratch>
Diagnostic verify_registers(Function<A> &f, std::uint32_t num_registers, Scratch &scratch) {
  const char *fn = f.name.c_str();
  for (Instr<A> *v : f.values) {
    if (v == nullptr) continue;
    if (v->loc == kNoLoc) return Diagnostic::error("@%s: %%%u has no register", fn, v->id);
    if (v->loc >= static_cast<std::int32_t>(num_registers)) {
      return Diagnostic::error("@%s: %%%u is in r%d, beyond %u registers", fn, v->id, v->loc,
                               num_registers);
    }
  }
  auto live = compute_liveness(f, scratch);
  auto clash = [&](const Instr<A> *def, std::uint32_t other) -> bool {
    const Instr<A> *o = f.values[other];
    return o != def && def->loc >= 0 && o->loc == def->loc;
  };
  for (Block<A> *b : f.rpo) {
    scratch_scope<Scratch> per_block(scratch);
    hash_set<std::uint32_t, decltype(scratch.alloc())> now(
        live.live_out[b->index].begin(), live.live_out[b->index].end(), 0,
        std::hash<std::uint32_t>(), std::equal_to<std::uint32_t>(), scratch.alloc());
    std::size_t first_non_phi = 0;
    while (b->instrs[first_non_phi]->op == Op::kPhi) ++first_non_phi;
    for (std::size_t k = b->instrs.size(); k-- > first_non_phi;) {
      Instr<A> *i = b->instrs[k];
      if (i->has_def()) {
        for (std::uint32_t other : now) {
          if (clash(i, other)) {
            return Diagnostic::error("@%s: bb%u: %%%u and %%%u interfere but share r%d", fn,
                                     b->index, i->id, other, i->loc);
          }
        }
        now.erase(i->id);
      }
      for (Instr<A> *o : i->operands) now.insert(o->id);
    }
    for (std::size_t k = 0; k < first_non_phi; ++k) now.insert(b->instrs[k]->id);
    for (std::size_t k = 0; k < first_non_phi; ++k) {
      Instr<A> *phi = b->instrs[k];
      for (std::uint32_t other : now) {
        if (clash(phi, other)) {
          return Diagnostic::error("@%s: bb%u: phis/live-ins %%%u and %%%u share r%d", fn, b->index,
                                   phi->id, other, phi->loc);
        }
      }
    }
  }
  return {};
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_REGALLOC_VERIFY_H_
