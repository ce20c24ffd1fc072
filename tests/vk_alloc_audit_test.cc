// Integration test: //tools:vk_alloc_audit against a real Vulkan driver (Mesa's lavapipe,
// installed by setup.sh). Skips only when no Vulkan ICD is installed at all.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

// A small JSON reader: enough for the tool's one object.
struct json {
  enum kind_t { null, boolean, number, string, array, object } kind = null;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<json> items;
  std::map<std::string, json> fields;

  const json &operator[](const std::string &key) const {
    static const json missing;
    auto it = fields.find(key);
    return it == fields.end() ? missing : it->second;
  }
  bool has(const std::string &key) const { return fields.count(key) != 0; }
};

class json_parser {
 public:
  explicit json_parser(const std::string &text) : t_(text) {}
  bool parse(json *out) {
    if (!value(out)) return false;
    ws();
    return i_ == t_.size();
  }

 private:
  void ws() {
    while (i_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[i_]))) ++i_;
  }
  bool literal(const char *word) {
    const std::string w(word);
    if (t_.compare(i_, w.size(), w) != 0) return false;
    i_ += w.size();
    return true;
  }
  bool str(std::string *out) {
    if (t_[i_] != '"') return false;
    ++i_;
    while (i_ < t_.size() && t_[i_] != '"') {
      if (t_[i_] == '\\') {
        ++i_;
        if (t_[i_] == 'u') {
          out->push_back(static_cast<char>(std::stoi(t_.substr(i_ + 1, 4), nullptr, 16)));
          i_ += 4;
        } else {
          out->push_back(t_[i_] == 'n' ? '\n' : t_[i_]);
        }
      } else {
        out->push_back(t_[i_]);
      }
      ++i_;
    }
    return i_++ < t_.size();
  }
  bool value(json *v) {
    ws();
    if (i_ >= t_.size()) return false;
    const char c = t_[i_];
    if (c == '{') {
      v->kind = json::object;
      ++i_;
      ws();
      if (t_[i_] == '}') return ++i_, true;
      while (true) {
        ws();
        std::string key;
        if (!str(&key)) return false;
        ws();
        if (t_[i_++] != ':') return false;
        if (!value(&v->fields[key])) return false;
        ws();
        if (t_[i_] == ',') {
          ++i_;
          continue;
        }
        return t_[i_++] == '}';
      }
    }
    if (c == '[') {
      v->kind = json::array;
      ++i_;
      ws();
      if (t_[i_] == ']') return ++i_, true;
      while (true) {
        v->items.emplace_back();
        if (!value(&v->items.back())) return false;
        ws();
        if (t_[i_] == ',') {
          ++i_;
          continue;
        }
        return t_[i_++] == ']';
      }
    }
    if (c == '"') {
      v->kind = json::string;
      return str(&v->s);
    }
    if (literal("true")) return v->kind = json::boolean, v->b = true, true;
    if (literal("false")) return v->kind = json::boolean, true;
    if (literal("null")) return true;
    std::size_t used = 0;
    v->kind = json::number;
    v->n = std::stod(t_.substr(i_), &used);
    i_ += used;
    return used != 0;
  }

  const std::string &t_;
  std::size_t i_ = 0;
};

struct run_output {
  int exit_code = -1;
  std::string out;
};

std::string tool() {
  const char *dir = std::getenv("TEST_SRCDIR");
  const char *workspace = std::getenv("TEST_WORKSPACE");
  return std::string(dir ? dir : ".") + "/" + (workspace ? workspace : "mesa_alloc") +
         "/tools/vk_alloc_audit";
}

