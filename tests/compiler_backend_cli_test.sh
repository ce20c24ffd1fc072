#!/bin/bash
# The compiler_backend command-line driver end to end: every --allocator prints the same
# `checksum:` line (and its accounting), --app-callbacks routes everything through application
# VkAllocationCallbacks and gets it all back, running out of memory is a message and exit
# status 1, bad arguments get the usage and exit status 2, --help gets it on stdout and exit
# status 0.
# usage: compiler_backend_cli_test.sh COMPILER_BACKEND [vulkan|no-vulkan]
set -u
program="$1"
vulkan="${2:-vulkan}"
dir="${TEST_TMPDIR:-/tmp}"
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }
args=(--shaders 6 --size 400 --seed 7)

reference=""
for allocator in std pmr_newdelete pmr_monotonic arena arena_static; do
  out="$dir/cli_$allocator.txt"
  "$program" "${args[@]}" --allocator "$allocator" >"$out" 2>&1 || fail "$allocator: exit $?"
  sum=$(sed -n 's/^checksum: \([0-9a-f]\{16\}\)$/\1/p' "$out")
  [[ -n "$sum" ]] || fail "$allocator: no checksum line"
  [[ -z "$reference" ]] && reference="$sum"
  [[ "$sum" == "$reference" ]] || fail "$allocator: checksum $sum, std gave $reference"
  grep -q "^compiled 6 shaders of ~400 instructions (seed 7) with --allocator $allocator$" "$out" ||
    fail "$allocator: summary line"
  for pass in generate dominance constant_fold copy_propagate gvn dce liveness regalloc; do
    grep -qE "^  $pass +[0-9]+\.[0-9]{3} +[0-9.]+%$" "$out" || fail "$allocator: no time for $pass"
  done
  if [[ "$allocator" == std ]]; then
    grep -q "accounting: none" "$out" || fail "std: accounting line"
  else
    # compiler = ir + scratch; the IR is all returned after each shader.
    python3 - "$out" <<'PY' || fail "$allocator: accounting table"
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"^\s+(compiler|ir|scratch)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", line)
    if m:
        rows[m.group(1)] = [int(x) for x in m.groups()[1:]]
assert set(rows) == {"compiler", "ir", "scratch"}, rows
total = lambda name: rows[name][1]
assert total("compiler") == total("ir") + total("scratch") > 0, rows
assert rows["ir"][4] == 0, rows  # in use
assert rows["compiler"][2] == rows["ir"][2] + rows["scratch"][2], rows  # allocations
PY
  fi
done

if [[ "$vulkan" == vulkan ]]; then
  out="$dir/cli_app.txt"
  "$program" "${args[@]}" --allocator arena_static --app-callbacks >"$out" 2>&1 ||
    fail "--app-callbacks: exit $?"
  grep -q "^checksum: $reference$" "$out" || fail "--app-callbacks: checksum differs"
  # Every block the compiler took reached the application, and came back.
  allocations=$(sed -n 's/^  compiler \+[0-9]\+ \+[0-9]\+ \+\([0-9]\+\) .*/\1/p' "$out")
  grep -qE "^application callbacks: $allocations allocations, 0 reallocations, $allocations frees, 0 blocks live$" "$out" ||
    fail "--app-callbacks: application totals (compiler made ${allocations:-?} allocations)"
  "$program" --allocator std --app-callbacks >/dev/null 2>&1
  [[ $? -eq 2 ]] || fail "--app-callbacks with std must be refused"
  # A usage error prints the usage and nothing else: no application report on stdout.
  "$program" --app-callbacks --allocator bogus >"$dir/cli_bad.txt" 2>"$dir/cli_bad_err.txt"
  [[ $? -eq 2 ]] || fail "--app-callbacks --allocator bogus: exit status, wanted 2"
  grep -q "^usage: compiler_backend" "$dir/cli_bad_err.txt" ||
    fail "--app-callbacks --allocator bogus: no usage"
  [[ -s "$dir/cli_bad.txt" ]] && fail "--app-callbacks --allocator bogus: printed on stdout"
fi

