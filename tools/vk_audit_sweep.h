// vk_audit_sweep — the out-of-memory sweep: one child process per allocation point.
//
// What it is for: for every allocation attempt i of the clean run, start a child (this same
// executable, with --child i) that runs the workload failing attempt i, and classify what
// happened: the failing call returned an error (error_returned), the workload completed anyway
// (survived), it completed without an error but computed the wrong output (wrong_result: the
// driver dropped work silently), the driver broke a rule of the callbacks (violated: e.g. freed a
// pointer it never allocated), something was still live after vkDestroyInstance (leaked), or the
// child died (crashed: signal, exit status or timeout) — a driver crash never takes the tool
// down; a child that never made attempt i (a driver that allocates differently from run to run)
// injected nothing and is not_injected, not counted as tested. Leaked and violated count only
// what the clean run does not have (more blocks live, more violations): the rest is the
// clean run's, reported there. One outcome per point, the first that applies of crashed,
// not_injected, leaked, wrong_result, violated, error_returned, survived. The
// child tells the parent where the failure was injected the moment it happens, so a crash is
// reported with the call it happened in. Children run `jobs` at a time.
//
// What it costs: a fork+exec and a fresh driver load per point (about 30 ms for instance+device
// on lavapipe), divided by `jobs`.
//
// Example:
//   vk_audit::sweep_options options;
//   options.executable = "/proc/self/exe";
//   options.count = clean.attempts;
//   std::vector<vk_audit::sweep_point> points = vk_audit::run_sweep(options);
#ifndef TOOLS_VK_AUDIT_SWEEP_H_
#define TOOLS_VK_AUDIT_SWEEP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tools/vk_audit_run.h"

namespace vk_audit {

struct sweep_options {
  std::string executable;  // run as: executable --child <i> --workload <w> --report-fd 3
  workload_kind kind = workload_kind::full;
  std::uint64_t first = 0;  // first failure point
  std::uint64_t count = 0;  // number of points
  int jobs = 2;
  double timeout_seconds = 60;
  bool progress = true;  // progress lines on stderr
  // What the clean run already has: a point is leaked or violated only past these, so a driver
  // that breaks a rule or leaks on every run still shows how it handled each failure.
  std::int64_t clean_leaked_blocks = 0;
  std::uint64_t clean_violations = 0;
};

struct sweep_point {
  std::uint64_t index = 0;
  // crashed, not_injected, leaked, wrong_result, violated, error_returned or survived (see the
  // top)
  std::string outcome;
  bool injected = false;
  std::string call;  // where the failure was injected
  std::string phase;
  std::size_t size = 0;
  int scope = -1;
  std::string failed_call;      // the entry point that reported failure to the application
  std::string result;           // what it returned
  bool expected_result = true;  // VK_ERROR_OUT_OF_HOST_MEMORY (or success)
  int signal = 0;               // crashed: the signal (SIGKILL on timeout)
  int exit_status = 0;          // crashed: a non-zero exit without a report
  bool timed_out = false;
  std::int64_t leaked_bytes = 0;
  std::int64_t leaked_blocks = 0;
  std::uint64_t violations = 0;
  std::vector<std::string> violation_texts;  // the first kSweepViolationTexts of them
  std::string output;       // the compute output read back: "ok", "wrong", or "" (not reached)
  std::string stderr_tail;  // the child's last stderr line (driver messages, assertions)
  double seconds = 0;
};

// How many violation lines a child sends with its report.
inline constexpr std::size_t kSweepViolationTexts = 5;

std::vector<sweep_point> run_sweep(const sweep_options &options);

// The child side: runs the workload failing `point` and reports on `fd`; returns the exit code.
int run_sweep_child(workload_kind kind, std::uint64_t point, int fd);

}  // namespace vk_audit

#endif  // TOOLS_VK_AUDIT_SWEEP_H_
