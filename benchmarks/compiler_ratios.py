#!/usr/bin/env python3
"""Prints the compiler_benchmark table: median CPU time per variant, speed-up over
std::allocator (median and best-of-run ratios), heap peak and heap allocations.

Usage:
  bazel run -c opt //benchmarks:compiler_benchmark -- --benchmark_repetitions=10 \
      --benchmark_enable_random_interleaving=true --benchmark_min_time=0.3 \
      --benchmark_out=/tmp/compiler.json --benchmark_out_format=json
  python3 benchmarks/compiler_ratios.py /tmp/compiler.json

It needs every repetition (the best-of-run ratio is a minimum), so not the output of
--benchmark_report_aggregates_only; times in any time_unit are compared in ms. A record it
cannot read (a run_name, time or counter of the wrong type, NaN, infinite) is one line, exit 1.
"""
import collections
import json
import math
import statistics
import sys

TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def number(b, field, path, scale=1.0):
    """The finite, non-negative number in b[field], times `scale`, or exit naming the record and
    the field. An integer too long for a float, or a time that overflows in ms, is not finite."""
    value = b.get(field)
    try:
        finite = (not isinstance(value, bool) and isinstance(value, (int, float)) and
                  math.isfinite(value * scale) and value >= 0)
    except OverflowError:
        finite = False
    if not finite:
        sys.exit("compiler_ratios: %s: %s has %s %r, not a finite number >= 0 "
                 "(not compiler_benchmark output?)" % (path, b.get("run_name"), field, value))
    return value * scale


def main(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: arrays nested too deep
        sys.exit("compiler_ratios: cannot read benchmark JSON from %s: %s" % (path, e))
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        sys.exit("compiler_ratios: %s has no \"benchmarks\" list (use --benchmark_format=json)"
                 % path)
    times = collections.defaultdict(list)
    counters = {}
    records = [b for b in data["benchmarks"] if isinstance(b, dict)]
    for b in records:
        if b.get("run_type") != "iteration":
            continue
        if b.get("error_occurred"):
            sys.exit("compiler_ratios: %s failed: %s" % (b.get("name", "?"),
                                                          b.get("error_message", "?")))
        run_name = b.get("run_name")
        if not isinstance(run_name, str) or "/" not in run_name:
            sys.exit("compiler_ratios: %s: a record whose run_name is %r, not "
                     "\"BM_compile/<variant>\" (not compiler_benchmark output?)" % (path, run_name))
        name = run_name.split("/", 1)[1]
        unit = b.get("time_unit", "ns")
        if unit not in TO_MS:
            sys.exit("compiler_ratios: %s: %s has time_unit %r, not one of %s"
                     % (path, run_name, unit, ", ".join(TO_MS)))
        cpu_time = number(b, "cpu_time", path, TO_MS[unit])
        counters[name] = (number(b, "peak_bytes", path), number(b, "heap_allocs", path))
        if cpu_time <= 0:
            sys.exit("compiler_ratios: %s: %s has no time" % (path, run_name))
        times[name].append(cpu_time)
    if not times and any(b.get("run_type") == "aggregate" for b in records):
        sys.exit("compiler_ratios: %s has only aggregate records (median, mean, ...): the table "
                 "needs every repetition (the best-of-run ratio is a minimum); run "
                 "compiler_benchmark without --benchmark_report_aggregates_only" % path)
    base = "std_allocator"
    if base not in times:
        sys.exit("compiler_ratios: no std_allocator run in " + path)
    base_median = statistics.median(times[base])
    base_min = min(times[base])
    base_peak = counters[base][0] or 1
    print("| variant | CPU ms (median of %d) | speed-up vs std (median / best) "
          "| peak heap bytes (vs std) | heap allocations |" % len(times[base]))
    print("|---|---:|---:|---:|---:|")
    for name in ["std_allocator", "pmr_newdelete", "pmr_monotonic", "arena_pmr",
                 "arena_static"]:
        if name not in times:
            continue
        t = times[name]
        peak, allocs = counters[name]
        print("| %s | %.1f | %.2f× / %.2f× | %d (%.2f×) | %d |" %
              (name, statistics.median(t), base_median / statistics.median(t),
               base_min / min(t), peak, peak / base_peak, allocs))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
