#include "tools/vk_audit_report.h"

#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>

namespace vk_audit {
namespace {

constexpr const char *kScopeNames[MESA_ALLOC_SCOPE_COUNT] = {"command", "object", "cache", "device",
                                                             "instance"};
constexpr const char *kScopeColors[MESA_ALLOC_SCOPE_COUNT] = {"#d62728", "#1f77b4", "#9467bd",
                                                              "#2ca02c", "#ff7f0e"};
constexpr const char *kOutcomes[] = {"error_returned", "survived", "wrong_result", "violated",
                                     "leaked",         "crashed",  "not_injected"};

std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Sized to the text: a report line (an ICD path, a crashed child's stderr) is never cut short.
std::string format(const char *fmt, ...) {
  va_list args, again;
  va_start(args, fmt);
  va_copy(again, args);
  const int length = std::vsnprintf(nullptr, 0, fmt, args);
  va_end(args);
  std::string text(length > 0 ? static_cast<std::size_t>(length) : 0, '\0');
  if (length > 0) std::vsnprintf(text.data(), text.size() + 1, fmt, again);
  va_end(again);
  return text;
}

// `s` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD: a path from the
// command line may be in any encoding, and JSON and SVG must be UTF-8.
std::string valid_utf8(const std::string &s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80           ? 1
                    : (c >> 5) == 0x6  ? 2
                    : (c >> 4) == 0xe  ? 3
                    : (c >> 3) == 0x1e ? 4
                                       : 0;
    if ((c >= 0x80 && c < 0xc2) || c > 0xf4) n = 0;  // continuation, overlong or past U+10FFFF
    for (std::size_t k = 1; n != 0 && k < n; ++k) {
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) n = 0;
    }
    if (n >= 3) {  // overlong forms, UTF-16 surrogates, past U+10FFFF
      const auto d = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xe0 && d < 0xa0) || (c == 0xed && d >= 0xa0) || (c == 0xf0 && d < 0x90) ||
          (c == 0xf4 && d >= 0x90))
        n = 0;
    }
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  return out;
}

