#!/bin/bash
# The benchmark report scripts on good and bad Google Benchmark JSON: compiler_ratios.py and
# compare.py print their tables from a well-formed run, and give one clear line and a non-zero
# status (never a traceback) for a missing, empty or malformed file or a failed benchmark.
# usage: benchmark_scripts_test.sh COMPILER_RATIOS_PY COMPARE_PY
set -u
ratios="$1"
compare="$2"
dir="${TEST_TMPDIR:-/tmp}"
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }

# A compiler_benchmark run: std at 200 ms, arena_static at 100 ms, three repetitions each.
python3 - "$dir/compiler.json" "$dir/compiler_failed.json" <<'PY'
import json, sys
def run(name, ms, peak, allocs, **extra):
    return dict(name="BM_compile/" + name, run_name="BM_compile/" + name, run_type="iteration",
                cpu_time=ms, real_time=ms, time_unit="ms", peak_bytes=peak, heap_allocs=allocs,
                **extra)
good = [run("std_allocator", t, 1000, 50) for t in (190, 200, 210)]
good += [run("arena_static", t, 1300, 5) for t in (95, 100, 105)]
json.dump({"context": {}, "benchmarks": good}, open(sys.argv[1], "w"))
failed = good + [run("arena_pmr", 0, 0, 0, error_occurred=True, error_message="checksum differs")]
json.dump({"context": {}, "benchmarks": failed}, open(sys.argv[2], "w"))
PY
python3 "$ratios" "$dir/compiler.json" >"$dir/out.txt" 2>&1 || fail "ratios: good run"
grep -q '^| arena_static | 100.0 | 2.00× / 2.00× | 1300 (1.30×) | 5 |$' "$dir/out.txt" ||
  fail "ratios: arena_static row"

# A resource_benchmark run with its targets' baseline and ours, as compare.py reads it.
python3 - "$dir/resource.json" "$dir/resource_failed.json" <<'PY'
import json, sys
def row(name, ns, **extra):
    return dict(name=name, run_name=name, run_type="iteration", cpu_time=ns, real_time=ns,
                time_unit="ns", **extra)
good = [row("BM_glibc_pair/64", 10.0), row("BM_mesa_slab_pair/64", 2.5)]
json.dump({"context": {}, "benchmarks": good}, open(sys.argv[1], "w"))
bad = good + [row("BM_mesa_pool_pair/64", 0, error_occurred=True, error_message="boom"),
              row("BM_pmr_unsync_pool_pair/64", 0.0), 7]
json.dump({"context": {}, "benchmarks": bad}, open(sys.argv[2], "w"))
PY
python3 "$compare" --json "$dir/resource.json" >"$dir/out.txt" 2>&1 || fail "compare: good run"
grep -qE 'PASS +slab \(pmr\) vs glibc, 64 B +4\.00x' "$dir/out.txt" || fail "compare: target line"
python3 "$compare" --json "$dir/resource_failed.json" >"$dir/out.txt" 2>&1 ||
  fail "compare: a run with a failed row still reports the others"
grep -q 'BM_mesa_pool_pair/64 failed: boom' "$dir/out.txt" || fail "compare: failed row named"
if grep -q 'Traceback' "$dir/out.txt"; then fail "compare: traceback on a failed row"; fi

printf '' >"$dir/empty.json"
echo '{}' >"$dir/object.json"
echo '[]' >"$dir/array.json"
echo '{"benchmarks": [{"run_type": "iteration"}]}' >"$dir/fieldless.json"
for bad in "$dir/missing.json" "$dir/empty.json" "$dir/object.json" "$dir/array.json" \
  "$dir/fieldless.json" "$dir/compiler_failed.json"; do
  python3 "$ratios" "$bad" >"$dir/out.txt" 2>&1
  status=$?
  [[ $status -ne 0 ]] || fail "ratios: $(basename "$bad") accepted"
  if grep -q 'Traceback' "$dir/out.txt"; then fail "ratios: $(basename "$bad"): traceback"; fi
  grep -q '^compiler_ratios: ' "$dir/out.txt" || fail "ratios: $(basename "$bad"): no message"
