#!/bin/bash
# Negative compile test for mesa_alloc/poison.h: with the header force-included a file calling
# malloc/calloc/realloc/free/strdup/strndup/aligned_alloc/posix_memalign must fail to build with
# a message naming each function, and must build with MESA_ALLOC_ALLOW_LIBC. Checked with every
# compiler found among gcc and clang (gcc is required).
set -u
root="${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-mesa_alloc}"
fixtures="$root/tests/poison"
out="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0
ran=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

check_compiler() {
  local cc="$1" cxx="$2"
  ran=$((ran + 1))
  echo "== $cc / $cxx"
  local log="$out/$cc.log"
  if "$cc" -std=c11 -c -I "$root" -include mesa_alloc/poison.h "$fixtures/calls_libc.c" \
      -o "$out/bad.o" >"$log" 2>&1; then
    fail "$cc compiled calls_libc.c although poison.h was included"
  else
    for fn in malloc calloc realloc free strdup strndup aligned_alloc posix_memalign; do
      grep -q "mesa_alloc_poisoned__${fn}__" "$log" || fail "$cc: no error naming ${fn}"
    done
    echo "   poisoned: $(grep -c 'mesa_alloc_poisoned__' "$log") error lines, e.g.:"
    grep -m1 'mesa_alloc_poisoned__malloc__' "$log" | sed 's/^/   /'
  fi
  "$cc" -std=c11 -c -I "$root" -DMESA_ALLOC_ALLOW_LIBC -include mesa_alloc/poison.h \
      "$fixtures/calls_libc.c" -o "$out/ok.o" >"$log" 2>&1 ||
    { cat "$log"; fail "$cc: the MESA_ALLOC_ALLOW_LIBC opt-out did not build"; }

  "$cxx" -std=c++17 -c -I "$root" -include mesa_alloc/poison.h "$fixtures/std_headers.cc" \
      -o "$out/std.o" >"$log" 2>&1 ||
    { cat "$log"; fail "$cxx: standard/Abseil headers do not compile after poison.h"; }
  if "$cxx" -std=c++17 -c -I "$root" -DCALL_STD_MALLOC -include mesa_alloc/poison.h \
      "$fixtures/std_headers.cc" -o "$out/std_bad.o" >"$log" 2>&1; then
    fail "$cxx compiled a std::malloc call although poison.h was included"
  else
    grep -q "mesa_alloc_poisoned__malloc__" "$log" || fail "$cxx: std::malloc error unclear"
  fi
}

command -v gcc >/dev/null || { echo "FAIL: gcc not found"; exit 1; }
check_compiler gcc g++
if command -v clang >/dev/null; then
  check_compiler clang clang++
else
  echo "note: clang not installed (setup.sh installs it); checked gcc only"
fi
echo "$((ran)) compiler(s) checked, ${failures} failure(s)"
[ "$failures" -eq 0 ]
