#include "tools/vk_audit_run.h"

#include <chrono>

#include "mesa_alloc/callback_validator.h"
#include "mesa_alloc/vulkan.h"

namespace vk_audit {
namespace {

constexpr unsigned kAllScopes = (1u << MESA_ALLOC_SCOPE_COUNT) - 1;

class stack_observer final : public workload_observer {
 public:
  stack_observer(mesa::callback_validator &validator, recorder &rec)
      : validator_(validator), rec_(rec) {}

  void before(const char *call, const char *phase) override {
    validator_.set_call(call);
    rec_.set_call(call, phase);
  }
  // COMMAND-scope memory must not outlive the command that allocated it.
  void after(const char *, VkResult) override {
    validator_.checkpoint(1u << MESA_ALLOC_SCOPE_COMMAND);
  }
  void after_destroy(const char *) override { rec_.snapshot(); }

 private:
  mesa::callback_validator &validator_;
  recorder &rec_;
};

}  // namespace

std::uint64_t run_result::allocations() const {
  std::uint64_t n = 0;
  for (const scope_counts &c : totals) n += c.allocations;
  return n;
}

std::uint64_t run_result::reallocations() const {
  std::uint64_t n = 0;
  for (const scope_counts &c : totals) n += c.reallocations;
  return n;
}

std::uint64_t run_result::frees() const {
  std::uint64_t n = 0;
  for (const scope_counts &c : totals) n += c.frees;
  return n;
}

run_result run_audit(workload_kind kind, std::uint64_t fail_at,
                     void (*on_inject)(void *, const injection &), void *context) {
  recorder rec(mesa_libc_allocator());
  rec.fail_at(fail_at, on_inject, context);
  mesa::callback_validator validator(rec.table());
  stack_observer observer(validator, rec);

  run_result r;
  r.kind = kind;
  const auto start = std::chrono::steady_clock::now();
  r.outcome = run_workload(kind, mesa::to_vk(validator.table()), observer);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Nothing may be live once the instance is gone.
  validator.set_call("after vkDestroyInstance");
  validator.checkpoint(kAllScopes);

  r.attempts = rec.attempts();
  for (int s = 0; s < MESA_ALLOC_SCOPE_COUNT; ++s) {
    r.totals[s] = rec.total(s);
    r.peak_bytes[s] = rec.peak_bytes(s);
    r.live_bytes_after_destroy += rec.live_bytes(s);
    r.internal[s] = rec.internal(s);
  }
  r.peak_total_bytes = rec.peak_total_bytes();
  r.live_blocks_after_destroy = rec.live_blocks();
  r.calls = rec.calls();
  r.timeline = rec.timeline();
  r.snapshots = rec.snapshots();
  r.alignments = rec.alignments();
  r.injected = rec.injected();
  r.injected_at = rec.injected_at();
  for (std::size_t i = 0; i < validator.violation_count(); ++i) {
    const mesa::validator_violation v = validator.violation(i);
    char text[320];
    v.format(text, sizeof text);
    r.violations.push_back(violation_entry{mesa::validator_rule_name(v.rule), v.call.context,
                                           mesa::validator_op_name(v.call.op), v.call.size,
                                           v.call.alignment, v.call.scope, v.call.sequence, text});
  }
  return r;
}

}  // namespace vk_audit