# Out of memory is an error naming the shader and the pass, not an abort: budgets the arena's
# blocks exceed (MESA_ALLOC_DEBUG applies to the arena variants' default allocator) during
# generation (39% of the run's peak), and only later, in a pass (78%). The peak is measured
# first: pointers make it 514 KB on 64-bit targets, 294 KB on 32-bit ones.
"$program" --shaders 3 --size 2000 --allocator arena >"$dir/cli_peak.txt" 2>&1
peak=$(sed -n 's/^  compiler \+\([0-9]\+\) .*/\1/p' "$dir/cli_peak.txt")
[[ -n "$peak" ]] || { fail "no compiler peak in the accounting"; peak=513536; }
early=$((peak * 39 / 100))
late=$((peak * 78 / 100))
oom_line='(@[a-z0-9_]+: )?out of memory in [a-z_ ]+$'
# usage: run_out_of_memory LIMIT MESSAGE_PREFIX [--dump]; exit status 1 with the message.
run_out_of_memory() {
  local limit="$1" prefix="$2" label="limit=$1${3:+ $3}"
  # shellcheck disable=SC2086
  MESA_ALLOC_DEBUG=limit=$limit "$program" --shaders 3 --size 2000 --allocator arena ${3:-} \
    >"$dir/cli_oom.txt" 2>"$dir/cli_oom_err.txt"
  local status=$?
  [[ $status -eq 1 ]] || fail "$label: exit status $status, wanted 1"
  grep -qE "^compiler_backend: $prefix$oom_line" "$dir/cli_oom_err.txt" ||
    fail "$label: no out-of-memory message"
}
for limit in $early $late; do
  run_out_of_memory $limit 'shader [0-9]+ \(seed [0-9]+\): '
  grep -q "^checksum:" "$dir/cli_oom.txt" && fail "limit=$limit: printed a checksum"
  # --dump compiles the first shader first: its failure is reported, and no "compiled" dump.
  run_out_of_memory $limit '--dump: shader 0 \(seed 1\): ' --dump
  grep -q "^; ---- compiled" "$dir/cli_oom.txt" && fail "limit=$limit --dump: printed a compiled dump"
done
grep -q "^; ---- shader seed 1, generated" "$dir/cli_oom.txt" ||
  fail "limit=$late --dump: the generated shader was not printed"

# --shaders 0 has no first shader to dump: nothing is generated, compiled or accounted.
"$program" --shaders 0 --dump --allocator arena >"$dir/cli_zero.txt" 2>&1 ||
  fail "--shaders 0 --dump: exit $?"
grep -q "^; ---- " "$dir/cli_zero.txt" && fail "--shaders 0 --dump: printed a shader"
grep -q "^compiled 0 shaders" "$dir/cli_zero.txt" || fail "--shaders 0 --dump: summary line"
grep -qE "^  compiler +0 " "$dir/cli_zero.txt" || fail "--shaders 0 --dump: memory accounted"

# --app-callbacks allocates from the application's callbacks on the C library: MESA_ALLOC_DEBUG's
# limit does not apply there, and the usage says so.
if [[ "$vulkan" == vulkan ]]; then
  MESA_ALLOC_DEBUG=limit=$early "$program" --shaders 3 --size 2000 --allocator arena \
    --app-callbacks >"$dir/cli_oom.txt" 2>&1 || fail "limit=$early --app-callbacks: exit $?"
  grep -q "^application callbacks: " "$dir/cli_oom.txt" ||
    fail "limit=$early --app-callbacks: no application report"
  "$program" --help | grep -q "the C library, so MESA_ALLOC_DEBUG does not apply" ||
    fail "--help does not say that MESA_ALLOC_DEBUG does not apply to --app-callbacks"
fi

for bad in "--allocator mimalloc" "--shaders" "--size -3" "--registers 0" "--bogus"; do
  # shellcheck disable=SC2086
  "$program" $bad >"$dir/cli_bad.txt" 2>&1
  status=$?
  [[ $status -eq 2 ]] || fail "'$bad': exit status $status, wanted 2"
  grep -q "^usage: compiler_backend" "$dir/cli_bad.txt" || fail "'$bad': no usage"
done

# Numbers are decimal digits only: strtoull alone would read " -1" as 2^64 - 1.
for bad in " -1" "+5" " 7"; do
  "$program" --seed "$bad" >"$dir/cli_bad.txt" 2>&1
  status=$?
  [[ $status -eq 2 ]] || fail "--seed '$bad': exit status $status, wanted 2"
done

for help in --help -h; do
  "$program" --shaders 3 "$help" >"$dir/cli_help.txt" 2>"$dir/cli_help_err.txt" ||
    fail "$help: exit status $?, wanted 0"
  grep -q "^usage: compiler_backend" "$dir/cli_help.txt" || fail "$help: no usage on stdout"
  [[ -s "$dir/cli_help_err.txt" ]] && fail "$help: wrote to stderr"
  grep -q "^checksum:" "$dir/cli_help.txt" && fail "$help: compiled instead of printing the usage"
done

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "PASSED"
