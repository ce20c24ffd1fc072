#!/bin/bash
# A mixed malloc/FREE pair in driver code (mixed_free.c) is caught twice:
#   1. at build time: with mesa_alloc/poison.h forced on, as the c_driver is built, the file does
#      not compile and the error names malloc;
#   2. at run time, when the file opts out of the poison (MESA_ALLOC_ALLOW_LIBC): the program
#      runs "fine" on the plain libc default, and MESA_ALLOC_DEBUG=cookie stops it at the FREE
#      with one "mesa_alloc: invalid free" line and an abort.
# And the c_driver itself runs clean under MESA_ALLOC_DEBUG=cookie,leaks (no error, no leak),
# while a deliberate leak (c_driver_demo --leak) is reported.
#
#   mixed_free_test.sh MIXED_FREE_OPTOUT_BINARY C_DRIVER_DEMO_BINARY
# Sources and headers are found under $TEST_SRCDIR/$TEST_WORKSPACE (Bazel; Meson sets both).
set -u
[ $# -eq 2 ] || { echo "usage: $0 MIXED_FREE_OPTOUT C_DRIVER_DEMO" >&2; exit 2; }
optout="$1"
demo="$2"
root="${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-mesa_alloc}"
out="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

echo "== 1. build time: poison.h forced on"
for cc in gcc clang; do
  command -v "$cc" >/dev/null || { echo "   ($cc not installed)"; continue; }
  if "$cc" -std=c11 -c -I "$root" -include mesa_alloc/poison.h "$root/tests/c_driver/mixed_free.c" \
      -o "$out/poisoned.o" >"$out/poisoned.log" 2>&1; then
    fail "$cc compiled mixed_free.c although poison.h was forced on"
  elif ! grep -q 'mesa_alloc_poisoned__malloc__' "$out/poisoned.log"; then
    cat "$out/poisoned.log"
    fail "$cc: the build failed, but not on the poisoned malloc"
  else
    echo "   $cc: $(grep -m1 'mesa_alloc_poisoned__malloc__' "$out/poisoned.log")"
  fi
done

echo "== 2. run time, with the opt-out"
if ! MESA_ALLOC_DEBUG='' "$optout" >"$out/plain.log" 2>&1; then
  cat "$out/plain.log"
  fail "without MESA_ALLOC_DEBUG the mixed pair should go unnoticed (libc default)"
fi
MESA_ALLOC_DEBUG=cookie ASAN_OPTIONS=handle_abort=0 "$optout" >"$out/cookie.log" 2>&1
status=$?
if [ "$status" -eq 0 ] || grep -q 'survived' "$out/cookie.log"; then
  cat "$out/cookie.log"
  fail "MESA_ALLOC_DEBUG=cookie let the FREE of a malloc'd block through"
elif ! grep -q '^mesa_alloc: invalid free' "$out/cookie.log"; then
  cat "$out/cookie.log"
  fail "MESA_ALLOC_DEBUG=cookie stopped the program, but not with 'mesa_alloc: invalid free'"
else
  echo "   exit $status: $(grep -m1 '^mesa_alloc: invalid free' "$out/cookie.log")"
fi

echo "== 3. the c_driver under MESA_ALLOC_DEBUG=cookie,leaks"
# A word it does not take is refused, not run as 0 frames; so is a second frame count.
for bad in bogus --help -1 "5 extra" "5 6"; do
  # shellcheck disable=SC2086  # "5 extra" and "5 6" are two arguments on purpose
  "$demo" $bad >"$out/usage.log" 2>&1
  status=$?
  if [ "$status" -ne 2 ] || ! grep -q '^usage: ' "$out/usage.log"; then
    cat "$out/usage.log"
    fail "c_driver_demo $bad: exit $status, wanted 2 with its usage line"
  fi
done
if ! MESA_ALLOC_DEBUG=cookie,leaks "$demo" 5 >"$out/demo.log" 2>&1; then
  cat "$out/demo.log"
  fail "c_driver_demo failed under MESA_ALLOC_DEBUG=cookie,leaks"
elif grep -q '^mesa_alloc: ' "$out/demo.log"; then
  cat "$out/demo.log"
  fail "c_driver_demo reported errors or leaks under MESA_ALLOC_DEBUG=cookie,leaks"
else
  echo "   $(grep -m1 'c_driver_demo' "$out/demo.log"), no error, no leak"
fi

# ... and the leaks layer does see a driver leak (LeakSanitizer, under ASan, is told to let
# mesa_alloc report it). The flag before the frame count, as after it, is taken.
MESA_ALLOC_DEBUG=cookie,leaks ASAN_OPTIONS=detect_leaks=0 "$demo" --leak 1 >"$out/leak.log" 2>&1
# Five blocks: the screen, its name and its state-cache slots, the buffer and its storage.
if ! grep -q '^mesa_alloc: leak at 0x[0-9a-f]* size 1000 ' "$out/leak.log" ||
   ! grep -q '^mesa_alloc: leak summary: .* in 5 blocks' "$out/leak.log"; then
  cat "$out/leak.log"
  fail "MESA_ALLOC_DEBUG=cookie,leaks did not report the 5 blocks c_driver_demo --leak leaked"
else
  echo "   with --leak: $(grep -m1 '^mesa_alloc: leak at .* size 1000 ' "$out/leak.log")"
  echo "   $(grep -m1 '^mesa_alloc: leak summary' "$out/leak.log")"
fi

echo "${failures} failure(s)"
[ "$failures" -eq 0 ]
