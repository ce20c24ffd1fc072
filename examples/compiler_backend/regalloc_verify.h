// regalloc_verify.h — checks a register assignment against liveness, independently of the
// allocator that made it.
//
// What it is for: the safety net of the register allocator (and its tests). It recomputes
// liveness with compute_liveness() — the allocator's own liveness, so a liveness bug is not
// caught here: CompileOptions::check_liveness checks that against an independent data-flow
// fixpoint (liveness_check.h). It then walks every block backwards from its live-out set, keeping
// the live set and which live value holds each register. Two values interfere when both are live at
// one point (a definition also interferes with everything live after it, and the phis of a block
// with each other and with its live-in values); walking backwards, every such pair meets when one
// of them is defined or becomes live while the other holds the register, so checking the register's
// holder at those events finds every clash. Spill slots are locations too, checked the same way:
// two interfering values in one slot are a clash. It also checks that every value has a register or
// a spill slot and that no register number is out of range.
//
// What it costs: O(instructions + operands) hash-set operations, plus one pass over a location
// table (registers and spill slots, up to the highest slot used) per block; scratch: the
// liveness sets and one working set and location table per block, popped with mark()/rewind()
// after each block.
//
// Example:
//   Diagnostic d = verify_registers(*f, /*num_registers=*/16, scratch);
//   if (!d.ok) fprintf(stderr, "%s\n", d.message);
#ifndef EXAMPLES_COMPILER_BACKEND_REGALLOC_VERIFY_H_
#define EXAMPLES_COMPILER_BACKEND_REGALLOC_VERIFY_H_

#include <algorithm>
#include <cstdint>

#include "examples/compiler_backend/diagnostic.h"
#include "examples/compiler_backend/ir.h"
#include "examples/compiler_backend/liveness.h"
#include "examples/compiler_backend/scratch.h"

namespace compiler_backend {

template <class A, class Scratch>
Diagnostic verify_registers(Function<A> &f, std::uint32_t num_registers, Scratch &scratch) {
  // Registers are locations 0..registers_used-1, spill slot s is registers_used + s (the table
  // is as large as the locations used, not as `num_registers`, which may be any number).
  std::uint32_t registers_used = 0;
  std::uint32_t num_slots = 0;
  for (Instr<A> *v : f.values) {
    if (v == nullptr) continue;
    if (v->loc == kNoLoc) {
      return Diagnostic::error("@%s: %%%u has no register", shown(f.name).text, v->id);
    }
    if (v->loc >= 0 && static_cast<std::uint32_t>(v->loc) >= num_registers) {
      return Diagnostic::error("@%s: %%%u is in r%d, beyond %u registers", shown(f.name).text,
                               v->id, v->loc, num_registers);
    }
    if (v->loc < 0) {
      num_slots = std::max<std::uint32_t>(num_slots, kFirstSpillLoc - v->loc + 1);
    } else {
      registers_used = std::max<std::uint32_t>(registers_used, v->loc + 1);
    }
  }
  auto location = [&](const Instr<A> *v) -> std::uint32_t {
    return v->loc >= 0 ? v->loc : registers_used + (kFirstSpillLoc - v->loc);
  };
  auto live = compute_liveness(f, scratch);
  constexpr std::uint32_t kFree = kNoValue;
  for (Block<A> *b : f.blocks) {  // not f.rpo: the check needs no dominance information
    scratch_scope<Scratch> per_block(scratch);
    using S = decltype(scratch.alloc());
    // The values live at the current point, and which of them holds each location.
    const auto &out = live.live_out[b->index];
    hash_set<std::uint32_t, S> now(out.begin(), out.end(), out.size() + 8,
                                   std::hash<std::uint32_t>(), std::equal_to<std::uint32_t>(),
                                   scratch.alloc());
    vec<std::uint32_t, S> owner(registers_used + num_slots, kFree, scratch.alloc());
    // `v` becomes live (walking backwards) or is defined: nobody else may hold its location.
    auto claim = [&](const Instr<A> *v) -> Diagnostic {
      std::uint32_t &o = owner[location(v)];
      if (o != kFree && o != v->id) {
        const bool in_register = v->loc >= 0;
        return Diagnostic::error("@%s: bb%u: %%%u and %%%u interfere but share %c%d",
                                 shown(f.name).text, b->index, v->id, o, in_register ? 'r' : 's',
                                 in_register ? v->loc : kFirstSpillLoc - v->loc);
      }
      o = v->id;
      return {};
    };
    for (std::uint32_t id : now) {
      if (Diagnostic d = claim(f.values[id]); !d.ok) return d;
    }
    std::size_t first_non_phi = 0;
    while (b->instrs[first_non_phi]->op == Op::kPhi) ++first_non_phi;
    for (std::size_t k = b->instrs.size(); k-- > first_non_phi;) {
      Instr<A> *i = b->instrs[k];
      if (i->has_def()) {
        if (Diagnostic d = claim(i); !d.ok) return d;  // a dead definition writes it too
        now.erase(i->id);
        owner[location(i)] = kFree;
      }
      for (Instr<A> *o : i->operands) {
        if (now.insert(o->id).second) {
          if (Diagnostic d = claim(o); !d.ok) return d;
        }
      }
    }
    // Phis are all defined at the block entry, together with the live-in values.
    for (std::size_t k = 0; k < first_non_phi; ++k) {
      if (Diagnostic d = claim(b->instrs[k]); !d.ok) return d;
    }
  }
  return {};
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_REGALLOC_VERIFY_H_
