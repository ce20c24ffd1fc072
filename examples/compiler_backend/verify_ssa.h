// verify_ssa.h — the structural and SSA verifier.
//
// What it is for: checking, after parsing and after every pass in tests, that the IR is well
// formed: one terminator per block and at its end, phis first, successor counts that match
// the terminator, predecessor lists that mirror successor lists, operand counts, symbols (no
// store to a uniform), every block reachable, every value of the value table defined in exactly one
// block, every operand defined in the function and dominating its use (a phi operand must dominate
// the matching predecessor), and use lists exactly mirroring operands (each user listed as often as
// its operand slots name the value).
//
// What it costs: O(instructions + operands + uses log uses), plus compute_dominance(), edges
// included (a block with thousands of predecessors, a phi taking one value from all of them, is
// checked in that time); scratch memory only. Overwrites the dominance information of the function
// (recomputed, same result).
//
// Example:
//   Diagnostic d = verify_ssa(*f, scratch);
//   EXPECT_TRUE(d.ok) << d.message;
#ifndef EXAMPLES_COMPILER_BACKEND_VERIFY_SSA_H_
#define EXAMPLES_COMPILER_BACKEND_VERIFY_SSA_H_

#include <algorithm>
#include <cstdint>
#include <functional>

#include "examples/compiler_backend/diagnostic.h"
#include "examples/compiler_backend/dominance.h"
#include "examples/compiler_backend/ir.h"

