#!/bin/bash
# benchmarks/compiler_instructions.py end to end: it runs the compiler driver under cachegrind
# for each allocator, agrees on the checksum, finds std::allocator's work in malloc/free and
# next to none of the arena's there; a driver whose allocators disagree is an error, and
# so are bad arguments. (Not in the asan config: valgrind cannot run AddressSanitizer binaries.)
# usage: compiler_instructions_test.sh COMPILER_INSTRUCTIONS_PY COMPILER_BACKEND
set -u
script="$1"
program="$2"
dir="${TEST_TMPDIR:-/tmp}"
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }

command -v valgrind >/dev/null || { echo "FAILED: no valgrind (setup.sh installs it)"; exit 1; }

"$script" "$program" --shaders 3 --size 400 --allocators std,arena_static --json \
  >"$dir/counts.json" 2>"$dir/counts.err" || fail "--json: exit $? ($(cat "$dir/counts.err"))"
python3 - "$dir/counts.json" <<'PY' || fail "--json counts"
import json, sys
std, arena = json.load(open(sys.argv[1]))
assert (std["allocator"], arena["allocator"]) == ("std", "arena_static"), (std, arena)
assert std["checksum"] == arena["checksum"] and len(std["checksum"]) == 16, (std, arena)
# std::allocator's work is partly glibc's; the arena's is nearly all the compiler's own. (Not
# that the arena's total is lower: true at -c opt, but under -O0 or UBSan instrumentation the
# compiler's own code costs more than glibc's optimised malloc saves.)
assert 0 < std["in_allocator"] < std["instructions"], std
assert 0 < arena["in_allocator"] * 10 < std["in_allocator"], (std, arena)
assert 0 < arena["d1_misses"] and 0 < std["d1_misses"], (std, arena)
PY

"$script" "$program" --shaders 2 --size 300 --allocators std,arena >"$dir/table.txt" 2>&1 ||
  fail "table: exit $?"
grep -qE "^[^ ]+ under cachegrind: 2 shaders of ~300 instructions, checksum [0-9a-f]{16} on every allocator$" \
  "$dir/table.txt" || fail "table: title"
for allocator in std arena; do
  grep -qE "^\| $allocator \| [0-9.]+ M \| [0-9.]+× \| [0-9.]+ M \| [0-9.]+× \| [0-9.]+ M \([0-9.]+%\) \|$" \
    "$dir/table.txt" || fail "table: no row for $allocator"
done
grep -qE "^  arena executes [0-9.]+× that$" "$dir/table.txt" || fail "table: last line"

# A driver whose allocators compute different results is caught.
cat >"$dir/disagreeing_driver.sh" <<'SH'
#!/bin/bash
while [[ $# -gt 1 && "$1" != --allocator ]]; do shift; done
if [[ "$2" == std ]]; then echo "checksum: 00000000000000aa"; else echo "checksum: 00000000000000bb"; fi
SH
chmod +x "$dir/disagreeing_driver.sh"
"$script" "$dir/disagreeing_driver.sh" --shaders 1 --size 1 --allocators std,arena \
  >"$dir/differ.txt" 2>&1
status=$?
[[ $status -eq 1 ]] || fail "disagreeing driver: exit status $status, wanted 1"
grep -q "checksums differ: std 00000000000000aa, arena 00000000000000bb" "$dir/differ.txt" ||
  fail "disagreeing driver: message ($(cat "$dir/differ.txt"))"

for bad in "--allocators arena" "--allocators std,mimalloc" "--shaders 0"; do
  # shellcheck disable=SC2086
  "$script" "$program" $bad >"$dir/bad.txt" 2>&1
  status=$?
  [[ $status -eq 2 ]] || fail "'$bad': exit status $status, wanted 2"
done
"$script" "$dir/no_such_program" >"$dir/bad.txt" 2>&1
[[ $? -eq 2 ]] || fail "missing program: wanted exit status 2"

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "PASSED"
