// pipeline.h — the pass pipeline that compiles one shader, with per-pass timing.
//
// What it is for: the one place that says what "compiling a shader" means, shared by the
// command-line driver, the tests and the benchmark. Per function: dominance → constant
// folding → copy propagation → GVN → DCE → liveness → linear-scan register allocation →
// register verification (with CompileOptions::check_liveness, the liveness is also checked
// against liveness_check.h's data-flow fixpoint before the allocator uses it). Each pass runs
// inside a scratch_scope, so its scratch memory is popped (mark()/rewind() on an arena) when it
// ends; liveness and register allocation share one scope because the allocator consumes the
// liveness sets. A register count outside 1..kMaxRegisters is refused with one message before
// any pass runs ("num_registers is 0, must be 1..64"). Out of memory (std::bad_alloc
// from the allocator) stops the compile with "@function: out of memory in <pass>"; the scopes
// pop the scratch memory, and the shader, though no longer worth compiling, can be destroyed.
//
// What it costs: the passes' own costs, plus two clock reads per pass and function.
//
// Example:
//   PassTimes times;
//   CompileResult r = compile_shader(shader, scratch, CompileOptions{}, &times);
//   if (!r.error.ok) fprintf(stderr, "%s\n", r.error.message);
#ifndef EXAMPLES_COMPILER_BACKEND_PIPELINE_H_
#define EXAMPLES_COMPILER_BACKEND_PIPELINE_H_

#include <chrono>
#include <cstdint>
#include <new>

#include "examples/compiler_backend/checksum.h"
#include "examples/compiler_backend/constant_fold.h"
#include "examples/compiler_backend/copy_propagate.h"
#include "examples/compiler_backend/dce.h"
#include "examples/compiler_backend/diagnostic.h"
#include "examples/compiler_backend/dominance.h"
#include "examples/compiler_backend/gvn.h"
#include "examples/compiler_backend/ir.h"
#include "examples/compiler_backend/liveness.h"
#include "examples/compiler_backend/liveness_check.h"
#include "examples/compiler_backend/regalloc.h"
#include "examples/compiler_backend/regalloc_verify.h"
#include "examples/compiler_backend/scratch.h"
#include "examples/compiler_backend/verify_ssa.h"

namespace compiler_backend {

enum class Pass {
  kGenerate,
  kDominance,
  kConstantFold,
  kCopyPropagate,
  kValueNumber,
  kDeadCode,
  kLiveness,
  kRegalloc,
  kVerify,
  kRelease,
};
inline constexpr int kNumPasses = static_cast<int>(Pass::kRelease) + 1;

inline const char *pass_name(Pass p) {
  static constexpr const char *kNames[kNumPasses] = {
      "generate", "dominance", "constant_fold", "copy_propagate", "gvn",
      "dce",      "liveness",  "regalloc",      "verify",         "release"};
  return kNames[static_cast<int>(p)];
}

struct PassTimes {
  std::uint64_t ns[kNumPasses] = {};
  std::uint64_t total() const {
    std::uint64_t t = 0;
    for (std::uint64_t x : ns) t += x;
    return t;
  }
};

// Times a scope into `times` (nothing if null).
class pass_timer {
 public:
  pass_timer(PassTimes *times, Pass pass) : times_(times), pass_(pass) {
    if (times_) start_ = std::chrono::steady_clock::now();
  }
  pass_timer(const pass_timer &) = delete;
  pass_timer &operator=(const pass_timer &) = delete;
  ~pass_timer() {
    if (!times_) return;
    times_->ns[static_cast<int>(pass_)] +=
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now() - start_)
                                       .count());
  }

 private:
  PassTimes *times_;
  Pass pass_;
  std::chrono::steady_clock::time_point start_;
};

struct CompileOptions {
  std::uint32_t num_registers = 16;  // 1..kMaxRegisters; compile_shader refuses others
  bool verify_registers = true;
  bool verify_ssa_after_each_pass = false;  // for tests: slow, allocation-heavy
  bool check_liveness = false;  // for tests: compute_liveness against a data-flow fixpoint
};

