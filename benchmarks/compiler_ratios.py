#!/usr/bin/env python3
"""Prints the compiler_benchmark table: median CPU time per variant, speed-up over
std::allocator (median and best-of-run ratios), heap peak and heap allocations.

Usage:
  bazel run -c opt //benchmarks:compiler_benchmark -- --benchmark_repetitions=10 \
      --benchmark_enable_random_interleaving=true --benchmark_min_time=0.3 \
      --benchmark_out=/tmp/compiler.json --benchmark_out_format=json
  python3 benchmarks/compiler_ratios.py /tmp/compiler.json
"""
import collections
import json
import statistics
import sys


def main(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit("compiler_ratios: cannot read benchmark JSON from %s: %s" % (path, e))
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        sys.exit("compiler_ratios: %s has no \"benchmarks\" list (use --benchmark_format=json)"
                 % path)
    times = collections.defaultdict(list)
    counters = {}
    for b in data["benchmarks"]:
        if not isinstance(b, dict) or b.get("run_type") != "iteration":
            continue
        if b.get("error_occurred"):
            sys.exit("compiler_ratios: %s failed: %s" % (b.get("name", "?"),
                                                          b.get("error_message", "?")))
        try:
            name = b["run_name"].split("/", 1)[1]
            cpu_time = float(b["cpu_time"])
            counters[name] = (b["peak_bytes"], b["heap_allocs"])
        except (KeyError, IndexError, TypeError, ValueError) as e:
            sys.exit("compiler_ratios: %s: a record without %s (not compiler_benchmark output?)"
                     % (path, e))
        if cpu_time <= 0:
            sys.exit("compiler_ratios: %s: %s has no time" % (path, b["run_name"]))
        times[name].append(cpu_time)
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
