// generator.h — a deterministic generator of synthetic shaders.
//
// What it is for: workloads for the passes, the tests and the benchmark. From a seed and a
// target size (instructions per shader) it builds a shader with buffer and uniform symbols
// and one or more functions of structured control flow — if/else diamonds (with and without an
// else), counted loops with loop-carried phis, nested up to four deep — filled with
// arithmetic, compares, selects, loads and stores, plus the material the optimisations feed
// on: constant expressions (folding), copies (copy propagation), repeated expressions (GVN)
// and values nobody reads (DCE). The same seed and size give the same shader, bit for bit,
// on every allocator.
//
// What it costs: O(size); the IR goes to the shader's allocator, the generator's own
// bookkeeping (the stack of available values) to `scratch`.
//
// Example:
//   Shader<A> shader(a);
//   generate(shader, /*seed=*/42, /*size=*/2000, scratch);
#ifndef EXAMPLES_COMPILER_BACKEND_GENERATOR_H_
#define EXAMPLES_COMPILER_BACKEND_GENERATOR_H_

#include <cstdint>
#include <cstdio>

#include "examples/compiler_backend/ir.h"
#include "examples/compiler_backend/scratch.h"

namespace compiler_backend {

// SplitMix64: tiny, fast, and identical on every platform.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // In [0, n), by multiply-shift (Lemire) rather than a division.
  std::uint32_t below(std::uint32_t n) {
    return static_cast<std::uint32_t>(((next() >> 32) * n) >> 32);
  }
  bool chance(std::uint32_t percent) { return below(100) < percent; }

 private:
  std::uint64_t state_;
};

namespace internal {

template <class A, class S>
class function_generator {
 public:
  function_generator(Shader<A> &shader, Function<A> &f, Rng &rng, const S &scratch_alloc)
      : shader_(shader), f_(f), rng_(rng), avail_(scratch_alloc) {}

  void run(std::uint32_t size) {
    f_.values.reserve(size + size / 8 + f_.num_params + 8);
    f_.blocks.reserve(size / 8 + 1);
    cur_ = f_.add_block();
    for (std::uint32_t p = 0; p < f_.num_params; ++p) {
      Instr<A> *in = f_.append(cur_, Op::kInput);
      in->imm = static_cast<std::int32_t>(p);
      avail_.push_back(in);
    }
    avail_.push_back(constant(static_cast<std::int32_t>(rng_.below(16))));
    region(size, 0);
    Instr<A> *result = pick();
    for (int k = 0; k < 3; ++k) result = binary(Op::kXor, result, pick());
    add_operand(f_.append(cur_, Op::kRet), result);
    canonicalize_preds(f_);
  }

 private:
  Instr<A> *constant(std::int32_t value) {
    Instr<A> *c = f_.append(cur_, Op::kConst);
    c->imm = value;
    ++emitted_;
    return c;
  }

  Instr<A> *binary(Op op, Instr<A> *x, Instr<A> *y) {
    Instr<A> *i = f_.append(cur_, op);
    add_operand(i, x);
    add_operand(i, y);
    ++emitted_;
    return i;
  }

  // A value available here, biased towards recent ones (realistic live ranges).
  Instr<A> *pick() {
    std::uint32_t n = static_cast<std::uint32_t>(avail_.size());
    if (rng_.chance(75)) return avail_[n - 1 - rng_.below(n < 12 ? n : 12)];
    return avail_[rng_.below(n)];
  }

  void edge(Block<A> *from, Block<A> *to) {
    from->succs.push_back(to);
    to->preds.push_back(from);
  }

  Symbol<A> *symbol() { return shader_.symbols[rng_.below(shader_.symbols.size())]; }