// The tool's exit code and stdout (with its stderr too when `with_stderr`).
run_output run(const std::string &args, bool with_stderr = false) {
  run_output r;
  const std::string command = tool() + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE *pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[65536];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) r.out.append(buffer, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// A manifest in TEST_TMPDIR for tests/misbehaving_icd.c (built next to this test).
std::string misbehaving_icd_manifest() {
  const char *dir = std::getenv("TEST_SRCDIR");
  const char *workspace = std::getenv("TEST_WORKSPACE");
  const std::string built = std::string(dir ? dir : ".") + "/" +
                            (workspace ? workspace : "mesa_alloc") + "/tests/libmisbehaving_icd.so";
  char library[4096];
  if (realpath(built.c_str(), library) == nullptr) return "";
  const std::string manifest = std::string(std::getenv("TEST_TMPDIR")) + "/misbehaving_icd.json";
  std::ofstream(manifest) << "{\"file_format_version\": \"1.0.0\", \"ICD\": {\"library_path\": \""
                          << library << "\", \"api_version\": \"1.1.0\"}}\n";
  return manifest;
}

// The ICD to audit: lavapipe when installed, else any ICD; "" when there is none.
std::string find_icd() {
  std::string any;
  for (const char *dir : {"/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"}) {
    DIR *d = opendir(dir);
    if (d == nullptr) continue;
    while (dirent *e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.size() < 5 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
      const std::string path = std::string(dir) + "/" + name;
      if (name.rfind("lvp_icd.", 0) == 0) {
        closedir(d);
        return path;
      }
      if (any.empty()) any = path;
    }
    closedir(d);
  }
  return any;
}

class VkAllocAudit : public ::testing::Test {
 protected:
  void SetUp() override {
    icd_ = find_icd();
    if (icd_.empty()) GTEST_SKIP() << "no Vulkan ICD installed (./setup.sh installs lavapipe)";
  }
  json audit(const std::string &args) {
    const std::string svg = std::string(std::getenv("TEST_TMPDIR")) + "/audit.svg";
    const run_output r = run("--icd " + icd_ + " --json --quiet --svg " + svg + " " + args);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    json j;
    EXPECT_TRUE(json_parser(r.out).parse(&j)) << r.out;
    return j;
  }
  // The sweep of the full workload's last 30 allocation points (command recording and
  // teardown, where lavapipe 22.3 crashes, drops work and frees stack addresses).
  json tail_sweep() {
    const double points = audit("--workload full")["allocation_points"].n;
    EXPECT_GT(points, 30);
    const int first = points > 30 ? static_cast<int>(points) - 30 : 0;
    return audit("--workload full --oom-sweep --sweep-first " + std::to_string(first));
  }
  // The ICD's manifest copied to `path` (the library it names stays where it is).
  void copy_icd_to(const std::string &path) const {
    std::ifstream in(icd_);
    std::ofstream out(path);
    out << in.rdbuf();
  }
  std::string icd_;
};

// A driver that breaks a rule or leaks on every run, the clean one included, does not make
// every sweep point violated or leaked: a point counts only what the clean run does not have,
// so the sweep still says how the driver handled each failure (a probe's driver turned 162
// error_returned and 3 survived into 154 error_returned and 11 violated).
TEST(VkAllocAuditOfAMisbehavingDriver, TheSweepCountsOnlyWhatTheCleanRunDoesNotHave) {
  const std::string manifest = misbehaving_icd_manifest();
  ASSERT_FALSE(manifest.empty()) << "tests/libmisbehaving_icd.so was not built";
  for (const char *how : {"violate", "leak"}) {
    SCOPED_TRACE(how);
    setenv("MISBEHAVING_ICD", how, 1);
    // The tool leaves a driver's leaked block allocated (reported, not freed behind its back),
    // which LeakSanitizer would report at the tool's exit under --config=asan.
    const char *asan = std::getenv("ASAN_OPTIONS");
    const std::string asan_options = asan != nullptr ? asan : "";
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    const run_output r =
        run("--icd " + manifest + " --workload instance --json --quiet --svg '' --oom-sweep");
    unsetenv("MISBEHAVING_ICD");
    if (asan != nullptr) {
      setenv("ASAN_OPTIONS", asan_options.c_str(), 1);
    } else {
      unsetenv("ASAN_OPTIONS");
    }
    ASSERT_EQ(r.exit_code, 0) << r.out;
    json j;
    ASSERT_TRUE(json_parser(r.out).parse(&j)) << r.out;
    EXPECT_TRUE(j["completed"].b);
    if (std::string(how) == "violate") {
      EXPECT_EQ(j["violations"].items.size(), 2u);  // two frees of stack addresses
    } else {
      EXPECT_EQ(j["live_blocks_after_destroy"].n, 1);
      EXPECT_EQ(j["live_bytes_after_destroy"].n, 100);
    }
    const json &summary = j["sweep_summary"];
    EXPECT_EQ(summary["violated"].n, 0);
    EXPECT_EQ(summary["leaked"].n, 0);
    EXPECT_EQ(summary["crashed"].n, 0);
    EXPECT_GT(summary["error_returned"].n, 100);
    EXPECT_EQ(summary["error_returned"].n + summary["survived"].n, summary["points"].n);
  }
}

TEST_F(VkAllocAudit, CleanRunIsBalancedWithNothingLiveAfterDestroyInstance) {
  const json j = audit("--workload full");
  ASSERT_EQ(j.kind, json::object);
  EXPECT_TRUE(j["completed"].b);
  EXPECT_TRUE(j["output_ok"].b) << "the compute shader did not write 3*i+1";
  EXPECT_GT(j["allocations"].n, 50);
  EXPECT_EQ(j["allocations"].n, j["frees"].n);
  EXPECT_GE(j["reallocations"].n, 0);
  EXPECT_GT(j["peak_bytes"].n, 0);
  EXPECT_EQ(j["live_bytes_after_destroy"].n, 0);
  EXPECT_EQ(j["live_blocks_after_destroy"].n, 0);
  EXPECT_EQ(j["allocation_points"].n, j["allocations"].n + j["reallocations"].n);
  // The tracking layer under the recorder agrees (it counts a realloc as alloc + free).
  EXPECT_EQ(j["tracking"]["total_allocations"].n, j["allocations"].n + j["reallocations"].n);
  EXPECT_EQ(j["tracking"]["total_deallocations"].n, j["frees"].n + j["reallocations"].n);
  EXPECT_EQ(j["tracking"]["bytes_in_use"].n, 0);
  ASSERT_EQ(j["violations"].kind, json::array);
  for (const json &v : j["violations"].items) ADD_FAILURE() << v["text"].s;
  // Attribution: vkCreateInstance and vkCreateDevice allocate; the last destroy leaves nothing.
  std::set<std::string> allocating;
  for (const json &c : j["calls"].items) {
    for (const auto &[scope, counts] : c["by_scope"].fields)
      if (counts["allocations"].n > 0) allocating.insert(c["call"].s);
  }
  EXPECT_TRUE(allocating.count("vkCreateInstance"));
  EXPECT_TRUE(allocating.count("vkCreateDevice"));
  ASSERT_FALSE(j["live_after_destroy"].items.empty());
  EXPECT_EQ(j["live_after_destroy"].items.back()["call"].s, "vkDestroyInstance");
  EXPECT_EQ(j["live_after_destroy"].items.back()["bytes"].n, 0);
  EXPECT_GT(j["scopes"]["instance"]["allocations"].n, 0);
  EXPECT_GT(j["alignments"].fields.size(), 0u);
  // By module: every allocation is the loader's or the driver's (or a layer's), and both the
  // loader (libvulkan.so.1...) and another file, the driver, are there.
  double allocations = 0, reallocations = 0;
  bool loader = false, other = false;
  for (const json &m : j["modules"].items) {
    allocations += m["allocations"].n;
    reallocations += m["reallocations"].n;
    const bool is_loader = m["module"].s.rfind("libvulkan.so", 0) == 0;
    loader = loader || is_loader;
    other = other || (!is_loader && m["module"].s != "(unknown)");
  }
  EXPECT_EQ(allocations, j["allocations"].n);
  EXPECT_EQ(reallocations, j["reallocations"].n);
  EXPECT_TRUE(loader) << "the Vulkan loader's own allocations";
  EXPECT_TRUE(other) << "the driver's";

  std::ifstream svg(std::string(std::getenv("TEST_TMPDIR")) + "/audit.svg");
  std::stringstream text;
  text << svg.rdbuf();
  EXPECT_EQ(text.str().rfind("<svg", 0), 0u);
  EXPECT_NE(text.str().find("instance (peak"), std::string::npos);
}

TEST_F(VkAllocAudit, ShortSweepClassifiesEveryPoint) {
  const json j = audit("--workload device --oom-sweep --sweep-count 30 --jobs 2");
  const std::set<std::string> outcomes = {"error_returned", "survived", "wrong_result",
                                          "violated",       "leaked",   "crashed"};
  ASSERT_EQ(j["sweep"].items.size(), 30u);
  for (std::size_t i = 0; i < 30; ++i) {
    const json &p = j["sweep"].items[i];
    SCOPED_TRACE(i);
    EXPECT_EQ(p["index"].n, static_cast<double>(i));
    EXPECT_TRUE(outcomes.count(p["outcome"].s)) << p["outcome"].s;
    EXPECT_TRUE(p["injected"].b);
    EXPECT_FALSE(p["call"].s.empty());
    if (p["outcome"].s == "error_returned") {
      EXPECT_FALSE(p["result"].s.empty());
    }
  }
  EXPECT_EQ(j["sweep_summary"]["points"].n, 30);
  EXPECT_EQ(j["sweep_summary"]["error_returned"].n + j["sweep_summary"]["survived"].n +
                j["sweep_summary"]["wrong_result"].n + j["sweep_summary"]["violated"].n +
                j["sweep_summary"]["leaked"].n + j["sweep_summary"]["crashed"].n,
            30);
}

// A point is never "survived" or "error_returned" when the driver broke a rule of the callbacks
// or completed with the wrong output: those are findings, shown with what went wrong. (The tail
// of the full workload is where lavapipe 22.3 frees stack addresses through pfnFree and drops a
// descriptor bind without an error.)
TEST_F(VkAllocAudit, SweepReportsViolationsAndWrongOutputAsFindings) {
  const json j = tail_sweep();
  ASSERT_EQ(j["sweep"].items.size(), 30u);
  int checked_outputs = 0;
  for (const json &p : j["sweep"].items) {
    SCOPED_TRACE(p["index"].n);
    const std::string &outcome = p["outcome"].s;
    if (outcome == "crashed") continue;
    checked_outputs += !p["output"].s.empty();
    if (p["violations"].n > 0) {
      EXPECT_TRUE(outcome == "violated" || outcome == "leaked" || outcome == "wrong_result")
          << outcome;
      ASSERT_FALSE(p["violation_texts"].items.empty());
      EXPECT_FALSE(p["violation_texts"].items[0].s.empty());
    }
    if (p["output"].s == "wrong" && p["failed_call"].s.empty() && outcome != "leaked") {
      EXPECT_EQ(outcome, "wrong_result");
    }
    if (outcome == "survived") {
      EXPECT_EQ(p["output"].s, "ok") << "a survivor computed right";
    }
  }
  EXPECT_GT(checked_outputs, 0) << "the children report whether the output was read back";
}

// The last points of the full workload reach command recording, where lavapipe 22.3 is known
// to crash on allocation failure: a crash must be reported with its signal and call, not kill
// the tool.
TEST_F(VkAllocAudit, SweepTailReportsCrashesInsteadOfSufferingThem) {
  const json j = tail_sweep();
  ASSERT_EQ(j["sweep"].items.size(), 30u);
  for (const json &p : j["sweep"].items) {
    SCOPED_TRACE(p["index"].n);
    if (p["outcome"].s != "crashed") continue;
    EXPECT_TRUE(p["injected"].b);
    EXPECT_FALSE(p["call"].s.empty());
    EXPECT_TRUE(p["signal"].n > 0 || p["exit_status"].n != 0 || p["timed_out"].b);
  }
}

// Report lines are never cut short: an ICD path longer than any fixed buffer is printed whole,
// and the line after it still starts a line of its own.
TEST_F(VkAllocAudit, LongIcdPathIsReportedWhole) {
  // A fresh directory each run (meson test reuses its TEST_TMPDIR), then six 200-byte levels.
  std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/long_icd_path.XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr) << dir;
  for (int k = 0; k < 6; ++k) {
    dir += "/" + std::string(200, static_cast<char>('a' + k));
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0) << dir;
  }
  const std::string icd = dir + "/icd.json";
  copy_icd_to(icd);
  const run_output r = run("--icd " + icd + " --workload instance --svg '' --quiet");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\nicd:      " + icd + "\nworkload: instance, "), std::string::npos)
      << r.out.substr(0, 400);
}