namespace compiler_backend {

template <class A, class Scratch>
Diagnostic verify_ssa(Function<A> &f, Scratch &scratch) {
  const ShownName name = shown(f.name);
  const char *fn = name.text;
  if (f.blocks.empty()) return Diagnostic::error("@%s: function has no blocks", fn);
  if (!f.blocks[0]->preds.empty()) {
    return Diagnostic::error("@%s: entry block bb0 has predecessors", fn);
  }
  auto a = scratch.alloc();
  using S = decltype(a);
  // Position of each value's definition in its block (kNotPlaced until the walk meets it);
  // count of operand slots per value.
  constexpr std::uint32_t kNotPlaced = UINT32_MAX;
  vec<std::uint32_t, S> position(f.values.size(), kNotPlaced, a);
  vec<std::uint32_t, S> slots(f.values.size(), 0, a);

  for (Block<A> *b : f.blocks) {
    const std::uint32_t bi = b->index;
    if (b->instrs.empty()) return Diagnostic::error("@%s: bb%u is empty", fn, bi);
    bool in_phis = true;
    for (std::size_t k = 0; k < b->instrs.size(); ++k) {
      Instr<A> *i = b->instrs[k];
      const OpInfo &info = op_info(i->op);
      if (i->block != b) return Diagnostic::error("@%s: bb%u: instruction in wrong block", fn, bi);
      if (info.terminator != (k + 1 == b->instrs.size())) {
        return Diagnostic::error("@%s: bb%u: %s", fn, bi,
                                 info.terminator ? "terminator before the end of the block"
                                                 : "block does not end with a terminator");
      }
      if (i->op == Op::kPhi && !in_phis) {
        return Diagnostic::error("@%s: bb%u: phi %%%u after a non-phi instruction", fn, bi, i->id);
      }
      in_phis = in_phis && i->op == Op::kPhi;
      if (i->op == Op::kPhi && b->preds.empty()) {  // it would read a value from no edge
        return Diagnostic::error("@%s: bb%u: phi %%%u in a block with no predecessors", fn, bi,
                                 i->id);
      }
      std::size_t want = info.num_operands < 0 ? b->preds.size() : info.num_operands;
      if (i->operands.size() != want) {
        return Diagnostic::error("@%s: bb%u: %s has %zu operands, expected %zu", fn, bi, info.name,
                                 i->operands.size(), want);
      }
      if (info.has_symbol != (i->symbol != nullptr)) {
        return Diagnostic::error("@%s: bb%u: %s %s a symbol", fn, bi, info.name,
                                 info.has_symbol ? "needs" : "must not have");
      }
      if (i->op == Op::kStore && i->symbol->kind == SymbolKind::kUniform) {
        return Diagnostic::error("@%s: bb%u: store to uniform @%s (uniforms are read-only)", fn, bi,
                                 i->symbol->name.c_str());
      }
      if (i->has_def()) {
        if (i->id >= f.values.size() || f.values[i->id] != i) {
          return Diagnostic::error("@%s: bb%u: %%%u is not in the value table", fn, bi, i->id);
        }
        if (position[i->id] != kNotPlaced) {
          return Diagnostic::error("@%s: bb%u: %%%u is in the instruction lists twice", fn, bi,
                                   i->id);
        }
        position[i->id] = static_cast<std::uint32_t>(k);
      }
      for (Instr<A> *v : i->operands) {
        if (!v->has_def() || v->id >= f.values.size() || f.values[v->id] != v) {
          return Diagnostic::error("@%s: bb%u: %s uses a value that is not defined", fn, bi,
                                   info.name);
        }
        ++slots[v->id];
      }
    }
    std::size_t want_succs = 0;
    switch (b->terminator()->op) {
      case Op::kBr:
        want_succs = 2;
        break;
      case Op::kJmp:
        want_succs = 1;
        break;
      default:
        break;
    }
    if (b->succs.size() != want_succs) {
      return Diagnostic::error("@%s: bb%u: %zu successors for %s", fn, bi, b->succs.size(),
                               op_info(b->terminator()->op).name);
    }
    if (want_succs == 2 && b->succs[0] == b->succs[1]) {
      return Diagnostic::error("@%s: bb%u: br with two identical targets", fn, bi);
    }
  }

  // The edges both ways, in time linear in the edges (a block may have thousands of
  // predecessors): for each block s, its predecessors counted by block must each have s among
  // their successors exactly that often, and s must have as many predecessors as edges lead in.
  vec<std::uint32_t, S> into(f.blocks.size(), 0, a);
  for (Block<A> *b : f.blocks) {
    for (Block<A> *s : b->succs) ++into[s->index];
  }
  vec<std::uint32_t, S> count(f.blocks.size(), 0, a);
  for (Block<A> *s : f.blocks) {
    for (Block<A> *p : s->preds) ++count[p->index];
    for (Block<A> *p : s->preds) {
      const std::uint32_t back = count[p->index];
      if (back == 0) continue;  // this predecessor is checked
      count[p->index] = 0;
      std::uint32_t fwd = 0;
      for (Block<A> *x : p->succs) fwd += x == s;
      if (fwd < back) {
        return Diagnostic::error("@%s: bb%u lists bb%u as a stale predecessor", fn, s->index,
                                 p->index);
      }
      if (fwd > back) {
        return Diagnostic::error("@%s: edge bb%u -> bb%u missing from the predecessors", fn,
                                 p->index, s->index);
      }
    }
    if (into[s->index] != s->preds.size()) {  // an edge from a block s does not list: name it
      for (Block<A> *b : f.blocks) {
        bool listed = false;
        for (Block<A> *p : s->preds) listed = listed || p == b;
        for (Block<A> *x : b->succs) {
          if (x == s && !listed) {
            return Diagnostic::error("@%s: edge bb%u -> bb%u missing from the predecessors", fn,
                                     b->index, s->index);
          }
        }
      }
    }
  }

  // Every value of the table is defined in a block (a pass that unlinks an instruction without
  // destroying it leaves one that operands can still name), and its use list holds each user
  // exactly as often as the user's operand slots name it. The users that name each value, in
  // block order, go into one array (a segment per value, `slots` long); each segment and a copy
  // of the value's use list are sorted and compared: O(uses log uses), not a scan of the user's
  // operands per use (a phi may take one value from thousands of predecessors).
  vec<std::uint32_t, S> segment(f.values.size() + 1, 0, a);
  for (Instr<A> *v : f.values) {
    if (v == nullptr) continue;
    if (position[v->id] == kNotPlaced) {
      return Diagnostic::error("@%s: %%%u is in the value table but in no block", fn, v->id);
    }
    if (v->uses.size() != slots[v->id]) {
      return Diagnostic::error("@%s: %%%u has %zu uses listed but %u operand slots refer to it", fn,
                               v->id, v->uses.size(), slots[v->id]);
    }
  }
  for (std::size_t id = 0; id < f.values.size(); ++id) segment[id + 1] = segment[id] + slots[id];
  vec<const Instr<A> *, S> users_of(segment.back(), nullptr, a);
  for (Block<A> *b : f.blocks) {
    for (Instr<A> *i : b->instrs) {
      for (Instr<A> *v : i->operands) users_of[segment[v->id] + --slots[v->id]] = i;
    }
  }
  vec<const Instr<A> *, S> listed(a);
  for (Instr<A> *v : f.values) {
    if (v == nullptr || v->uses.empty()) continue;
    const auto expected = users_of.begin() + segment[v->id];
    const auto expected_end = users_of.begin() + segment[v->id + 1];
    std::sort(expected, expected_end, std::less<const Instr<A> *>());
    listed.assign(v->uses.begin(), v->uses.end());
    std::sort(listed.begin(), listed.end(), std::less<const Instr<A> *>());
    const auto [l, e] = std::mismatch(listed.begin(), listed.end(), expected);
    if (l == listed.end()) continue;
    const Instr<A> *user = std::min(*l, *e, std::less<const Instr<A> *>());
    return Diagnostic::error(
        "@%s: %%%u's use list does not mirror its operand slots: a user (%s) is listed %zu "
        "times but names %%%u in %zu",
        fn, v->id, op_info(user->op).name, std::count(listed.begin(), listed.end(), user), v->id,
        std::count(expected, expected_end, user));
  }

  if (!compute_dominance(f, scratch)) {
    for (Block<A> *b : f.blocks) {
      if (b->rpo_index == kUnreachable) {
        return Diagnostic::error("@%s: bb%u is unreachable", fn, b->index);
      }
    }
  }
  for (Block<A> *b : f.blocks) {
    for (std::size_t k = 0; k < b->instrs.size(); ++k) {
      Instr<A> *i = b->instrs[k];
      for (std::size_t s = 0; s < i->operands.size(); ++s) {
        Instr<A> *v = i->operands[s];
        bool ok;
        if (i->op == Op::kPhi) {
          ok = dominates(v->block, b->preds[s]);
        } else if (v->block == b) {
          ok = position[v->id] < k;
        } else {
          ok = dominates(v->block, b);
        }
        if (!ok) {
          return Diagnostic::error("@%s: bb%u: %%%u does not dominate its use by %s", fn, b->index,
                                   v->id, op_info(i->op).name);
        }
      }
    }
  }
  return {};
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_VERIFY_SSA_H_