  void simple() {
    static constexpr Op kArith[] = {Op::kAdd, Op::kSub, Op::kMul, Op::kAnd, Op::kOr,
                                    Op::kXor, Op::kShl, Op::kShr, Op::kMin, Op::kMax};
    Op arith = kArith[rng_.below(sizeof(kArith) / sizeof(kArith[0]))];
    std::uint32_t r = rng_.below(100);
    Instr<A> *v = nullptr;
    if (r < 30) {
      v = binary(arith, pick(), pick());
    } else if (r < 40) {  // with a constant, sometimes an identity (x+0, x*1, x|0, ...)
      std::int32_t k = rng_.chance(40) ? (arith == Op::kMul ? 1 : 0) : rng_.below(64);
      v = binary(arith, pick(), constant(k));
    } else if (r < 48) {  // constant expression
      Instr<A> *x = constant(static_cast<std::int32_t>(rng_.below(1000)));
      v = binary(arith, x, constant(static_cast<std::int32_t>(rng_.below(31) + 1)));
    } else if (r < 56) {  // a copy
      v = f_.append(cur_, Op::kMov);
      add_operand(v, pick());
      ++emitted_;
    } else if (r < 64) {  // an expression computed before, still available
      Instr<A> *old = nullptr;
      for (int tries = 0; tries < 4 && old == nullptr; ++tries) {
        Instr<A> *c = pick();
        if (op_info(c->op).pure && c->op != Op::kPhi && c->operands.size() == 2) old = c;
      }
      v = old ? binary(old->op, old->operands[0], old->operands[1]) : binary(arith, pick(), pick());
    } else if (r < 70) {
      v = f_.append(cur_, rng_.chance(50) ? Op::kNeg : Op::kNot);
      add_operand(v, pick());
      ++emitted_;
    } else if (r < 76) {
      v = binary(rng_.chance(50) ? Op::kLt : Op::kEq, pick(), pick());
    } else if (r < 81) {
      v = f_.append(cur_, Op::kSelect);
      add_operand(v, pick());
      add_operand(v, pick());
      add_operand(v, pick());
      ++emitted_;
    } else if (r < 92) {
      v = f_.append(cur_, Op::kLoad);
      v->symbol = symbol();
      add_operand(v, pick());
      ++emitted_;
    } else {
      Instr<A> *s = f_.append(cur_, Op::kStore);
      s->symbol = symbol();
      while (s->symbol->kind != SymbolKind::kBuffer) s->symbol = symbol();
      add_operand(s, pick());
      add_operand(s, pick());
      ++emitted_;
      return;
    }
    avail_.push_back(v);
  }

  // Emits about `budget` instructions of structured control flow; cur_ is the open block.
  void region(std::uint32_t budget, int depth) {
    const std::uint32_t end = emitted_ + budget;
    while (emitted_ < end) {
      std::uint32_t left = end - emitted_;
      std::uint32_t r = rng_.below(100);
      if (depth < 4 && left > 24 && r < 12) {
        if_else(left, depth);
      } else if (depth < 4 && left > 24 && r < 20) {
        loop(left, depth);
      } else {
        for (std::uint32_t n = 1 + rng_.below(6); n > 0; --n) simple();
      }
    }
  }

  std::uint32_t sub_budget(std::uint32_t left) { return 4 + rng_.below(left / 2); }

  void if_else(std::uint32_t left, int depth) {
    Instr<A> *cond = binary(rng_.chance(50) ? Op::kLt : Op::kEq, pick(), pick());
    Block<A> *head = cur_;
    Block<A> *then_b = f_.add_block();
    bool has_else = rng_.chance(70);
    Block<A> *else_b = has_else ? f_.add_block() : nullptr;
    Block<A> *merge = f_.add_block();
    add_operand(f_.append(head, Op::kBr), cond);
    edge(head, then_b);
    edge(head, has_else ? else_b : merge);

    const std::size_t scope = avail_.size();
    std::uint32_t outs = 1 + rng_.below(3);
    Instr<A> *then_vals[3], *else_vals[3];
    cur_ = then_b;
    region(sub_budget(left), depth + 1);
    for (std::uint32_t k = 0; k < outs; ++k) then_vals[k] = pick();
    Block<A> *then_end = cur_;
    avail_.resize(scope);
    Block<A> *else_end = head;
    if (has_else) {
      cur_ = else_b;
      region(sub_budget(left), depth + 1);
      else_end = cur_;
    }
    for (std::uint32_t k = 0; k < outs; ++k) else_vals[k] = pick();
    avail_.resize(scope);
    f_.append(then_end, Op::kJmp);
    edge(then_end, merge);
    if (has_else) {
      f_.append(else_end, Op::kJmp);
      edge(else_end, merge);
    }
    cur_ = merge;
    // merge->preds is {else_end or head, then_end} in creation order: keep operands aligned.
    for (std::uint32_t k = 0; k < outs; ++k) {
      Instr<A> *phi = f_.insert_phi(merge);
      for (Block<A> *p : merge->preds)
        add_operand(phi, p == then_end ? then_vals[k] : else_vals[k]);
      ++emitted_;
      avail_.push_back(phi);
    }
  }

