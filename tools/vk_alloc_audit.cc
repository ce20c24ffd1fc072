// vk_alloc_audit — does a Vulkan driver honour VkAllocationCallbacks, how much host memory does
// it use by scope, and does it survive every out-of-memory point?
//
// Runs a scripted workload (instance, device, objects, a compute dispatch, teardown) through
// application callbacks built from the project's own layers — callback_validator (every rule
// the Vulkan CTS checks) over a recorder (counts, bytes, peak by scope and by call, timeline,
// fault injection) over libc — against one ICD (default: Mesa's lavapipe), and reports. With
// --oom-sweep it re-runs the workload once per allocation point, failing that allocation, each
// in a child process, and classifies every point. See README, "Vulkan host-memory callbacks".
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "tools/vk_audit_report.h"
#include "tools/vk_audit_run.h"
#include "tools/vk_audit_sweep.h"

namespace {

constexpr const char *kUsage =
    "usage: vk_alloc_audit [options]\n"
    "  --icd FILE           ICD manifest to audit (default: Mesa's lavapipe, lvp_icd.*.json)\n"
    "  --workload W         instance | device | full (default full: objects and a dispatch)\n"
    "  --json               print one JSON object instead of the text report\n"
    "  --svg FILE           write live host bytes by scope over the workload as SVG\n"
    "                       (default vk_alloc_audit.svg; --svg '' for none)\n"
    "  --oom-sweep          fail each allocation point in turn, one child process per point\n"
    "  --sweep-first N      first point of the sweep (default 0)\n"
    "  --sweep-count N      number of points (default: all the clean run made)\n"
    "  --jobs N             children at a time (default: number of CPUs)\n"
    "  --timeout SECONDS    a child running longer is killed and reported crashed (default 60)\n"
    "  --implicit-layers    keep the loader's implicit layers (default: audit the driver alone)\n"
    "  --quiet              no progress lines on stderr\n";

const char *kIcdDirectories[] = {"/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d",
                                 "/usr/local/share/vulkan/icd.d"};

bool readable(const std::string &path) { return access(path.c_str(), R_OK) == 0; }

// Why `path` cannot be an ICD manifest, or "" if it may be one: a regular, readable JSON file
// naming an "ICD" with a "library_path". The loader is handed anything else as is, and some
// (a directory, a JSON array) crash it inside vkCreateInstance.
std::string icd_manifest_problem(const std::string &path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !readable(path)) return "cannot read";
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string::npos || text[start] != '{' ||
      text.find("\"ICD\"") == std::string::npos ||
      text.find("\"library_path\"") == std::string::npos)
    return "not an ICD manifest (a JSON object with \"ICD\": {\"library_path\": ...})";
  // The library must be there: the loader only says VK_ERROR_INCOMPATIBLE_DRIVER. A path is
  // read; a bare name, which the loader hands to dlopen to search, is loaded here the same way
  // (and unloaded). Checked only where the manifest is read without doubt (one library_path, a
  // value without escapes); the loader judges the rest.
  const std::size_t key = text.find("\"library_path\"");
  const std::size_t open = text.find('"', text.find(':', key) + 1);
  const std::size_t close = open == std::string::npos ? open : text.find('"', open + 1);
  if (close != std::string::npos && text.find("\"library_path\"", key + 1) == std::string::npos) {
    std::string library = text.substr(open + 1, close - open - 1);
    if (library.empty() || library.find('\\') != std::string::npos) return "";
    if (library.find('/') != std::string::npos) {
      if (library[0] != '/') {  // relative to the manifest, as the loader takes it
        const std::size_t slash = path.rfind('/');
        library = (slash == std::string::npos ? "." : path.substr(0, slash)) + "/" + library;
      }
      if (!readable(library)) return "its library_path " + library + " cannot be read";
    } else {
      void *handle = dlopen(library.c_str(), RTLD_LAZY | RTLD_LOCAL);
      if (handle == nullptr) {
        const char *why = dlerror();
        return "its library_path " + library + " cannot be loaded" +
               (why != nullptr ? std::string(": ") + why : std::string());
      }
      dlclose(handle);
    }
  }
  return "";
}

// Seconds: a finite number above 0.
bool parse_seconds(const char *text, double *out) {
  char *end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(v) || v <= 0) return false;
  *out = v;
  return true;
}

