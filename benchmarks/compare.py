#!/usr/bin/env python3
"""Side-by-side ratio tables for //benchmarks:resource_benchmark (Python stdlib only).

Runs the benchmark binary with JSON output (or reads a JSON file written with
--benchmark_format=json / --benchmark_out), takes the median of the repetitions, and prints for
each workload one table: every resource's time, its speed-up over glibc malloc/free and over
the fastest std::pmr resource in the same run (a ratio > 1 means faster than the baseline).
Then it checks the targets of issue 3.

Benchmark names BM_<resource>_<workload>[/args...] with workload pair, mixed or containers are
tabulated by workload, including resources this script does not know (e.g. BM_tracking_pair/64
lands in the pair/64 table next to BM_glibc_pair/64). Any other benchmark is tabulated with the
others of the same arguments, against the one of them whose name mentions glibc (e.g.
BM_debug_baseline_glibc). Rows run with UseRealTime() compare real time, the others CPU time.

Usage:
  benchmarks/compare.py                       # bazel build -c opt, then 5 interleaved repetitions
  benchmarks/compare.py --repetitions 9 --filter 'pair/64'
  benchmarks/compare.py --json results.json   # tabulate an existing run
  benchmarks/compare.py --markdown            # tables as Markdown (for README.md)
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys

NAME_RE = re.compile(r"^BM_(?P<resource>.+)_(?P<workload>[A-Za-z0-9]+)$")
# Workloads tabulated resource by resource; other names are tabulated by their arguments.
WORKLOADS = ("pair", "mixed", "containers")
TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def run_benchmark(binary, repetitions, bench_filter, extra):
    if binary is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        subprocess.run(["bazel", "build", "-c", "opt", "//benchmarks:resource_benchmark"],
                       cwd=root, check=True)
        binary = os.path.join(root, "bazel-bin", "benchmarks", "resource_benchmark")
    # Random interleaving spreads the machine's load drift over every row instead of a few.
    cmd = [binary, "--benchmark_format=json",
           "--benchmark_repetitions=%d" % repetitions,
           "--benchmark_enable_random_interleaving=true",
           "--benchmark_report_aggregates_only=true"]
    if bench_filter:
        cmd.append("--benchmark_filter=" + bench_filter)
    cmd += extra
    print("running: " + " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out)


def check_data(data, source):
    """Exits with one line unless `data` is Google Benchmark JSON whose records compare.py can
    read: a "benchmarks" list, and in each record with a name and times, a string name and
    run_name, a known time_unit and finite times >= 0. Other records are skipped."""
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        sys.exit("compare.py: %s has no \"benchmarks\" list (use --benchmark_format=json)"
                 % source)
    for b in data["benchmarks"]:
        if not isinstance(b, dict) or "name" not in b:
            continue
        where = "compare.py: %s: a record named %r" % (source, b["name"])
        if not isinstance(b["name"], str) or not isinstance(b.get("run_name", ""), str):
            sys.exit("%s (run_name %r): names must be strings" % (where, b.get("run_name")))
        if b.get("time_unit", "ns") not in TO_NS:
            sys.exit("%s has time_unit %r, not one of %s" % (where, b["time_unit"],
                                                             ", ".join(TO_NS)))
        for field in ("cpu_time", "real_time"):
            value = b.get(field)
            if value is not None and not finite_time(value, b.get("time_unit", "ns")):
                sys.exit("%s has %s %r, not a finite number >= 0" % (where, field, value))


def finite_time(value, unit):
    """A number >= 0 that stays finite in ns (an integer too long for a float does not)."""
    try:
        return (not isinstance(value, bool) and isinstance(value, (int, float)) and
                math.isfinite(value * TO_NS[unit]) and value >= 0)
    except OverflowError:
        return False


def usable(b):
    """A benchmark record with a name and times; errored runs (SkipWithError) are reported."""
    if not isinstance(b, dict) or "name" not in b:
        return False
    if b.get("error_occurred"):
        print("compare.py: %s failed: %s" % (b["name"], b.get("error_message", "?")),
              file=sys.stderr)
        return False
    return isinstance(b.get("cpu_time"), (int, float)) and isinstance(b.get("real_time"),
                                                                       (int, float))


def medians(data):
    """{run name: (median ns, cv or None)} from aggregates, or from single iterations."""
    result, cv = {}, {}
    records = [b for b in data["benchmarks"] if usable(b)]
    have_aggregates = any(b.get("run_type") == "aggregate" for b in records)
    for b in records:
        name = b.get("run_name", b["name"])
        field = "real_time" if "/real_time" in name else "cpu_time"
        if have_aggregates:
            if b.get("run_type") != "aggregate":
                continue
            if b.get("aggregate_name") == "median":
                result[name] = b[field] * TO_NS[b.get("time_unit", "ns")]
            elif b.get("aggregate_name") == "cv":
                cv[name] = b[field]
        elif b.get("run_type", "iteration") == "iteration":
            result[name] = b[field] * TO_NS[b.get("time_unit", "ns")]
    return {name: (t, cv.get(name)) for name, t in result.items()}


def group(results):
    """{(workload, args): {resource: (ns, cv)}} for BM_<resource>_<workload> names, and
    {args: {family: (ns, cv)}} for every other benchmark."""
    groups, other = {}, {}
    for name, value in results.items():
        family, _, args = name.partition("/")
        m = NAME_RE.match(family)
        if m and m.group("workload") in WORKLOADS:
            key = (m.group("workload"), args)
            groups.setdefault(key, {})[m.group("resource")] = value
        else:
            other.setdefault(args, {})[family] = value
    return groups, other


def ratio(baseline, t):
    return baseline / t if baseline is not None and t > 0 else None


def best_pmr(rows):
    pmr = [(t, r) for r, (t, _) in rows.items() if r.startswith("pmr_")]
    return min(pmr) if pmr else (None, None)


def fmt_ratio(x):
    return "-" if x is None else "%.2fx" % x


def print_table(title, header, lines, markdown):
    print()
    if markdown:
        print("**%s**\n" % title)
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        print("== %s ==" % title)
        widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
        for line in [header] + lines:
            print("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                            for i, cell in enumerate(line)))


def fmt_cv(cv):
    return "-" if cv is None else "%.0f%%" % (cv * 100)


def print_tables(groups, other, markdown):
    for (workload, args), rows in sorted(groups.items()):
        glibc = rows.get("glibc", (None, None))[0]
        pmr_t, pmr_name = best_pmr(rows)
        header = ["resource", "median ns", "vs glibc", "vs best pmr (%s)" % (pmr_name or "-"),
                  "cv"]
        lines = [[resource, "%.2f" % t, fmt_ratio(ratio(glibc, t)), fmt_ratio(ratio(pmr_t, t)),
                  fmt_cv(cv)]
                 for resource, (t, cv) in sorted(rows.items(), key=lambda kv: kv[1][0])]
        print_table(workload + ("/" + args if args else ""), header, lines, markdown)
    # Other benchmarks, by arguments; the baseline is the row whose name mentions glibc, else
    # BM_glibc_pair/64 (the debug/tracking suites measure 64-byte pairs).
    fallback = groups.get(("pair", "64"), {}).get("glibc", (None, None))[0]
    for args, rows in sorted(other.items()):
        glibc_rows = [(t, f) for f, (t, _) in rows.items() if "glibc" in f]
        glibc, glibc_name = glibc_rows[0] if len(glibc_rows) == 1 else (fallback,
                                                                         "BM_glibc_pair/64")
        header = ["benchmark", "median ns", "vs %s" % (glibc_name if glibc else "glibc: -"), "cv"]
        lines = [[family, "%.2f" % t, fmt_ratio(ratio(glibc, t)), fmt_cv(cv)]
                 for family, (t, cv) in sorted(rows.items(), key=lambda kv: kv[1][0])]
        print_table("other benchmarks" + (" /" + args if args else ""), header, lines, markdown)


def check_targets(groups):
    """The targets of issue 3; prints one line each, MISSING when a row was not run."""
    def t(workload, args, resource):
        v = groups.get((workload, args), {}).get(resource)
        return None if v is None else v[0]

    checks = []
    for size in ("16", "64", "256"):
        p = "pair"
        checks.append(("slab (pmr) vs glibc, %s B" % size, t(p, size, "glibc"),
                       t(p, size, "mesa_slab"), 3.0))
        checks.append(("slab (pmr) vs pmr unsync pool, %s B" % size,
                       t(p, size, "pmr_unsync_pool"), t(p, size, "mesa_slab"), 8.0))
        checks.append(("slab direct vs ideal free list, %s B (>= 1/1.5)" % size,
                       t(p, size, "ideal_free_list"), t(p, size, "mesa_slab_direct"), 1 / 1.5))
        checks.append(("pool (pmr) vs pmr unsync pool, %s B" % size,
                       t(p, size, "pmr_unsync_pool"), t(p, size, "mesa_pool"), 3.0))
    checks.append(("arena (pmr) vs pmr monotonic, 64 B", t("pair", "64", "pmr_monotonic"),
                   t("pair", "64", "mesa_arena"), 1.2))
    for w in ("mixed", "containers"):
        checks.append(("pool vs pmr unsync pool, %s" % w, t(w, "", "pmr_unsync_pool"),
                       t(w, "", "mesa_pool"), 1.0))
    two = "64/real_time/threads:2"
    checks.append(("sync pool vs pmr sync pool, 2 threads, 64 B", t("pair", two, "pmr_sync_pool"),
                   t("pair", two, "mesa_sync_pool"), 2.0))
    print("\n== issue 3 targets (speed-up = baseline time / our time) ==")
    for label, base, ours, want in checks:
        if base is None or ours is None:
            print("  MISSING  %-55s (not in this run)" % label)
            continue
        if ours <= 0:
            print("  MISSING  %-55s (no time for our row)" % label)
            continue
        got = base / ours
        print("  %-7s  %-55s %6.2fx  (target >= %.2fx)" %
              ("PASS" if got >= want else "MISS", label, got, want))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="read this JSON file instead of running the binary")
    parser.add_argument("--binary", help="benchmark binary (default: build and use bazel-bin)")
    parser.add_argument("--repetitions", type=int, default=5, help="at least 1 (default 5)")
    parser.add_argument("--filter", help="--benchmark_filter regex")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("extra", nargs="*", help="more arguments for the binary (after --)")
    args = parser.parse_args()
    if args.repetitions < 1:
        parser.error("--repetitions must be 1 or more")
    if args.json:
        try:
            with open(args.json) as f:
                data = json.load(f)
        except (OSError, ValueError, RecursionError) as e:  # RecursionError: nested too deep
            sys.exit("compare.py: cannot read benchmark JSON from %s: %s" % (args.json, e))
        check_data(data, args.json)
    else:
        try:
            data = run_benchmark(args.binary, args.repetitions, args.filter, args.extra)
        except (OSError, subprocess.CalledProcessError, ValueError) as e:
            sys.exit("compare.py: running the benchmark failed: %s" % e)
        check_data(data, "the output of %s" % (args.binary or "resource_benchmark"))
    groups, other = group(medians(data))
    if not groups and not other:
        sys.exit("compare.py: no benchmark results found")
    ctx = data.get("context")
    if not isinstance(ctx, dict):
        ctx = {}
    print("host: %s CPUs, load average %s; medians of %s repetitions" %
          (ctx.get("num_cpus", "?"), ctx.get("load_avg", "?"),
           args.repetitions if not args.json else "the"))
    print_tables(groups, other, args.markdown)
    check_targets(groups)


if __name__ == "__main__":
    main()
