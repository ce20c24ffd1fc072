// constant_fold.h — constant folding and algebraic simplification.
//
// What it is for: an instruction whose operands are all constants becomes a constant
// (32-bit wrap-around semantics, shift amounts modulo 32); identities become copies or
// constants (x+0, x-0, x*1, x|0, x^0, x<<0 → mov x; x*0, x&0, x-x, x^x → 0; select on a
// constant condition → mov; min/max(x, x) → mov x; eq(x, x) → 1; lt(x, x) → 0; a phi of equal
// constants → that constant). A worklist revisits the users of every changed instruction, so
// chains fold completely. Copies it creates are removed by copy propagation + DCE.
//
// What it costs: O(instructions + uses) on generated shaders; scratch: the worklist. Two cases
// are quadratic, which hand-written or hostile input can reach: N phis of one block that all
// fold (each constant is moved past the phis after it), and a value whose K users all fold
// (each use-list removal scans the list: uses do not record their operand slot).
//
// Example:
//   std::uint32_t changed = constant_fold(*f, scratch);
#ifndef EXAMPLES_COMPILER_BACKEND_CONSTANT_FOLD_H_
#define EXAMPLES_COMPILER_BACKEND_CONSTANT_FOLD_H_

#include <cstdint>

#include "examples/compiler_backend/ir.h"

namespace compiler_backend {

// The value of `op` on `v` (operands already evaluated); false for non-arithmetic ops.
inline bool evaluate(Op op, const std::int32_t *v, std::int32_t &out) {
  const std::uint32_t a = static_cast<std::uint32_t>(v[0]);
  const std::uint32_t b = static_cast<std::uint32_t>(v[1]);
  std::uint32_t r;
  switch (op) {
    case Op::kMov:
      r = a;
      break;
    case Op::kNeg:
      r = 0u - a;
      break;
    case Op::kNot:
      r = ~a;
      break;
    case Op::kAdd:
      r = a + b;
      break;
    case Op::kSub:
      r = a - b;
      break;
    case Op::kMul:
      r = a * b;
      break;
    case Op::kAnd:
      r = a & b;
      break;
    case Op::kOr:
      r = a | b;
      break;
    case Op::kXor:
      r = a ^ b;
      break;
    case Op::kShl:
      r = a << (b & 31);
      break;
    case Op::kShr:
      r = a >> (b & 31);
      break;
    case Op::kMin:
      r = static_cast<std::uint32_t>(v[0] < v[1] ? v[0] : v[1]);
      break;
    case Op::kMax:
      r = static_cast<std::uint32_t>(v[0] > v[1] ? v[0] : v[1]);
      break;
    case Op::kLt:
      r = v[0] < v[1];
      break;
    case Op::kEq:
      r = a == b;
      break;
    case Op::kSelect:
      r = a != 0 ? b : static_cast<std::uint32_t>(v[2]);
      break;
    default:
      return false;
  }
  out = static_cast<std::int32_t>(r);
  return true;
}

namespace internal {

template <class A>
void become_constant(Instr<A> *i, std::int32_t value) {
  drop_operands(i);
  i->op = Op::kConst;
  i->imm = value;
}

template <class A>
void become_copy(Instr<A> *i, Instr<A> *source) {
  drop_operands(i);
  i->op = Op::kMov;
  add_operand(i, source);
}

template <class A>
bool is_const(const Instr<A> *i, std::int32_t value) {
  return i->op == Op::kConst && i->imm == value;
}

// Folds or simplifies `i`; true if it changed.
template <class A>
bool fold_one(Instr<A> *i) {
  const OpInfo &info = op_info(i->op);
  if (!info.pure || i->op == Op::kConst || i->operands.empty()) return false;
  auto &ops = i->operands;
  bool all_const = true;
  for (Instr<A> *o : ops) all_const = all_const && o->op == Op::kConst;
  if (i->op == Op::kPhi) {
    if (!all_const) return false;
    for (Instr<A> *o : ops) {
      if (o->imm != ops[0]->imm) return false;
    }
    // A constant may not sit among the phis: move it after them.
    become_constant(i, ops[0]->imm);
    auto &instrs = i->block->instrs;
    std::size_t k = 0;
    while (instrs[k] != i) ++k;
    while (k + 1 < instrs.size() && instrs[k + 1]->op == Op::kPhi) {
      instrs[k] = instrs[k + 1];
      ++k;
    }
    instrs[k] = i;
    return true;
  }
  if (all_const) {
    std::int32_t v[3] = {0, 0, 0};
    for (std::size_t k = 0; k < ops.size(); ++k) v[k] = ops[k]->imm;
    std::int32_t r;
    if (!evaluate(i->op, v, r)) return false;
    become_constant(i, r);
    return true;
  }
  if (i->op == Op::kSelect) {
    if (ops[0]->op == Op::kConst) {
      become_copy(i, ops[0]->imm != 0 ? ops[1] : ops[2]);
      return true;
    }
    if (ops[1] == ops[2]) {
      become_copy(i, ops[1]);
      return true;
    }
    return false;
  }
  if (ops.size() != 2) return false;
  Instr<A> *x = ops[0], *y = ops[1];
  switch (i->op) {
    case Op::kAdd:
    case Op::kOr:
    case Op::kXor:
      if (is_const(y, 0)) return become_copy(i, x), true;
      if (is_const(x, 0)) return become_copy(i, y), true;
      if (i->op == Op::kXor && x == y) return become_constant(i, 0), true;
      if (i->op == Op::kOr && x == y) return become_copy(i, x), true;
      return false;
    case Op::kSub:
      if (is_const(y, 0)) return become_copy(i, x), true;
      if (x == y) return become_constant(i, 0), true;
      return false;
    case Op::kShl:
    case Op::kShr:
      if (is_const(y, 0)) return become_copy(i, x), true;
      return false;
    case Op::kMul:
      if (is_const(y, 1)) return become_copy(i, x), true;
      if (is_const(x, 1)) return become_copy(i, y), true;
      if (is_const(x, 0) || is_const(y, 0)) return become_constant(i, 0), true;
      return false;
    case Op::kAnd:
      if (is_const(x, 0) || is_const(y, 0)) return become_constant(i, 0), true;
      if (x == y) return become_copy(i, x), true;
      return false;
    case Op::kMin:
    case Op::kMax:
      if (x == y) return become_copy(i, x), true;
      return false;
    case Op::kEq:
      if (x == y) return become_constant(i, 1), true;
      return false;
    case Op::kLt:
      if (x == y) return become_constant(i, 0), true;
      return false;
    default:
      return false;
  }
}

}  // namespace internal

// Returns the number of instructions folded or simplified.
template <class A, class Scratch>
std::uint32_t constant_fold(Function<A> &f, Scratch &scratch) {
  auto a = scratch.alloc();
  vec<Instr<A> *, decltype(a)> worklist(a);
  worklist.reserve(f.values.size());
  for (Block<A> *b : f.blocks) {
    for (auto it = b->instrs.rbegin(); it != b->instrs.rend(); ++it) {
      if ((*it)->has_def()) worklist.push_back(*it);
    }
  }
  std::uint32_t changed = 0;
  while (!worklist.empty()) {
    Instr<A> *i = worklist.back();
    worklist.pop_back();
    if (!internal::fold_one(i)) continue;
    ++changed;
    for (Instr<A> *user : i->uses) worklist.push_back(user);
  }
  return changed;
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_CONSTANT_FOLD_H_