done
grep -q 'arena_pmr failed: checksum differs' "$dir/out.txt" || fail "ratios: failed run named"
for bad in "$dir/missing.json" "$dir/empty.json" "$dir/object.json" "$dir/array.json"; do
  python3 "$compare" --json "$bad" >"$dir/out.txt" 2>&1
  status=$?
  [[ $status -ne 0 ]] || fail "compare: $(basename "$bad") accepted"
  if grep -q 'Traceback' "$dir/out.txt"; then fail "compare: $(basename "$bad"): traceback"; fi
done
# Hostile or odd records: one line naming what is wrong, never a traceback. The aggregates-only
# output (--benchmark_report_aggregates_only) has no repetitions for the table: said so.
python3 - "$dir" <<'PY'
import json, sys
def run(name="std_allocator", **fields):
    record = dict(name="BM_compile/" + name, run_name="BM_compile/" + name, run_type="iteration",
                  cpu_time=10, real_time=10, time_unit="ms", peak_bytes=100, heap_allocs=5)
    record.update(fields)
    return record
cases = {
    "run_name_number": [run(), run("arena_static", run_name=5)],
    "peak_null": [run(peak_bytes=None)],
    "peak_text": [run(peak_bytes="big")],
    "peak_infinite": [run(), run("arena_static", peak_bytes=float("inf"))],
    "time_nan": [run(cpu_time=float("nan"))],
    "unit_unknown": [run(time_unit="xs")],
    "peak_huge_integer": [run(), run("arena_static", peak_bytes=10**400)],
    "time_infinite_in_ms": [run(), run("arena_static", cpu_time=1e307, time_unit="s")],
    "aggregates_only": [run(name="BM_compile/std_allocator_median", run_type="aggregate",
                            aggregate_name="median")],
}
for name, records in cases.items():
    json.dump({"benchmarks": records}, open("%s/ratios_%s.json" % (sys.argv[1], name), "w"))
# Arrays nested too deep for the JSON reader's recursion.
deep = '{"benchmarks": ' + "[" * 100000 + "]" * 100000 + "}"
open(sys.argv[1] + "/ratios_nested_deep.json", "w").write(deep)
open(sys.argv[1] + "/compare_nested_deep.json", "w").write(deep)
# Times in different units are compared in one unit: std at 10 us is 500x arena_static's 5 ms.
json.dump({"benchmarks": [run(time_unit="us"), run("arena_static", cpu_time=5)]},
          open(sys.argv[1] + "/ratios_units.json", "w"))
def row(name, **fields):
    record = dict(name=name, run_name=name, run_type="iteration", cpu_time=10, real_time=10,
                  time_unit="ns")
    record.update(fields)
    return record
cases = {
    "unit_unknown": {"benchmarks": [row("BM_glibc_pair/64"), row("BM_mesa_slab_pair/64",
                                                                  time_unit="xs")]},
    "name_number": {"benchmarks": [row("BM_glibc_pair/64"), row(5)]},
    "run_name_list": {"benchmarks": [row("BM_x", run_name=[1])]},
    "time_negative": {"benchmarks": [row("BM_glibc_pair/64"), row("BM_mesa_slab_pair/64",
                                                                   cpu_time=-3)]},
    "time_infinite": {"benchmarks": [row("BM_glibc_pair/64", real_time=float("inf"))]},
    "time_huge_integer": {"benchmarks": [row("BM_glibc_pair/64", cpu_time=10**400)]},
    "time_infinite_in_ns": {"benchmarks": [row("BM_glibc_pair/64", cpu_time=1e300,
                                               time_unit="s")]},
    "no_records": {"benchmarks": [5, "x", None]},
}
for name, data in cases.items():
    json.dump(data, open("%s/compare_%s.json" % (sys.argv[1], name), "w"))
