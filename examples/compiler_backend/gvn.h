// gvn.h — global value numbering over the dominator tree, with a hash map of expressions.
//
// What it is for: two pure instructions computing the same expression — same opcode,
// constant, symbol and operands (in either order for commutative ops; phis also keyed by
// their block) — where the first dominates the second: every use of the second becomes a use
// of the first. The walk is a pre-order walk of the dominator tree with a scoped hash map, so
// only dominating expressions are visible. The replaced instructions are left for DCE.
//
// What it costs: O(instructions) hash-map operations; scratch: the map, the scope stack and
// the dominator tree in CSR form. Needs compute_dominance() to be current. Each merge rewrites
// the merged value's uses (replace_all_uses), which finds a use's slot by scanning its user's
// operands: K equal values that one phi takes from K predecessors cost O(K²) (0.9 s at
// K = 65,536); a use list does not record slots.
//
// Example:
//   compute_dominance(*f, scratch);
//   std::uint32_t merged = value_number(*f, scratch);
#ifndef EXAMPLES_COMPILER_BACKEND_GVN_H_
#define EXAMPLES_COMPILER_BACKEND_GVN_H_

#include <cstdint>
#include <utility>

#include "examples/compiler_backend/ir.h"

namespace compiler_backend {

struct ExprKey {
  Op op;
  std::uint8_t num_operands;
  std::int32_t imm;
  std::uint32_t extra;  // symbol index or, for phis, the block index
  std::uint32_t operands[3];

  bool operator==(const ExprKey &o) const {
    if (op != o.op || num_operands != o.num_operands || imm != o.imm || extra != o.extra) {
      return false;
    }
    for (int k = 0; k < num_operands; ++k) {
      if (operands[k] != o.operands[k]) return false;
    }
    return true;
  }
};

struct ExprKeyHash {
  std::size_t operator()(const ExprKey &k) const {
    std::uint64_t h = static_cast<std::uint64_t>(k.op) * 0x9e3779b97f4a7c15ull;
    auto mix = [&h](std::uint64_t v) { h = (h ^ v) * 0xff51afd7ed558ccdull; };
    mix(static_cast<std::uint32_t>(k.imm));
    mix(k.extra);
    for (int i = 0; i < k.num_operands; ++i) mix(k.operands[i]);
    return static_cast<std::size_t>(h ^ (h >> 32));
  }
};

// False if `i` does not take part in value numbering.
template <class A>
bool make_expr_key(const Instr<A> *i, ExprKey &key) {
  const OpInfo &info = op_info(i->op);
  if (!info.pure || i->operands.size() > 3) return false;
  key.op = i->op;
  key.num_operands = static_cast<std::uint8_t>(i->operands.size());
  key.imm = i->imm;
  key.extra = i->op == Op::kPhi ? i->block->index : 0;
  for (std::size_t k = 0; k < i->operands.size(); ++k) key.operands[k] = i->operands[k]->id;
  if (info.commutative && key.operands[0] > key.operands[1]) {
    std::swap(key.operands[0], key.operands[1]);
  }
  return true;
}

// Returns the number of instructions whose uses were redirected to an equal dominating one.
template <class A, class Scratch>
std::uint32_t value_number(Function<A> &f, Scratch &scratch) {
  const std::size_t n = f.rpo.size();
  if (n == 0) return 0;
  auto a = scratch.alloc();
  using S = decltype(a);
  // Dominator-tree children (CSR by rpo index).
  vec<std::uint32_t, S> first(n + 1, 0, a);
  for (std::size_t i = 1; i < n; ++i) ++first[f.rpo[i]->idom->rpo_index + 1];
  for (std::size_t i = 0; i < n; ++i) first[i + 1] += first[i];
  vec<std::uint32_t, S> fill(first.begin(), first.end() - 1, a);
  vec<std::uint32_t, S> children(n, 0, a);
  for (std::size_t i = 1; i < n; ++i) children[fill[f.rpo[i]->idom->rpo_index]++] = i;

  hash_map<ExprKey, Instr<A> *, S, ExprKeyHash> table(a);
  table.reserve(f.values.size());
  vec<ExprKey, S> scope_keys(a);                          // keys inserted, innermost last
  vec<std::pair<std::uint32_t, std::size_t>, S> walk(a);  // (block, scope_keys size at entry)
  vec<std::uint32_t, S> cursor(n, 0, a);
  std::uint32_t merged = 0;
  auto enter = [&](std::uint32_t node) {
    walk.emplace_back(node, scope_keys.size());
    cursor[node] = first[node];
    for (Instr<A> *i : f.rpo[node]->instrs) {
      ExprKey key;
      if (!make_expr_key(i, key)) continue;
      auto [it, inserted] = table.emplace(key, i);
      if (inserted) {
        scope_keys.push_back(key);
      } else if (!i->uses.empty()) {
        replace_all_uses(i, it->second);
        ++merged;
      }
    }
  };
  enter(0);
  while (!walk.empty()) {
    std::uint32_t node = walk.back().first;
    if (cursor[node] < first[node + 1]) {
      enter(children[cursor[node]++]);
      continue;
    }
    for (std::size_t k = scope_keys.size(); k > walk.back().second; --k) {
      table.erase(scope_keys[k - 1]);
    }
    scope_keys.resize(walk.back().second);
    walk.pop_back();
  }
  return merged;
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_GVN_H_
