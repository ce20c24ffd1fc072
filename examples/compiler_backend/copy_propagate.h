// copy_propagate.h — copy propagation, including trivial phis.
//
// What it is for: every use of `%b = mov %a` becomes a use of %a, and a phi whose operands
// are all one value v (or the phi itself, around a loop) is replaced by v. A worklist
// revisits the users of every replaced value, so chains of copies and phis of phis collapse.
// The replaced instructions are left without uses for DCE to delete.
//
// What it costs: O(instructions + uses), plus the scans of replace_all_uses for a slot in a
// user's operands: one copy used by all K operands of a phi is one scan, but K different copies
// that one phi takes from K predecessors cost O(K²); scratch: the worklist.
//
// Example:
//   std::uint32_t replaced = copy_propagate(*f, scratch);
#ifndef EXAMPLES_COMPILER_BACKEND_COPY_PROPAGATE_H_
#define EXAMPLES_COMPILER_BACKEND_COPY_PROPAGATE_H_

#include <cstdint>

#include "examples/compiler_backend/ir.h"

namespace compiler_backend {

// Returns the number of copies and trivial phis whose uses were redirected.
template <class A, class Scratch>
std::uint32_t copy_propagate(Function<A> &f, Scratch &scratch) {
  auto a = scratch.alloc();
  vec<Instr<A> *, decltype(a)> worklist(a);
  worklist.reserve(f.values.size());
  for (Block<A> *b : f.blocks) {
    for (auto it = b->instrs.rbegin(); it != b->instrs.rend(); ++it) {
      Op op = (*it)->op;
      if (op == Op::kMov || op == Op::kPhi) worklist.push_back(*it);
    }
  }
  std::uint32_t replaced = 0;
  while (!worklist.empty()) {
    Instr<A> *i = worklist.back();
    worklist.pop_back();
    if (i->uses.empty()) continue;
    Instr<A> *source = nullptr;
    if (i->op == Op::kMov) {
      source = i->operands[0];
    } else if (i->op == Op::kPhi) {
      for (Instr<A> *o : i->operands) {
        if (o == i || o == source) continue;
        if (source != nullptr) {
          source = nullptr;
          break;
        }
        source = o;
      }
    }
    if (source == nullptr || source == i) continue;
    for (Instr<A> *user : i->uses) {
      if (user->op == Op::kPhi || user->op == Op::kMov) worklist.push_back(user);
    }
    replace_all_uses(i, source);
    ++replaced;
  }
  return replaced;
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_COPY_PROPAGATE_H_
