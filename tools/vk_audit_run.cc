#include "tools/vk_audit_run.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "mesa_alloc/callback_validator.h"
#include "mesa_alloc/vulkan.h"
#include "tools/vk_audit_caller.h"

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

// Notes the injected failure (the recorder's), not those of the layers below.
struct failure_watch {
  void (*on_inject)(void *, const injection &);
  void *context;
  bool injected = false;
  injection at{};
};

void watch_failure(void *context, const injection &attempt) {
  auto *w = static_cast<failure_watch *>(context);
  if (w->injected || !attempt.injected) return;
  w->injected = true;
  w->at = attempt;
  if (w->on_inject != nullptr) w->on_inject(w->context, attempt);
}

void tell_violation(void *context, const mesa::validator_violation &v) {
  const auto *hooks = static_cast<const run_hooks *>(context);
  char text[320];
  v.format(text, sizeof text);
  hooks->on_violation(hooks->context, text);
}

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

run_result run_audit(workload_kind kind, std::uint64_t fail_at, const run_hooks &hooks) {
  // The application's callbacks, bottom up. The recorder numbers the allocation points and
  // fails the one asked for itself: a fault layer under the tracking layer would never see a
  // shrinking realloc (kept in place) nor a request the tracking layer refuses, and its numbers
  // would drift from the recorder's.
  const mesa_allocator *tracking =
      mesa_tracking_create(mesa_libc_allocator(), "application callbacks", nullptr);
  if (tracking == nullptr) {
    std::fprintf(stderr, "vk_alloc_audit: cannot create the tracking layer\n");
    std::exit(2);
  }
  recorder rec(tracking);
  failure_watch watch{hooks.on_inject, hooks.context};
  rec.on_failure(&watch_failure, &watch);
  mesa::callback_validator validator(rec.table());
  run_hooks told = hooks;
  if (told.on_violation != nullptr) validator.set_listener(&tell_violation, &told);
  stack_observer observer(validator, rec);
  rec.fail_attempt(fail_at);

  run_result r;
  r.kind = kind;
  const auto start = std::chrono::steady_clock::now();
  caller_entry entry(validator.table());
  r.outcome = run_workload(kind, mesa::to_vk(entry.table()), observer);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Nothing may be live once the instance is gone.
  validator.set_call("after vkDestroyInstance");
  validator.checkpoint(kAllScopes);

  r.attempts = rec.attempts();
  for (int s = 0; s < MESA_ALLOC_SCOPE_COUNT; ++s) {
    r.totals[s] = rec.total(s);
    r.peak_bytes[s] = rec.peak_bytes(s);
    r.internal[s] = rec.internal(s);
  }
  mesa_tracking_get_stats(tracking, &r.tracking);
  r.peak_total_bytes = static_cast<std::int64_t>(r.tracking.peak_bytes);
  r.live_bytes_after_destroy = static_cast<std::int64_t>(r.tracking.bytes_in_use);
  r.live_blocks_after_destroy = static_cast<std::int64_t>(r.tracking.blocks_in_use);
  r.calls = rec.calls();
  r.modules = rec.modules();
  r.timeline = rec.timeline();
  r.snapshots = rec.snapshots();
  r.alignments = rec.alignments();
  r.injected = watch.injected;
  r.injected_at = watch.at;
  for (std::size_t i = 0; i < validator.violation_count(); ++i) {
    const mesa::validator_violation v = validator.violation(i);
    char text[320];
    v.format(text, sizeof text);
    r.violations.push_back(violation_entry{mesa::validator_rule_name(v.rule), v.call.context,
                                           mesa::validator_op_name(v.call.op), v.call.size,
                                           v.call.alignment, v.call.scope, v.call.sequence, text});
  }
  // Blocks the driver leaked stay allocated (they are reported, not freed behind its back).
  mesa_tracking_destroy(tracking);
  return r;
}

}  // namespace vk_audit