std::string json_string(const std::string &text) {
  std::string out = "\"";
  for (unsigned char c : valid_utf8(text)) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += format("\\u%04x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string xml_escape(const std::string &text) {
  std::string out;
  for (char c : valid_utf8(text)) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

unsigned long long u(std::uint64_t v) { return static_cast<unsigned long long>(v); }
long long s(std::int64_t v) { return static_cast<long long>(v); }

std::string signal_name(int sig) {
  const char *abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::map<std::string, int> outcome_counts(const std::vector<sweep_point> &sweep) {
  std::map<std::string, int> counts;
  for (const char *o : kOutcomes) counts[o] = 0;
  for (const sweep_point &p : sweep) ++counts[p.outcome];
  return counts;
}

std::string scope_list(const std::int64_t (&bytes)[MESA_ALLOC_SCOPE_COUNT]) {
  std::string out;
  for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i)
    out += format("%s%lld", i ? "/" : "", s(bytes[i]));
  return out;
}

struct phase_total {
  std::string phase;
  scope_counts counts;
};

// Calls summed by phase, in the order the phases first appear.
std::vector<phase_total> phase_totals(const run_result &r) {
  std::vector<phase_total> phases;
  for (const call_counts &c : r.calls) {
    if (c.phase.empty()) continue;
    auto it = phases.begin();
    while (it != phases.end() && it->phase != c.phase) ++it;
    if (it == phases.end()) it = phases.insert(phases.end(), phase_total{c.phase, {}});
    for (const scope_counts &sc : c.scope) {
      it->counts.allocations += sc.allocations;
      it->counts.reallocations += sc.reallocations;
      it->counts.frees += sc.frees;
      it->counts.failed += sc.failed;
      it->counts.bytes += sc.bytes;
    }
  }
  return phases;
}

}  // namespace

const char *scope_name(int scope) {
  return scope >= 0 && scope < MESA_ALLOC_SCOPE_COUNT ? kScopeNames[scope] : "-";
}

std::string text_report(const report_context &context, const run_result &r,
                        const std::vector<sweep_point> *sweep) {
  std::string out = "vk_alloc_audit: host-memory callbacks of a Vulkan driver\n";
  if (r.outcome.device_name.empty()) {
    out += "driver:   (no physical device reached)\n";
  } else {
    out += format("driver:   %s (%s), Vulkan %u.%u.%u\n", r.outcome.device_name.c_str(),
                  r.outcome.driver_info.c_str(), VK_API_VERSION_MAJOR(r.outcome.api_version),
                  VK_API_VERSION_MINOR(r.outcome.api_version),
                  VK_API_VERSION_PATCH(r.outcome.api_version));
  }
  out += format("icd:      %s\n", context.icd.c_str());
  out += format("workload: %s, %s in %.3f s%s\n", workload_name(r.kind),
                r.outcome.completed ? "completed" : "FAILED", r.seconds,
                r.outcome.output_checked
                    ? (r.outcome.output_ok ? ", compute output verified" : ", compute output WRONG")
                    : "");
  if (!r.outcome.completed && r.outcome.failed_call != nullptr)
    out += format("          %s returned %s\n", r.outcome.failed_call,
                  result_name(r.outcome.failed_result).c_str());
  const bool balanced = r.allocations() == r.frees() && r.live_blocks_after_destroy == 0;
  out += format(
      "summary:  %llu allocations, %llu reallocations, %llu frees (%s); peak %lld bytes; "
      "%lld bytes in %lld blocks live after vkDestroyInstance; %zu violations\n",
      u(r.allocations()), u(r.reallocations()), u(r.frees()),
      balanced ? "balanced" : "NOT balanced", s(r.peak_total_bytes), s(r.live_bytes_after_destroy),
      s(r.live_blocks_after_destroy), r.violations.size());

  const mesa_tracking_stats &t = r.tracking;
  out += format(
      "tracking: %llu allocations, %llu deallocations, %llu failed, %llu bytes in "
      "total, peak %zu bytes in %zu blocks (tracking layer; reallocs count as "
      "allocation + deallocation)\n\n",
      u(t.total_allocations), u(t.total_deallocations), u(t.failed_allocations), u(t.total_bytes),
      t.peak_bytes, t.peak_blocks);
  out += "by scope      allocs  reallocs     frees   failed        bytes   peak bytes\n";
  for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
    const scope_counts &c = r.totals[i];
    out += format("  %-9s %8llu  %8llu  %8llu  %7llu  %11llu  %11lld\n", kScopeNames[i],
                  u(c.allocations), u(c.reallocations), u(c.frees), u(c.failed), u(c.bytes),
                  s(r.peak_bytes[i]));
  }

  out += "\nby phase             allocs  reallocs     frees   failed        bytes\n";
  for (const phase_total &p : phase_totals(r)) {
    out += format("  %-16s %8llu  %8llu  %8llu  %7llu  %11llu\n", p.phase.c_str(),
                  u(p.counts.allocations), u(p.counts.reallocations), u(p.counts.frees),
                  u(p.counts.failed), u(p.counts.bytes));
  }

  out += "\nby call (phase, entry point)                       allocs reallocs  frees      bytes\n";
  for (const call_counts &c : r.calls) {
    scope_counts sum;
    for (const scope_counts &sc : c.scope) {
      sum.allocations += sc.allocations;
      sum.reallocations += sc.reallocations;
      sum.frees += sc.frees;
      sum.bytes += sc.bytes;
    }
    if (sum.allocations + sum.reallocations + sum.frees == 0) continue;
    out += format("  %-15s %-32s %7llu %8llu %6llu %10llu\n", c.phase.c_str(), c.call.c_str(),
                  u(sum.allocations), u(sum.reallocations), u(sum.frees), u(sum.bytes));
  }

  out +=
      "\nby module (the code that called pfnAllocation/pfnReallocation)  allocs reallocs"
      "      bytes\n";
  for (const module_counts &m : r.modules) {
    out += format("  %-62s %7llu %8llu %10llu\n", m.module.c_str(), u(m.allocations),
                  u(m.reallocations), u(m.bytes));
  }

  out += "\nalignment requests:";
  for (const auto &[alignment, count] : r.alignments)
    out += format(" %zu x%llu", alignment, u(count));
  out += "\ninternal-allocation notifications:";
  bool any_internal = false;
  for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
    const recorder::internal_counts &n = r.internal[i];
    if (n.allocations + n.frees == 0) continue;
    any_internal = true;
    out += format(" %s %llu/%llu (net %lld bytes)", kScopeNames[i], u(n.allocations), u(n.frees),
                  s(n.bytes));
  }
  out += any_internal ? "\n" : " none\n";

  out += "\nlive after each destroy (bytes command/object/cache/device/instance, blocks)\n";
  for (const destroy_snapshot &d : r.snapshots)
    out += format("  %-30s %-28s %lld\n", d.call.c_str(), scope_list(d.live_bytes).c_str(),
                  s(d.live_blocks));

  out += format("\nviolations: %s\n", r.violations.empty() ? "none" : "");
  const std::size_t shown = r.violations.size() < 20 ? r.violations.size() : 20;
  for (std::size_t i = 0; i < shown; ++i) out += "  " + r.violations[i].text + "\n";
  if (shown < r.violations.size())
    out += format("  ... and %zu more (see --json)\n", r.violations.size() - shown);

  if (sweep != nullptr) {
    std::map<std::string, int> counts = outcome_counts(*sweep);
    out += format(
        "\nOOM sweep: %zu of %llu allocation points in %.1f s (%d at a time): %d error_returned, "
        "%d survived, %d wrong_result, %d violated, %d leaked, %d crashed%s\n",
        sweep->size(), u(context.sweep_total), context.sweep_seconds, context.jobs,
        counts["error_returned"], counts["survived"], counts["wrong_result"], counts["violated"],
        counts["leaked"], counts["crashed"],
        counts["not_injected"] == 0
            ? ""
            : format(", %d not_injected (not tested)", counts["not_injected"]).c_str());
    int wrong = 0;
    for (const sweep_point &p : *sweep) wrong += !p.expected_result;
    if (wrong != 0) out += format("  %d points returned an error other than OOM\n", wrong);
    bool header = false;
    for (const sweep_point &p : *sweep) {
      if (p.outcome == "error_returned" && p.expected_result) continue;
      if (p.outcome == "survived") continue;
      if (!header) {
        out += "  point  outcome         injected in (phase: call, size, scope)          then\n";
        header = true;
      }
      std::string then;
      if (p.outcome == "crashed") {
        then = p.timed_out     ? "timed out (killed)"
               : p.signal != 0 ? signal_name(p.signal)
                               : format("exit status %d", p.exit_status);
        if (!p.failed_call.empty()) then += " after " + p.failed_call + " returned " + p.result;
        if (!p.stderr_tail.empty()) then += "; stderr: " + p.stderr_tail;
      } else if (p.outcome == "leaked") {
        then = format("%lld bytes in %lld blocks live after vkDestroyInstance", s(p.leaked_bytes),
                      s(p.leaked_blocks));
        if (!p.failed_call.empty()) then += " (" + p.failed_call + " returned " + p.result + ")";
      } else if (p.outcome == "wrong_result") {
        then = "no error returned, but the compute output was wrong (work dropped silently)";
      } else if (p.outcome == "not_injected") {
        then = "the run never reached this point: nothing was failed";
      } else if (p.outcome == "violated") {
        then = p.failed_call.empty() ? "completed" : p.failed_call + " returned " + p.result;
      } else {
        then = p.failed_call + " returned " + p.result;
      }
      if (p.violations > 0) {
        then += format("; %llu violation%s", u(p.violations), p.violations == 1 ? "" : "s");
        for (const std::string &v : p.violation_texts) then += "\n           " + v;
        if (p.violations > p.violation_texts.size())
          then += format("\n           ... and %llu more (a point keeps its first %zu)",
                         u(p.violations - p.violation_texts.size()), p.violation_texts.size());
      }
      out += format("  %5llu  %-15s %-47s %s\n", u(p.index), p.outcome.c_str(),
                    p.injected ? format("%s: %s, %zu, %s", p.phase.c_str(), p.call.c_str(), p.size,
                                        scope_name(p.scope))
                                     .c_str()
                               : "(not reached)",
                    then.c_str());
    }
    std::string survived;
    for (const sweep_point &p : *sweep) {
      if (p.outcome == "survived") survived += format(" %llu", u(p.index));
    }
    if (!survived.empty()) out += "  survived (no error needed):" + survived + "\n";
  }
  return out;
}

