// vk_audit_report — the text report, the JSON object and the SVG picture of vk_alloc_audit.
//
// What it is for: turns a clean run (and an optional sweep) into what a driver engineer reads:
// a text report, one JSON object (allocations, frees, reallocations, peak_bytes,
// live_bytes_after_destroy, violations, sweep, ...) for scripts and tests, and an SVG of live
// host bytes by scope over the workload with the phases marked.
//
// What it costs: nothing that matters (string formatting once at the end).
//
// Example:
//   vk_audit::report_context context{"/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"};
//   std::fputs(vk_audit::text_report(context, clean, &sweep).c_str(), stdout);
#ifndef TOOLS_VK_AUDIT_REPORT_H_
#define TOOLS_VK_AUDIT_REPORT_H_

#include <string>
#include <vector>

#include "tools/vk_audit_run.h"
#include "tools/vk_audit_sweep.h"

namespace vk_audit {

struct report_context {
  std::string icd;                // the ICD manifest used
  double sweep_seconds = 0;       // wall time of the sweep
  int jobs = 0;                   // children run at a time
  std::uint64_t sweep_total = 0;  // allocation points of the clean run
};

// `sweep` may be NULL (no --oom-sweep).
std::string text_report(const report_context &context, const run_result &clean,
                        const std::vector<sweep_point> *sweep);
std::string json_report(const report_context &context, const run_result &clean,
                        const std::vector<sweep_point> *sweep);
std::string svg_report(const report_context &context, const run_result &clean);

const char *scope_name(int scope);  // "command", ..., "instance"

}  // namespace vk_audit

#endif  // TOOLS_VK_AUDIT_REPORT_H_
