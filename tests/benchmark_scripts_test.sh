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
exit $failures
