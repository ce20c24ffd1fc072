#include "tools/vk_audit_sweep.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

extern char **environ;

namespace vk_audit {
namespace {

using clock_type = std::chrono::steady_clock;

void write_all(int fd, const std::string &s) {
  const char *p = s.data();
  std::size_t left = s.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

// Tabs and newlines would break the line protocol.
std::string field(const std::string &s) {
  std::string out = s.empty() ? "-" : s;
  for (char &c : out) {
    if (c == '\t' || c == '\n') c = ' ';
  }
  return out;
}

// A sweep child's report descriptor, and how many violation lines it has written.
struct child_report {
  int fd;
  std::size_t violations = 0;
};

void report_injection(void *context, const injection &at) {
  const int fd = static_cast<child_report *>(context)->fd;
  write_all(fd, "inject\t" + field(at.call) + "\t" + field(at.phase) + "\t" +
                    std::to_string(at.size) + "\t" + std::to_string(at.scope) + "\n");
}

// Written as the validator records them (before a crash later in the run can lose them), up to
// kSweepViolationTexts; the last line has the count. Runs under the validator's lock, so it
// must not allocate through the driver's table: its strings come from the global heap.
void report_violation(void *context, const char *text) {
  auto *report = static_cast<child_report *>(context);
  if (report->violations++ >= kSweepViolationTexts) return;
  write_all(report->fd, "violation\t" + field(text) + "\n");
}

std::vector<std::string> split_tabs(const std::string &line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string item;
  while (std::getline(ss, item, '\t')) out.push_back(item == "-" ? "" : item);
  return out;
}

struct child {
  pid_t pid = -1;
  std::uint64_t index = 0;
  int report_fd = -1;
  int err_fd = -1;
  std::string report;
  std::string err;
  clock_type::time_point start;
  bool killed = false;
};

bool spawn(const sweep_options &o, std::uint64_t index, child *c) {
  int report[2], err[2];
  if (pipe2(report, O_CLOEXEC) != 0) return false;
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(report[0]);
    close(report[1]);
    return false;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawn_file_actions_adddup2(&actions, report[1], 3);
  const std::string point = std::to_string(index);
  const char *argv[] = {o.executable.c_str(),  "--child",     point.c_str(), "--workload",
                        workload_name(o.kind), "--report-fd", "3",           nullptr};
  const int rc = posix_spawn(&c->pid, o.executable.c_str(), &actions, nullptr,
                             const_cast<char *const *>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(report[1]);
  close(err[1]);
  if (rc != 0) {
    close(report[0]);
    close(err[0]);
    std::fprintf(stderr, "vk_alloc_audit: cannot start %s: %s\n", o.executable.c_str(),
                 std::strerror(rc));
    return false;
  }
  c->index = index;
  c->report_fd = report[0];
  c->err_fd = err[0];
  c->start = clock_type::now();
  return true;
}

// Reads what is available; closes the descriptor at end of file.
void drain(int *fd, std::string *into, std::size_t keep) {
  char buffer[4096];
  const ssize_t n = ::read(*fd, buffer, sizeof buffer);
  if (n > 0) {
    into->append(buffer, static_cast<std::size_t>(n));
    if (keep != 0 && into->size() > keep) into->erase(0, into->size() - keep);
    return;
  }
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  close(*fd);
  *fd = -1;
}

// The line of a child's stderr that says most: an assertion or sanitizer report if there is
// one, else the last line.
std::string telling_line(const std::string &text) {
  for (const char *marker : {"Assertion", "ERROR: AddressSanitizer", "runtime error"}) {
    const std::size_t at = text.find(marker);
    if (at == std::string::npos) continue;
    const std::size_t begin = text.rfind('\n', at);
    const std::size_t end = text.find('\n', at);
    const std::size_t from = begin == std::string::npos ? 0 : begin + 1;
    return text.substr(from, end == std::string::npos ? std::string::npos : end - from);
  }
  const std::size_t end = text.find_last_not_of("\r\n");
  if (end == std::string::npos) return "";
  const std::size_t begin = text.rfind('\n', end);
  const std::size_t from = begin == std::string::npos ? 0 : begin + 1;
  return text.substr(from, end + 1 - from);
}

sweep_point classify(const child &c, int status, const sweep_options &o) {
  sweep_point p;
  p.index = c.index;
  p.seconds = std::chrono::duration<double>(clock_type::now() - c.start).count();
  p.stderr_tail = telling_line(c.err);
  bool done = false;
  std::stringstream lines(c.report);
  std::string line;
  while (std::getline(lines, line)) {
    const std::vector<std::string> f = split_tabs(line);
    if (f.size() == 5 && f[0] == "inject") {
      p.injected = true;
      p.call = f[1];
      p.phase = f[2];
      p.size = std::strtoull(f[3].c_str(), nullptr, 10);
      p.scope = std::atoi(f[4].c_str());
    } else if (f.size() == 2 && f[0] == "violation") {
      p.violation_texts.push_back(f[1]);
    } else if (f.size() == 8 && f[0] == "done") {
      done = true;
      p.failed_call = f[2];
      p.result = f[3];
      p.leaked_bytes = std::strtoll(f[4].c_str(), nullptr, 10);
      p.leaked_blocks = std::strtoll(f[5].c_str(), nullptr, 10);
      p.violations = std::strtoull(f[6].c_str(), nullptr, 10);
      p.output = f[7];
    }
  }
  // A child that died after its violation lines but before its last line still had them.
  if (p.violations < p.violation_texts.size()) p.violations = p.violation_texts.size();
  p.timed_out = c.killed;
  if (WIFSIGNALED(status)) {
    p.outcome = "crashed";
    p.signal = WTERMSIG(status);
  } else if (!done || WEXITSTATUS(status) != 0) {
    p.outcome = "crashed";
    p.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  } else if (!p.injected) {  // the run never made attempt `index`: nothing was tested
    p.outcome = "not_injected";
  } else if (p.leaked_blocks > o.clean_leaked_blocks) {
    p.outcome = "leaked";
  } else if (p.failed_call.empty() && p.output == "wrong") {  // no error, wrong data
    p.outcome = "wrong_result";
  } else if (p.violations > o.clean_violations) {
    p.outcome = "violated";
  } else if (!p.failed_call.empty()) {  // the application was told (maybe only at teardown)
    p.outcome = "error_returned";
  } else {
    p.outcome = "survived";
  }
  p.expected_result =
      p.result.empty() || p.result == "VK_SUCCESS" || p.result == "VK_ERROR_OUT_OF_HOST_MEMORY";
  return p;
}

class progress_line {
 public:
  progress_line(bool enabled, std::uint64_t total)
      : enabled_(enabled), tty_(isatty(2)), total_(total), start_(clock_type::now()) {}

  void update(std::uint64_t done, std::size_t running, std::uint64_t crashed, std::uint64_t leaked,
              bool final_line) {
    if (!enabled_) return;
    const double s = std::chrono::duration<double>(clock_type::now() - start_).count();
    if (!tty_ && !final_line && s - last_ < 5.0) return;
    last_ = s;
    std::fprintf(
        stderr, "%ssweep: %llu/%llu points, %zu running, %llu crashed, %llu leaked, %.1f s%s",
        tty_ ? "\r" : "", static_cast<unsigned long long>(done),
        static_cast<unsigned long long>(total_), running, static_cast<unsigned long long>(crashed),
        static_cast<unsigned long long>(leaked), s, tty_ && !final_line ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  bool tty_;
  std::uint64_t total_;
  clock_type::time_point start_;
  double last_ = -10;
};

}  // namespace

int run_sweep_child(workload_kind kind, std::uint64_t point, int fd) {
  child_report report{fd};
  run_hooks hooks;
  hooks.on_inject = &report_injection;
  hooks.on_violation = &report_violation;
  hooks.context = &report;
  const run_result r = run_audit(kind, point, hooks);
  const char *output = !r.outcome.output_checked ? "-" : r.outcome.output_ok ? "ok" : "wrong";
  write_all(
      fd, "done\t" + std::string(r.outcome.completed ? "1" : "0") + "\t" +
              field(r.outcome.failed_call != nullptr ? r.outcome.failed_call : "") + "\t" +
              field(r.outcome.failed_call != nullptr ? result_name(r.outcome.failed_result) : "") +
              "\t" + std::to_string(r.live_bytes_after_destroy) + "\t" +
              std::to_string(r.live_blocks_after_destroy) + "\t" +
              std::to_string(r.violations.size()) + "\t" + output + "\n");
  return 0;
}

std::vector<sweep_point> run_sweep(const sweep_options &o) {
  std::vector<sweep_point> points;
  std::vector<child> running;
  const std::uint64_t end = o.first + o.count;
  std::uint64_t next = o.first, crashed = 0, leaked = 0;
  progress_line progress(o.progress, o.count);
  const int jobs = o.jobs < 1 ? 1 : o.jobs;
  while (next < end || !running.empty()) {
    while (static_cast<int>(running.size()) < jobs && next < end) {
      child c;
      if (!spawn(o, next, &c)) {
        sweep_point p;
        p.index = next;
        p.outcome = "crashed";
        p.exit_status = -1;
        p.stderr_tail = "could not start the child process";
        points.push_back(p);
      } else {
        running.push_back(std::move(c));
      }
      ++next;
    }
    std::vector<pollfd> fds;
    for (const child &c : running) {
      if (c.report_fd >= 0) fds.push_back(pollfd{c.report_fd, POLLIN, 0});
      if (c.err_fd >= 0) fds.push_back(pollfd{c.err_fd, POLLIN, 0});
    }
    if (!fds.empty()) poll(fds.data(), fds.size(), 100);
    for (const pollfd &f : fds) {
      if (f.revents == 0) continue;
      for (child &c : running) {
        if (c.report_fd == f.fd) drain(&c.report_fd, &c.report, 0);
        if (c.err_fd == f.fd) drain(&c.err_fd, &c.err, 16384);
      }
    }
    for (std::size_t i = 0; i < running.size();) {
      child &c = running[i];
      if (c.report_fd < 0 && c.err_fd < 0) {
        int status = 0;
        while (waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
        }
        points.push_back(classify(c, status, o));
        crashed += points.back().outcome == "crashed";
        leaked += points.back().outcome == "leaked";
        running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
        continue;
      }
      if (!c.killed &&
          std::chrono::duration<double>(clock_type::now() - c.start).count() > o.timeout_seconds) {
        kill(c.pid, SIGKILL);
        c.killed = true;
      }
      ++i;
    }
    progress.update(points.size(), running.size(), crashed, leaked, false);
  }
  progress.update(points.size(), 0, crashed, leaked, true);
  std::sort(points.begin(), points.end(),
            [](const sweep_point &a, const sweep_point &b) { return a.index < b.index; });
  return points;
}

}  // namespace vk_audit