std::string json_report(const report_context &context, const run_result &r,
                        const std::vector<sweep_point> *sweep) {
  std::string o = "{";
  o += "\"tool\":\"vk_alloc_audit\",\"icd\":" + json_string(context.icd);
  o += ",\"device\":" + json_string(r.outcome.device_name);
  o += ",\"driver\":" + json_string(r.outcome.driver_info);
  o += format(",\"workload\":\"%s\",\"completed\":%s,\"output_ok\":%s,\"seconds\":%.4f",
              workload_name(r.kind), r.outcome.completed ? "true" : "false",
              r.outcome.output_ok ? "true" : "false", r.seconds);
  if (r.outcome.failed_call != nullptr)
    o += ",\"failed_call\":" + json_string(r.outcome.failed_call) +
         ",\"failed_result\":" + json_string(result_name(r.outcome.failed_result));
  std::uint64_t bytes = 0, failed = 0;
  for (const scope_counts &c : r.totals) {
    bytes += c.bytes;
    failed += c.failed;
  }
  o += format(
      ",\"allocations\":%llu,\"reallocations\":%llu,\"frees\":%llu,\"failed_allocations\":%llu,"
      "\"allocation_points\":%llu,\"bytes_allocated\":%llu,\"peak_bytes\":%lld,"
      "\"live_bytes_after_destroy\":%lld,\"live_blocks_after_destroy\":%lld",
      u(r.allocations()), u(r.reallocations()), u(r.frees()), u(failed), u(r.attempts), u(bytes),
      s(r.peak_total_bytes), s(r.live_bytes_after_destroy), s(r.live_blocks_after_destroy));
  const mesa_tracking_stats &t = r.tracking;
  o += format(
      ",\"tracking\":{\"bytes_in_use\":%zu,\"blocks_in_use\":%zu,\"peak_bytes\":%zu,"
      "\"peak_blocks\":%zu,\"total_bytes\":%llu,\"total_allocations\":%llu,"
      "\"total_deallocations\":%llu,\"failed_allocations\":%llu}",
      t.bytes_in_use, t.blocks_in_use, t.peak_bytes, t.peak_blocks, u(t.total_bytes),
      u(t.total_allocations), u(t.total_deallocations), u(t.failed_allocations));
  o += ",\"scopes\":{";
  for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
    const scope_counts &c = r.totals[i];
    o += format(
        "%s\"%s\":{\"allocations\":%llu,\"reallocations\":%llu,\"frees\":%llu,\"failed\":%llu,"
        "\"bytes\":%llu,\"peak_bytes\":%lld}",
        i ? "," : "", kScopeNames[i], u(c.allocations), u(c.reallocations), u(c.frees), u(c.failed),
        u(c.bytes), s(r.peak_bytes[i]));
  }
  o += "},\"phases\":[";
  bool first_phase = true;
  for (const phase_total &p : phase_totals(r)) {
    o += std::string(first_phase ? "" : ",") + "{\"phase\":" + json_string(p.phase) +
         format(
             ",\"allocations\":%llu,\"reallocations\":%llu,\"frees\":%llu,\"failed\":%llu,"
             "\"bytes\":%llu}",
             u(p.counts.allocations), u(p.counts.reallocations), u(p.counts.frees),
             u(p.counts.failed), u(p.counts.bytes));
    first_phase = false;
  }
  o += "],\"calls\":[";
  bool first = true;
  for (const call_counts &c : r.calls) {
    std::string scopes;
    std::uint64_t total = 0;
    for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
      const scope_counts &sc = c.scope[i];
      const std::uint64_t events = sc.allocations + sc.reallocations + sc.frees + sc.failed;
      if (events == 0) continue;
      total += events;
      scopes += format(
          "%s\"%s\":{\"allocations\":%llu,\"reallocations\":%llu,\"frees\":%llu,"
          "\"bytes\":%llu}",
          scopes.empty() ? "" : ",", kScopeNames[i], u(sc.allocations), u(sc.reallocations),
          u(sc.frees), u(sc.bytes));
    }
    if (total == 0) continue;
    o += std::string(first ? "" : ",") + "{\"phase\":" + json_string(c.phase) +
         ",\"call\":" + json_string(c.call) + ",\"by_scope\":{" + scopes + "}}";
    first = false;
  }
  o += "],\"modules\":[";
  first = true;
  for (const module_counts &m : r.modules) {
    o += std::string(first ? "" : ",") + "{\"module\":" + json_string(m.module) +
         format(",\"allocations\":%llu,\"reallocations\":%llu,\"bytes\":%llu}", u(m.allocations),
                u(m.reallocations), u(m.bytes));
    first = false;
  }
  o += "],\"alignments\":{";
  first = true;
  for (const auto &[alignment, count] : r.alignments) {
    o += format("%s\"%zu\":%llu", first ? "" : ",", alignment, u(count));
    first = false;
  }
  o += "},\"internal_notifications\":{";
  for (int i = 0; i < MESA_ALLOC_SCOPE_COUNT; ++i) {
    const recorder::internal_counts &n = r.internal[i];
    o += format("%s\"%s\":{\"allocations\":%llu,\"frees\":%llu,\"bytes\":%lld}", i ? "," : "",
                kScopeNames[i], u(n.allocations), u(n.frees), s(n.bytes));
  }
  o += "},\"live_after_destroy\":[";
  first = true;
  for (const destroy_snapshot &d : r.snapshots) {
    std::int64_t total = 0;
    for (std::int64_t b : d.live_bytes) total += b;
    o += std::string(first ? "" : ",") + "{\"call\":" + json_string(d.call) +
         format(",\"bytes\":%lld,\"blocks\":%lld}", s(total), s(d.live_blocks));
    first = false;
  }
  o += "],\"violations\":[";
  first = true;
  for (const violation_entry &v : r.violations) {
    o += std::string(first ? "" : ",") + "{\"rule\":" + json_string(v.rule) +
         ",\"call\":" + json_string(v.call) + ",\"op\":" + json_string(v.op) +
         format(",\"size\":%zu,\"alignment\":%zu,\"scope\":\"%s\",\"sequence\":%llu", v.size,
                v.alignment, scope_name(v.scope), u(v.sequence)) +
         ",\"text\":" + json_string(v.text) + "}";
    first = false;
  }
  o += "]";
  if (sweep != nullptr) {
    std::map<std::string, int> counts = outcome_counts(*sweep);
    o += format(
        ",\"sweep_summary\":{\"points\":%zu,\"allocation_points\":%llu,\"seconds\":%.3f,"
        "\"jobs\":%d",
        sweep->size(), u(context.sweep_total), context.sweep_seconds, context.jobs);
    for (const char *name : kOutcomes) o += format(",\"%s\":%d", name, counts[name]);
    o += "},\"sweep\":[";
    first = true;
    for (const sweep_point &p : *sweep) {
      o += format("%s{\"index\":%llu,\"outcome\":\"%s\",\"injected\":%s", first ? "" : ",",
                  u(p.index), p.outcome.c_str(), p.injected ? "true" : "false");
      if (p.injected)
        o += ",\"call\":" + json_string(p.call) + ",\"phase\":" + json_string(p.phase) +
             format(",\"size\":%zu,\"scope\":\"%s\"", p.size, scope_name(p.scope));
      if (!p.failed_call.empty())
        o += ",\"failed_call\":" + json_string(p.failed_call) +
             ",\"result\":" + json_string(p.result);
      o += format(",\"expected_result\":%s", p.expected_result ? "true" : "false");
      if (p.outcome == "crashed")
        o += format(",\"signal\":%d,\"signal_name\":%s,\"exit_status\":%d,\"timed_out\":%s",
                    p.signal, json_string(p.signal ? signal_name(p.signal) : "").c_str(),
                    p.exit_status, p.timed_out ? "true" : "false");
      o += format(",\"leaked_bytes\":%lld,\"leaked_blocks\":%lld,\"violations\":%llu",
                  s(p.leaked_bytes), s(p.leaked_blocks), u(p.violations));
      o += ",\"violation_texts\":[";
      for (std::size_t i = 0; i < p.violation_texts.size(); ++i)
        o += (i ? "," : "") + json_string(p.violation_texts[i]);
      o += "],\"output\":" + (p.output.empty() ? std::string("null") : json_string(p.output));
      if (!p.stderr_tail.empty()) o += ",\"stderr\":" + json_string(p.stderr_tail);
      o += format(",\"seconds\":%.3f}", p.seconds);
      first = false;
    }
    o += "]";
  }
  return o + "}\n";
}

