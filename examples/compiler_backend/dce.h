// dce.h — dead-code elimination (mark live from side effects, sweep the rest).
//
// What it is for: deletes every instruction whose value does not reach a store, a branch
// condition or a return — including dead cycles of phis around loops, which a use-count
// based DCE would keep.
//
// What it costs: O(instructions + operands + uses); scratch: live and filtered flags per value
// and the worklist. Deleted instructions are returned to the IR allocator (a no-op on an arena).
//
// Example:
//   std::uint32_t removed = eliminate_dead_code(*f, scratch);
#ifndef EXAMPLES_COMPILER_BACKEND_DCE_H_
#define EXAMPLES_COMPILER_BACKEND_DCE_H_

#include <cstdint>

#include "examples/compiler_backend/ir.h"

namespace compiler_backend {

// Returns the number of instructions deleted.
template <class A, class Scratch>
std::uint32_t eliminate_dead_code(Function<A> &f, Scratch &scratch) {
  auto a = scratch.alloc();
  using S = decltype(a);
  vec<std::uint8_t, S> live(f.values.size(), 0, a);
  vec<Instr<A> *, S> worklist(a);
  worklist.reserve(f.values.size());
  auto mark_operands = [&](Instr<A> *i) {
    for (Instr<A> *o : i->operands) {
      if (!live[o->id]) {
        live[o->id] = 1;
        worklist.push_back(o);
      }
    }
  };
  for (Block<A> *b : f.blocks) {
    for (Instr<A> *i : b->instrs) {
      if (op_info(i->op).side_effect) mark_operands(i);
    }
  }
  while (!worklist.empty()) {
    Instr<A> *i = worklist.back();
    worklist.pop_back();
    mark_operands(i);
  }
  auto dead = [&](const Instr<A> *i) { return !op_info(i->op).side_effect && !live[i->id]; };
  // Unlink first, then free: a dead instruction may use another dead one. Each value that has
  // dead users gets its use list filtered once (dead users all define values: only
  // instructions with side effects lack a result, and those are never dead).
  vec<std::uint8_t, S> filtered(f.values.size(), 0, a);
  for (Block<A> *b : f.blocks) {
    for (Instr<A> *i : b->instrs) {
      if (!dead(i)) continue;
      for (Instr<A> *o : i->operands) {
        if (filtered[o->id]) continue;
        filtered[o->id] = 1;
        auto &uses = o->uses;
        std::size_t out = 0;
        for (Instr<A> *u : uses) {
          if (!dead(u)) uses[out++] = u;
        }
        uses.resize(out);
      }
      i->operands.clear();
    }
  }
  std::uint32_t removed = 0;
  for (Block<A> *b : f.blocks) {
    std::size_t out = 0;
    for (Instr<A> *i : b->instrs) {
      if (dead(i)) {
        f.destroy(i);
        ++removed;
      } else {
        b->instrs[out++] = i;
      }
    }
    b->instrs.resize(out);
  }
  return removed;
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_DCE_H_
