// vk_audit_run — one run of the vk_alloc_audit workload through the project's callbacks.
//
// What it is for: builds the application's callback stack from the project's layers —
// caller_entry → callback_validator → recorder → tracking (mesa_tracking_create) → libc — runs
// the workload with it, optionally failing one allocation attempt (the recorder fails it, at the
// number it gave it), and gathers what the
// report needs: counts and bytes by scope and by call, peak, alignments, internal notifications,
// what is live after each destroy and after vkDestroyInstance, and every validator violation
// (COMMAND-scope blocks are checked after every call, everything after vkDestroyInstance).
//
// What it costs: the workload's own time plus a locked map update per allocation.
//
// Example:
//   vk_audit::run_result clean = vk_audit::run_audit(vk_audit::workload_kind::device);
//   std::printf("%llu attempts\n", (unsigned long long)clean.attempts);
#ifndef TOOLS_VK_AUDIT_RUN_H_
#define TOOLS_VK_AUDIT_RUN_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mesa_alloc/debug_resources.h"
#include "tools/vk_audit_recorder.h"
#include "tools/vk_audit_workload.h"

namespace vk_audit {

struct violation_entry {
  std::string rule;
  std::string call;  // the Vulkan entry point during which it happened
  std::string op;    // alloc, realloc, free, internal_alloc, internal_free, checkpoint
  std::size_t size = 0;
  std::size_t alignment = 0;
  int scope = -1;
  std::uint64_t sequence = 0;
  std::string text;  // the validator's one-line description
};

struct run_result {
  workload_kind kind = workload_kind::full;
  workload_outcome outcome;
  double seconds = 0;
  std::uint64_t attempts = 0;  // allocation points (alloc and realloc to a non-zero size)
  scope_counts totals[MESA_ALLOC_SCOPE_COUNT];
  std::int64_t peak_bytes[MESA_ALLOC_SCOPE_COUNT] = {};
  std::int64_t peak_total_bytes = 0;          // from the tracking layer
  std::int64_t live_bytes_after_destroy = 0;  // after vkDestroyInstance (the very end), tracking
  std::int64_t live_blocks_after_destroy = 0;
  mesa_tracking_stats tracking{};  // the tracking layer's own view at the end
  std::vector<call_counts> calls;
  std::vector<module_counts> modules;
  std::vector<timeline_sample> timeline;
  std::vector<destroy_snapshot> snapshots;
  std::vector<std::pair<std::size_t, std::uint64_t>> alignments;
  recorder::internal_counts internal[MESA_ALLOC_SCOPE_COUNT];
  std::vector<violation_entry> violations;
  bool injected = false;  // the recorder failed attempt `fail_at`
  injection injected_at;

  std::uint64_t allocations() const;
  std::uint64_t reallocations() const;
  std::uint64_t frees() const;
};

// What the caller is told while the workload runs, as it happens (a sweep child writes it out
// at once, so it survives a driver that crashes later). Each may be null.
struct run_hooks {
  void (*on_inject)(void *context, const injection &at) = nullptr;  // the failed attempt
  void (*on_violation)(void *context, const char *text) = nullptr;  // the validator's line
  void *context = nullptr;
};

// Runs the workload once. With `fail_at` set, the recorder fails allocation attempt `fail_at`
// (0-based, counted from the first Vulkan call, as `attempts` counts them: a shrinking realloc
// is one) and `hooks.on_inject` is told at that moment, with the call it happened in.
run_result run_audit(workload_kind kind, std::uint64_t fail_at = UINT64_MAX,
                     const run_hooks &hooks = {});

}  // namespace vk_audit

#endif  // TOOLS_VK_AUDIT_RUN_H_