std::string find_lavapipe() {
  for (const char *dir : kIcdDirectories) {
    for (const char *name :
         {"lvp_icd.x86_64.json", "lvp_icd.aarch64.json", "lvp_icd.json", "lvp_icd.i686.json"}) {
      const std::string path = std::string(dir) + "/" + name;
      if (readable(path)) return path;
    }
  }
  return "";
}

bool parse_number(const char *text, std::uint64_t *out) {
  char *end = nullptr;
  errno = 0;
  // Digits only: strtoull would skip blanks and take " -1" as a huge number.
  if (!std::isdigit(static_cast<unsigned char>(text[0]))) return false;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') return false;
  *out = v;
  return true;
}

int usage_error(const std::string &message) {
  std::fprintf(stderr, "vk_alloc_audit: %s\n%s", message.c_str(), kUsage);
  return 2;
}

// The loader and driver settings every run (clean and children) uses.
void configure_loader(const std::string &icd, bool implicit_layers) {
  setenv("VK_ICD_FILENAMES", icd.c_str(), 1);  // loaders before 1.3.207
  setenv("VK_DRIVER_FILES", icd.c_str(), 1);
  if (!implicit_layers) {  // audit the loader and the driver, not what else is installed
    setenv("VK_LOADER_LAYERS_DISABLE", "~implicit~", 1);
    setenv("NODEVICE_SELECT", "1", 1);
  }
  // Mesa's on-disk shader cache would make runs differ (a miss, then hits).
  setenv("MESA_SHADER_CACHE_DISABLE", "true", 1);
  setenv("MESA_GLSL_CACHE_DISABLE", "true", 1);
}

// A path the user gave, relative to where they started `bazel run` (not the runfiles tree).
std::string user_path(const std::string &path) {
  if (path.empty() || path[0] == '/') return path;
  const char *dir = std::getenv("BUILD_WORKING_DIRECTORY");  // bazel run
  return dir != nullptr ? std::string(dir) + "/" + path : path;
}

}  // namespace