std::string svg_report(const report_context &context, const run_result &r) {
  constexpr int kWidth = 960, kHeight = 420, kLeft = 70, kRight = 150, kTop = 40, kBottom = 50;
  constexpr int kPlotW = kWidth - kLeft - kRight, kPlotH = kHeight - kTop - kBottom;
  const std::vector<timeline_sample> &t = r.timeline;
  std::int64_t max_total = 1;
  for (const timeline_sample &x : t) {
    std::int64_t sum = 0;
    for (std::int64_t b : x.live) sum += b;
    if (sum > max_total) max_total = sum;
  }
  const std::size_t n = t.empty() ? 1 : t.size();
  auto px = [&](std::size_t i) { return kLeft + static_cast<double>(i) * kPlotW / n; };
  auto py = [&](std::int64_t bytes) {
    return kTop + kPlotH - static_cast<double>(bytes) * kPlotH / static_cast<double>(max_total);
  };
  std::string o = format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" "
      "fill=\"white\"/>\n",
      kWidth, kHeight);
  o += "<text x=\"" + std::to_string(kLeft) + "\" y=\"20\" font-size=\"14\">" +
       xml_escape("Live host bytes by scope: " + r.outcome.device_name + ", workload " +
                  workload_name(r.kind)) +
       "</text>\n";
  // Stacked areas, one polygon per scope, bottom (instance) to top (command). At most ~2 points
  // per pixel column.
  const std::size_t step = n > 2 * kPlotW ? n / (2 * kPlotW) : 1;
  std::vector<std::int64_t> below(t.size(), 0);
  for (int scope = MESA_ALLOC_SCOPE_COUNT - 1; scope >= 0; --scope) {
    std::string upper, lower;
    for (std::size_t i = 0; i < t.size(); i += step) {
      upper += format("%.1f,%.1f ", px(i), py(below[i] + t[i].live[scope]));
      lower = format("%.1f,%.1f ", px(i + 1), py(below[i])) + lower;
      upper += format("%.1f,%.1f ", px(i + 1), py(below[i] + t[i].live[scope]));
      lower = format("%.1f,%.1f ", px(i), py(below[i])) + lower;
    }
    for (std::size_t i = 0; i < t.size(); ++i) below[i] += t[i].live[scope];
    if (!upper.empty())
      o += format("<polygon fill=\"%s\" fill-opacity=\"0.8\" points=\"", kScopeColors[scope]) +
           upper + lower + "\"/>\n";
  }
  // Phase boundaries.
  std::string last_phase;
  int phases = 0;  // labels are staggered over 4 rows: short phases sit close together
  for (std::size_t i = 0; i < t.size(); ++i) {
    const std::string &phase = r.calls[t[i].call].phase;
    if (phase == last_phase || phase.empty()) continue;
    last_phase = phase;
    o += format(
             "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#555\" "
             "stroke-dasharray=\"3,3\"/>\n<text x=\"%.1f\" y=\"%d\" fill=\"#333\">",
             px(i), kTop, px(i), kTop + kPlotH, px(i) + 2, kTop + 12 + 13 * (phases++ % 4)) +
         xml_escape(phase) + "</text>\n";
  }
  // Axes and legend.
  o += format("<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", kLeft,
              kTop + kPlotH, kLeft + kPlotW, kTop + kPlotH);
  o += format("<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", kLeft, kTop,
              kLeft, kTop + kPlotH);
  for (int k = 0; k <= 4; ++k) {
    const std::int64_t bytes = max_total * k / 4;
    o += format("<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%lld</text>\n", kLeft - 4,
                py(bytes) + 4, s(bytes));
  }
  o += format(
      "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">allocation events (%zu; "
      "peak %lld bytes live)</text>\n",
      kLeft + kPlotW / 2, kHeight - 15, t.size(), s(r.peak_total_bytes));
  for (int scope = 0; scope < MESA_ALLOC_SCOPE_COUNT; ++scope) {
    const int y = kTop + 10 + scope * 18;
    o += format(
        "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
        "<text x=\"%d\" y=\"%d\">%s (peak %lld)</text>\n",
        kLeft + kPlotW + 12, y, kScopeColors[scope], kLeft + kPlotW + 28, y + 10,
        kScopeNames[scope], s(r.peak_bytes[scope]));
  }
  o += "<text x=\"" + std::to_string(kLeft) + "\" y=\"" + std::to_string(kHeight - 2) +
       "\" fill=\"#777\">" + xml_escape(context.icd) + "</text>\n</svg>\n";
  return o;
}

}  // namespace vk_audit