// A path that is not UTF-8 (a file name in another encoding) still gives valid UTF-8 JSON: the
// bad byte becomes U+FFFD, what is valid stays as it is.
TEST_F(VkAllocAudit, AnIcdPathThatIsNotUtf8GivesValidJson) {
  std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/utf8.XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr) << dir;
  const std::string icd = dir + "/icd_\xfe_\xc3\xa9.json";
  copy_icd_to(icd);
  const run_output r = run("--icd '" + icd + "' --workload instance --svg '' --quiet --json");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.find('\xfe'), std::string::npos) << "the stray byte is replaced";
  EXPECT_NE(r.out.find("icd_\xef\xbf\xbd_\xc3\xa9.json"), std::string::npos)
      << r.out.substr(0, 300);
}

// A report that cannot be written is a failure, not exit status 0 with nothing to read.
TEST_F(VkAllocAudit, UnwritableReportIsAnError) {
  const std::string err = std::string(std::getenv("TEST_TMPDIR")) + "/unwritable.err";
  for (const char *format : {"", "--json"}) {
    const run_output r = run("--icd " + icd_ + " --workload instance --svg '' --quiet " + format +
                                 " >/dev/full 2>" + err + "; echo \"exit $?\"",
                             false);
    EXPECT_EQ(r.out, "exit 1\n") << format;
    std::ifstream in(err);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_NE(text.str().find("vk_alloc_audit: cannot write the report: No space left on device"),
              std::string::npos)
        << format << ": " << text.str();
  }
}