int main(int argc, char **argv) {
  std::string icd, svg = "vk_alloc_audit.svg";
  vk_audit::workload_kind kind = vk_audit::workload_kind::full;
  bool json = false, sweep = false, quiet = false, implicit_layers = false;
  bool sweep_option = false;  // one that only means something with --oom-sweep
  std::uint64_t first = 0, count = UINT64_MAX, child = UINT64_MAX, report_fd = 3, jobs = 0;
  double timeout = 60;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char **out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    const char *v = nullptr;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--json") {
      json = true;
    } else if (arg == "--oom-sweep") {
      sweep = true;
    } else if (arg == "--implicit-layers") {
      implicit_layers = true;
    } else if (arg == "--quiet") {
      quiet = true;
    } else if (arg == "--icd") {
      if (!value(&v)) return usage_error("--icd needs a file");
      icd = user_path(v);
    } else if (arg == "--svg") {
      if (!value(&v)) return usage_error("--svg needs a file (or '')");
      svg = v;
    } else if (arg == "--workload") {
      if (!value(&v) || !vk_audit::parse_workload(v, &kind))
        return usage_error("--workload must be instance, device or full");
    } else if (arg == "--sweep-first") {
      sweep_option = true;
      if (!value(&v) || !parse_number(v, &first)) return usage_error("bad --sweep-first");
    } else if (arg == "--sweep-count") {
      sweep_option = true;
      if (!value(&v) || !parse_number(v, &count)) return usage_error("bad --sweep-count");
    } else if (arg == "--jobs") {
      sweep_option = true;
      if (!value(&v) || !parse_number(v, &jobs) || jobs == 0 || jobs > 256)
        return usage_error("--jobs must be 1..256");
    } else if (arg == "--timeout") {
      sweep_option = true;
      if (!value(&v) || !parse_seconds(v, &timeout))
        return usage_error("--timeout must be a number of seconds above 0");
    } else if (arg == "--child") {  // internal: one sweep point
      if (!value(&v) || !parse_number(v, &child)) return usage_error("bad --child");
    } else if (arg == "--report-fd") {  // internal
      if (!value(&v) || !parse_number(v, &report_fd)) return usage_error("bad --report-fd");
    } else {
      return usage_error("unknown option " + arg);
    }
  }

  if (sweep && count == 0) return usage_error("--sweep-count must be 1 or more");
  if (sweep_option && !sweep && child == UINT64_MAX)
    return usage_error("--sweep-first, --sweep-count, --jobs and --timeout need --oom-sweep");

  if (child != UINT64_MAX) {  // one sweep point; the parent set the environment
    const int rc = vk_audit::run_sweep_child(kind, child, static_cast<int>(report_fd));
    // The report is written: skip exit-time handlers (and a sanitizer's leak check of the
    // driver's own libc blocks), which are not part of the audited workload.
    std::fflush(nullptr);
    _exit(rc);
  }

  if (icd.empty()) {
    icd = find_lavapipe();
    if (icd.empty()) {
      std::fprintf(stderr,
                   "vk_alloc_audit: Mesa's lavapipe ICD (lvp_icd.*.json) was not found in "
                   "/usr/share/vulkan/icd.d; install mesa-vulkan-drivers (./setup.sh) or pass "
                   "--icd FILE\n");
      return 2;
    }
  } else if (const std::string problem = icd_manifest_problem(icd); !problem.empty()) {
    std::fprintf(stderr, "vk_alloc_audit: --icd %s: %s\n", icd.c_str(), problem.c_str());
    return 2;
  }
  configure_loader(icd, implicit_layers);

  const vk_audit::run_result clean = vk_audit::run_audit(kind);
  // Wrong output with every call succeeding is a failed run too: the driver dropped work.
  const bool wrong_output = clean.outcome.output_checked && !clean.outcome.output_ok;
  if (!clean.outcome.completed && !quiet)
    std::fprintf(stderr, "vk_alloc_audit: the clean run failed: %s returned %s\n",
                 clean.outcome.failed_call ? clean.outcome.failed_call : "?",
                 vk_audit::result_name(clean.outcome.failed_result).c_str());
  else if (wrong_output && !quiet)
    std::fprintf(stderr, "vk_alloc_audit: the clean run's compute output was wrong\n");

  vk_audit::report_context context;
  context.icd = icd;
  context.sweep_total = clean.attempts;
  std::vector<vk_audit::sweep_point> points;
  if (sweep) {
    vk_audit::sweep_options options;
    options.executable = "/proc/self/exe";
    options.kind = kind;
    if (first >= clean.attempts) {
      std::fprintf(stderr,
                   "vk_alloc_audit: --sweep-first %llu: the clean run has only %llu allocation "
                   "points (0..%llu)\n",
                   static_cast<unsigned long long>(first),
                   static_cast<unsigned long long>(clean.attempts),
                   static_cast<unsigned long long>(clean.attempts ? clean.attempts - 1 : 0));
      return 2;
    }
    options.first = first;
    options.count = clean.attempts - options.first;
    if (count < options.count) options.count = count;
    const unsigned cpus = std::thread::hardware_concurrency();
    options.jobs = static_cast<int>(jobs != 0 ? jobs : cpus != 0 ? cpus : 1);
    options.timeout_seconds = timeout;
    options.progress = !quiet;
    options.clean_leaked_blocks = clean.live_blocks_after_destroy;
    options.clean_violations = clean.violations.size();
    const auto start = std::chrono::steady_clock::now();
    points = vk_audit::run_sweep(options);
    context.sweep_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    context.jobs = options.jobs;
  }

  const std::vector<vk_audit::sweep_point> *sweep_points = sweep ? &points : nullptr;
  const std::string report = json ? vk_audit::json_report(context, clean, sweep_points)
                                  : vk_audit::text_report(context, clean, sweep_points);
  std::string stdout_text = report;
  int status = clean.outcome.completed && !wrong_output ? 0 : 1;
  if (!svg.empty()) {
    const std::string path = user_path(svg);
    std::ofstream out(path);
    out << vk_audit::svg_report(context, clean);
    if (!out) {
      std::fprintf(stderr, "vk_alloc_audit: cannot write %s: %s\n", path.c_str(),
                   std::strerror(errno));
      status = 1;
    } else if (!json && !quiet) {
      stdout_text += "\nSVG of live bytes by scope: " + path + "\n";
    }
  }
  // A script reading the report must not get status 0 and no report (a full disk, say).
  if (std::fputs(stdout_text.c_str(), stdout) == EOF || std::fflush(stdout) != 0) {
    std::fprintf(stderr, "vk_alloc_audit: cannot write the report: %s\n", std::strerror(errno));
    return 1;
  }
  return status;
}