  void loop(std::uint32_t left, int depth) {
    Block<A> *pre = cur_;
    Instr<A> *zero = constant(0);
    Instr<A> *one = constant(1);
    Instr<A> *bound =
        rng_.chance(50) ? constant(static_cast<std::int32_t>(4 + rng_.below(60))) : pick();
    Block<A> *header = f_.add_block();
    Block<A> *body = f_.add_block();
    Block<A> *exit = f_.add_block();
    f_.append(pre, Op::kJmp);
    edge(pre, header);

    cur_ = header;
    std::uint32_t carried = 1 + rng_.below(3);
    Instr<A> *counter = f_.insert_phi(header);
    add_operand(counter, zero);
    Instr<A> *phis[3];
    for (std::uint32_t k = 0; k < carried; ++k) {
      phis[k] = f_.insert_phi(header);
      add_operand(phis[k], pick());
    }
    emitted_ += 1 + carried;
    avail_.push_back(counter);
    for (std::uint32_t k = 0; k < carried; ++k) avail_.push_back(phis[k]);
    Instr<A> *cond = binary(Op::kLt, counter, bound);
    add_operand(f_.append(header, Op::kBr), cond);
    edge(header, body);
    edge(header, exit);
    const std::size_t scope = avail_.size();

    cur_ = body;
    region(sub_budget(left), depth + 1);
    Instr<A> *next = binary(Op::kAdd, counter, one);
    add_operand(counter, next);
    for (std::uint32_t k = 0; k < carried; ++k) add_operand(phis[k], pick());
    f_.append(cur_, Op::kJmp);
    edge(cur_, header);
    avail_.resize(scope);
    cur_ = exit;
  }

  Shader<A> &shader_;
  Function<A> &f_;
  Rng &rng_;
  vec<Instr<A> *, S> avail_;  // values that dominate the current point, a scoped stack
  Block<A> *cur_ = nullptr;
  std::uint32_t emitted_ = 0;
};

}  // namespace internal

// The smallest shader generate() makes: a smaller size asks for this many instructions.
inline constexpr std::uint32_t kMinShaderSize = 16;

// Fills the empty `shader` with about `size` instructions (at least kMinShaderSize) split over
// 1 + size / 1000 functions.
template <class A, class Scratch>
void generate(Shader<A> &shader, std::uint64_t seed, std::uint32_t size, Scratch &scratch) {
  if (size < kMinShaderSize) size = kMinShaderSize;
  Rng rng(seed * 0x2545f4914f6cdd1dull + 1);
  std::uint32_t buffers = 2 + rng.below(3), uniforms = 1 + rng.below(3);
  char name[24];
  for (std::uint32_t k = 0; k < buffers; ++k) {
    std::snprintf(name, sizeof(name), "buf%u", k);
    shader.add_symbol(name, SymbolKind::kBuffer, 64u << rng.below(5));
  }
  for (std::uint32_t k = 0; k < uniforms; ++k) {
    std::snprintf(name, sizeof(name), "uni%u", k);
    shader.add_symbol(name, SymbolKind::kUniform, 16u << rng.below(3));
  }
  const std::uint32_t functions = 1 + size / 1000;
  for (std::uint32_t k = 0; k < functions; ++k) {
    if (k == 0) {
      std::snprintf(name, sizeof(name), "main");
    } else {
      std::snprintf(name, sizeof(name), "helper%u", k);
    }
    Function<A> *f = shader.add_function(name, 1 + rng.below(4));
    scratch_scope<Scratch> scope(scratch);  // popped on an exception too
    internal::function_generator<A, decltype(scratch.alloc())> gen(shader, *f, rng,
                                                                   scratch.alloc());
    gen.run(size / functions);
  }
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_GENERATOR_H_