TEST_F(VkAllocAudit, BadArgumentsGiveAClearError) {
  run_output r = run("--icd /nonexistent/icd.json");
  EXPECT_EQ(r.exit_code, 2);
  // What is not an ICD manifest never reaches the loader (a directory or a JSON array crashed
  // it inside vkCreateInstance).
  const std::string dir = std::getenv("TEST_TMPDIR");
  std::ofstream(dir + "/array.json") << "[{\"a\": 1}]\n";
  for (const std::string &bad : {dir, dir + "/array.json"}) {
    r = run("--icd " + bad + " --svg ''", true);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.out.find("vk_alloc_audit: --icd " + bad + ": not a"), std::string::npos) << r.out;
  }
  for (const char *timeout : {"nan", "inf", "5x", "0", "-1"}) {
    r = run(std::string("--timeout ") + timeout);
    EXPECT_EQ(r.exit_code, 2) << timeout;
  }
  r = run("--workload everything");
  EXPECT_EQ(r.exit_code, 2);
  r = run("--jobs 0");
  EXPECT_EQ(r.exit_code, 2);
  // A manifest whose library is not there: said before the loader answers only
  // VK_ERROR_INCOMPATIBLE_DRIVER.
  std::ofstream(dir + "/missing_library.json")
      << "{\"file_format_version\": \"1.0.0\", \"ICD\": {\"library_path\": "
         "\"/nonexistent/libvulkan_none.so\", \"api_version\": \"1.3.0\"}}\n";
  r = run("--icd " + dir + "/missing_library.json --svg ''", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("its library_path /nonexistent/libvulkan_none.so cannot be read"),
            std::string::npos)
      << r.out;
  // A bare name, which the loader hands to dlopen to search, is loaded the same way first.
  std::ofstream(dir + "/unloadable_library.json")
      << "{\"file_format_version\": \"1.0.0\", \"ICD\": {\"library_path\": "
         "\"libvulkan_none_such.so\", \"api_version\": \"1.3.0\"}}\n";
  r = run("--icd " + dir + "/unloadable_library.json --svg ''", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("its library_path libvulkan_none_such.so cannot be loaded: "),
            std::string::npos)
      << r.out;
  // Sweep options without the sweep, a sweep past the last point, a blank before a number.
  r = run("--jobs 2 --svg ''", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("need --oom-sweep"), std::string::npos) << r.out;
  r = run("--workload instance --oom-sweep --sweep-first 100000 --svg '' --quiet", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--sweep-first 100000: the clean run has only"), std::string::npos) << r.out;
  r = run("--oom-sweep --sweep-count ' -1'");
  EXPECT_EQ(r.exit_code, 2);
  r = run("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--oom-sweep"), std::string::npos);
}

}  // namespace
