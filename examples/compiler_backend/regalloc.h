// regalloc.h — linear-scan register allocation (Poletto and Sarkar) on SSA values.
//
// What it is for: gives every value a register r0..r(num_registers-1) or, when too many are
// live at once, a spill slot (Instr::loc). Instructions are numbered along the reverse
// post-order (phis at their block's first position, others two apart); each value gets one
// interval from its definition to its last use, a phi operand counting as used at the end of
// the matching predecessor and a live-out value as used at the end of its block. Intervals are
// scanned by start; on pressure the interval that ends last is spilled. A value whose last
// use is the instruction defining another may share its register (checked by
// verify_registers in regalloc_verify.h).
//
// What it costs: O(values × log values) for the sort plus O(values × active) for the scan;
// scratch: positions and intervals. Needs compute_dominance() and the function's liveness.
//
// Example:
//   auto live = compute_liveness(*f, scratch);
//   RegallocStats s = linear_scan(*f, live, /*num_registers=*/16, scratch);
#ifndef EXAMPLES_COMPILER_BACKEND_REGALLOC_H_
#define EXAMPLES_COMPILER_BACKEND_REGALLOC_H_

#include <algorithm>
#include <cstdint>

#include "examples/compiler_backend/ir.h"
#include "examples/compiler_backend/liveness.h"

namespace compiler_backend {

inline constexpr std::uint32_t kMaxRegisters = 64;

struct RegallocStats {
  std::uint32_t registers_used = 0;
  std::uint32_t spilled = 0;
};

struct LiveInterval {
  std::uint32_t start;
  std::uint32_t end;
  std::uint32_t id;
};

// `num_registers` is clamped to 1..kMaxRegisters.
template <class A, class S, class Scratch>
RegallocStats linear_scan(Function<A> &f, const Liveness<S> &live, std::uint32_t num_registers,
                          Scratch &scratch) {
  num_registers = std::clamp<std::uint32_t>(num_registers, 1, kMaxRegisters);
  auto a = scratch.alloc();
  using T = decltype(a);
  constexpr std::uint32_t kNone = 0xffffffffu;
  vec<std::uint32_t, T> block_end(f.blocks.size(), 0, a);
  vec<std::uint32_t, T> start(f.values.size(), kNone, a);
  vec<std::uint32_t, T> end(f.values.size(), 0, a);

  std::uint32_t pos = 0;
  for (Block<A> *b : f.rpo) {
    const std::uint32_t first = pos;
    pos += 2;
    for (Instr<A> *i : b->instrs) {
      const std::uint32_t p = i->op == Op::kPhi ? first : pos;
      if (i->op != Op::kPhi) {
        for (Instr<A> *o : i->operands) end[o->id] = std::max(end[o->id], p);
        pos += 2;
      }
      if (i->has_def()) {
        start[i->id] = p;
        end[i->id] = std::max(end[i->id], p + 1);
      }
    }
    block_end[b->index] = pos - 2;
  }
  for (Block<A> *b : f.rpo) {
    for (Instr<A> *i : b->instrs) {
      if (i->op != Op::kPhi) break;
      for (std::size_t k = 0; k < i->operands.size(); ++k) {
        std::uint32_t id = i->operands[k]->id;
        end[id] = std::max(end[id], block_end[b->preds[k]->index]);
      }
    }
    for (std::uint32_t id : live.live_out[b->index]) {
      end[id] = std::max(end[id], block_end[b->index]);
    }
  }

  vec<LiveInterval, T> intervals(a);
  intervals.reserve(f.values.size());
  for (std::uint32_t id = 0; id < f.values.size(); ++id) {
    if (f.values[id] != nullptr && start[id] != kNone)
      intervals.push_back({start[id], end[id], id});
  }
  std::sort(intervals.begin(), intervals.end(), [](const LiveInterval &x, const LiveInterval &y) {
    return x.start != y.start ? x.start < y.start : x.id < y.id;
  });

  RegallocStats stats;
  vec<LiveInterval, T> active(a);  // sorted by end
  active.reserve(num_registers + 1);
  std::uint64_t free_regs = num_registers == 64 ? ~0ull : (1ull << num_registers) - 1;
  auto reg_of = [&](const LiveInterval &x) { return f.values[x.id]->loc; };
  auto spill = [&](std::uint32_t id) {
    f.values[id]->loc = kFirstSpillLoc - static_cast<std::int32_t>(f.num_spill_slots++);
    ++stats.spilled;
  };
  auto activate = [&](const LiveInterval &x, std::int32_t reg) {
    f.values[x.id]->loc = reg;
    stats.registers_used = std::max<std::uint32_t>(stats.registers_used, reg + 1);
    auto it = std::upper_bound(
        active.begin(), active.end(), x,
        [](const LiveInterval &p, const LiveInterval &q) { return p.end < q.end; });
    active.insert(it, x);
  };
  for (const LiveInterval &cur : intervals) {
    std::size_t expired = 0;
    while (expired < active.size() && active[expired].end <= cur.start) {
      free_regs |= 1ull << reg_of(active[expired]);
      ++expired;
    }
    active.erase(active.begin(), active.begin() + expired);
    if (free_regs != 0) {
      std::int32_t reg = __builtin_ctzll(free_regs);
      free_regs &= free_regs - 1;
      activate(cur, reg);
      continue;
    }
    LiveInterval victim = active.back();
    if (victim.end > cur.end) {
      std::int32_t reg = reg_of(victim);
      active.pop_back();
      spill(victim.id);
      activate(cur, reg);
    } else {
      spill(cur.id);
    }
  }
  return stats;
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_REGALLOC_H_