json.dump({"context": [], "benchmarks": [row("BM_glibc_pair/64"), row("BM_mesa_slab_pair/64",
                                                                      cpu_time=2.5)]},
          open(sys.argv[1] + "/compare_context_list.json", "w"))
PY
for name in run_name_number peak_null peak_text peak_infinite time_nan unit_unknown \
  peak_huge_integer time_infinite_in_ms nested_deep aggregates_only; do
  python3 "$ratios" "$dir/ratios_$name.json" >"$dir/out.txt" 2>&1
  status=$?
  [[ $status -eq 1 ]] || fail "ratios: $name: status $status"
  if grep -q 'Traceback' "$dir/out.txt"; then fail "ratios: $name: traceback"; fi
  if [[ $(wc -l <"$dir/out.txt") -ne 1 ]] ||
    ! grep -q "^compiler_ratios: .*ratios_$name.json" "$dir/out.txt"; then
    fail "ratios: $name: not one line naming the file"
    cat "$dir/out.txt"
  fi
done
grep -q 'only aggregate records .* without --benchmark_report_aggregates_only$' "$dir/out.txt" ||
  fail "ratios: aggregates only: not said"
python3 "$ratios" "$dir/ratios_units.json" >"$dir/out.txt" 2>&1 || fail "ratios: mixed units"
grep -q '^| arena_static | 5.0 | 0.00× / 0.00× | 100 (1.00×) | 5 |$' "$dir/out.txt" ||
  fail "ratios: mixed units: arena_static not in ms"
grep -q '^| std_allocator | 0.0 |' "$dir/out.txt" || fail "ratios: mixed units: std not in ms"

for name in unit_unknown name_number run_name_list time_negative time_infinite time_huge_integer \
  time_infinite_in_ns nested_deep no_records; do
  python3 "$compare" --json "$dir/compare_$name.json" >"$dir/out.txt" 2>&1
  status=$?
  [[ $status -eq 1 ]] || fail "compare: $name: status $status"
  if grep -q 'Traceback' "$dir/out.txt"; then fail "compare: $name: traceback"; fi
  if [[ $(wc -l <"$dir/out.txt") -ne 1 ]] || ! grep -q '^compare.py: ' "$dir/out.txt"; then
    fail "compare: $name: not one line"
    cat "$dir/out.txt"
  fi
done
python3 "$compare" --json "$dir/compare_context_list.json" >"$dir/out.txt" 2>&1 ||
  fail "compare: a context that is not an object"
grep -qE 'PASS +slab \(pmr\) vs glibc, 64 B +4\.00x' "$dir/out.txt" ||
  fail "compare: a context that is not an object: the table"

# --binary's output gets the checks --json's file gets; --repetitions below 1 is refused.
for output in '[1, 2]' '{"benchmarks": 5}' "$(cat "$dir/compare_unit_unknown.json")" 'not json'; do
  printf '#!/bin/sh\ncat <<"EOF"\n%s\nEOF\n' "$output" >"$dir/fake_benchmark"
  chmod +x "$dir/fake_benchmark"
  python3 "$compare" --binary "$dir/fake_benchmark" >"$dir/out.txt" 2>&1
  status=$?
  [[ $status -eq 1 ]] || fail "compare --binary printing '$output': status $status"
  if grep -q 'Traceback' "$dir/out.txt"; then fail "compare --binary '$output': traceback"; fi
  grep -q '^compare.py: ' "$dir/out.txt" || fail "compare --binary '$output': no message"
done
python3 "$compare" --binary "$dir/fake_benchmark" --repetitions -5 >"$dir/out.txt" 2>&1
[[ $? -eq 2 ]] || fail "compare --repetitions -5: accepted"
grep -q 'repetitions must be 1 or more' "$dir/out.txt" || fail "compare --repetitions -5: message"
exit $failures