struct CompileResult {
  std::uint64_t checksum = kChecksumSeed;
  std::uint32_t instructions_in = 0;
  std::uint32_t instructions_out = 0;
  std::uint32_t folded = 0;
  std::uint32_t copies_propagated = 0;
  std::uint32_t values_merged = 0;
  std::uint32_t instructions_removed = 0;
  std::uint32_t spilled = 0;
  Diagnostic error;
};

template <class A>
std::uint32_t count_instructions(const Function<A> &f) {
  std::uint32_t n = 0;
  for (const Block<A> *b : f.blocks) n += static_cast<std::uint32_t>(b->instrs.size());
  return n;
}

template <class A, class Scratch>
CompileResult compile_shader(Shader<A> &shader, Scratch &scratch, const CompileOptions &options,
                             PassTimes *times) {
  CompileResult r;
  if (options.num_registers < 1 || options.num_registers > kMaxRegisters) {
    r.error = Diagnostic::error("num_registers is %u, must be 1..%u", options.num_registers,
                                kMaxRegisters);
    return r;
  }
  // Where an allocation failure happened, for the message.
  const Function<A> *current = nullptr;
  Pass pass = Pass::kDominance;
  const char *checked_after = nullptr;  // set while the SSA check after that pass runs
  // `body` timed as pass `p`; `in_scope` also gives it a scratch scope of its own.
  auto timed = [&](Pass p, auto &&body) {
    pass_timer t(times, pass = p);
    return body();
  };
  auto in_scope = [&](Pass p, auto &&body) {
    scratch_scope<Scratch> scope(scratch);
    return timed(p, body);
  };
  auto check = [&](Function<A> &f, const char *after) {
    if (!options.verify_ssa_after_each_pass || !r.error.ok) return;
    scratch_scope<Scratch> scope(scratch);
    checked_after = after;
    Diagnostic d = verify_ssa(f, scratch);
    checked_after = nullptr;
    if (!d.ok) r.error = Diagnostic::error("after %s: %s", after, d.message);
  };
  try {
    for (Function<A> *fp : shader.functions) {
      current = fp;
      Function<A> &f = *fp;
      r.instructions_in += count_instructions(f);
      if (!in_scope(Pass::kDominance, [&] { return compute_dominance(f, scratch); })) {
        r.error = Diagnostic::error("@%s: unreachable blocks", shown(f.name).text);
        return r;
      }
      r.folded += in_scope(Pass::kConstantFold, [&] { return constant_fold(f, scratch); });
      check(f, "constant_fold");
      r.copies_propagated +=
          in_scope(Pass::kCopyPropagate, [&] { return copy_propagate(f, scratch); });
      check(f, "copy_propagate");
      r.values_merged += in_scope(Pass::kValueNumber, [&] { return value_number(f, scratch); });
      check(f, "gvn");
      r.instructions_removed +=
          in_scope(Pass::kDeadCode, [&] { return eliminate_dead_code(f, scratch); });
      check(f, "dce");
      {
        scratch_scope<Scratch> scope(scratch);  // the allocator consumes the liveness sets
        auto live = timed(Pass::kLiveness, [&] { return compute_liveness(f, scratch); });
        if (options.check_liveness) {
          r.error = in_scope(Pass::kVerify, [&] { return check_liveness(f, live, scratch); });
          if (!r.error.ok) return r;
        }
        r.spilled += timed(Pass::kRegalloc, [&] {
          return linear_scan(f, live, options.num_registers, scratch).spilled;
        });
      }
      if (options.verify_registers && r.error.ok) {
        Diagnostic d = in_scope(
            Pass::kVerify, [&] { return verify_registers(f, options.num_registers, scratch); });
        if (!d.ok) r.error = d;
      }
      if (!r.error.ok) return r;
      r.instructions_out += count_instructions(f);
      r.checksum = checksum(f, r.checksum);
    }
  } catch (const std::bad_alloc &) {
    if (checked_after != nullptr) {
      r.error = Diagnostic::error("@%s: out of memory in the SSA check after %s",
                                  shown(current->name).text, checked_after);
    } else {
      r.error =
          Diagnostic::error("@%s: out of memory in %s", shown(current->name).text, pass_name(pass));
    }
  }
  return r;
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_PIPELINE_H_
