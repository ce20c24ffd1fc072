#!/bin/bash
# Header hygiene: every public header compiles on its own, with no warning, under the flags a
# driver may build with, and for a 32-bit target too.
#   - C++17, each header alone, with gcc and clang, with RTTI and with -fno-rtti (Mesa builds its
#     C++ without RTTI when its LLVM has none), under -Werror and a strict warning set;
#   - the C headers also as C11, each alone, with gcc and clang, under -Werror and the warnings
#     Mesa's C code is built with (missing prototypes, declarations after statements, VLAs, ...);
#   - on x86-64 also with gcc -m32 (i386, as Mesa's 32-bit drivers are built): each header once
#     (C++ with RTTI; the C headers as C11), and each source file of the library, the Vulkan
#     bridge and the containers under the project's own -Wall -Wextra -Werror (the x86-64 build
#     compiles those already). On other hosts this part is skipped, with a line saying so.
#   - each containers/ header after mesa_alloc/u_memory.h, as Mesa's C++ includes them (its
#     macros must not break the Abseil headers the containers pull in);
#   - the C headers from C++14 inside extern "C" { }, as older C++ includes C headers (their C++
#     parts, such as the validator's class, are for C++17 and have C++ linkage);
# Every header directly in mesa_alloc/ and containers/ is checked as C++ (internal/ ones through
# the headers that include them); the C list is explicit, so a C header that starts to need C++
# fails here rather than dropping out. Each check prints OK or FAIL; the test also fails unless
# every check printed one.
#
#   header_hygiene_test.sh [SOURCE_ROOT]
set -u
c_headers=(callback_validator.h debug_resources.h fast_resources.h mesa_alloc.h poison.h u_memory.h)
cxx_flags=(-std=c++17 -fsyntax-only -Werror -Wall -Wextra -Wpedantic -Wshadow -Wundef
           -Wconversion -Wold-style-cast -Woverloaded-virtual -Wnon-virtual-dtor
           -Wmissing-declarations)
c_flags=(-std=c11 -fsyntax-only -Werror -Wall -Wextra -Wpedantic -Wshadow -Wundef -Wconversion
         -Wstrict-prototypes -Wmissing-prototypes -Wdeclaration-after-statement -Wvla)
source_flags=(-std=c++17 -fsyntax-only -Werror -Wall -Wextra)

# One file, one kind (c or c++: a header included alone; after_u_memory: a C++ header included
# after mesa_alloc/u_memory.h; c_in_cxx14: a C header inside extern "C" from C++14; source: a .cc
# compiled), one compiler, one extra flag ("-" for none).
check_one() {
  local kind="$1" cc="$2" extra="$3" file="$4" log flags input language=c++
  case "$kind" in
    c) flags=("${c_flags[@]}") language=c ;;
    c++ | after_u_memory) flags=("${cxx_flags[@]}") ;;
    c_in_cxx14) flags=("${cxx_flags[@]/-std=c++17/-std=c++14}") ;;
    source) flags=("${source_flags[@]}") ;;
  esac
  if [ "$kind" != c ]; then
    cc="${cc/gcc/g++}"
    cc="${cc/clang/clang++}"
  fi
  [ "$extra" = - ] || flags+=("$extra")
  # <...>, not "...": a quoted include from standard input is looked for in the current
  # directory first, which is not the tree under test.
  input="#include <$file>"
  [ "$kind" = source ] && input="$(cat "$root/$file")"
  [ "$kind" = after_u_memory ] && input=$'#include <mesa_alloc/u_memory.h>\n'"$input"
  [ "$kind" = c_in_cxx14 ] && input=$'extern "C" {\n'"$input"$'\n}'
  log="$(mktemp "$work/log.XXXXXX")"
  local what="$file as $kind with $cc$([ "$extra" = - ] || echo " $extra")"
  if echo "$input" | "$cc" -x "$language" "${flags[@]}" -I "$root" - >"$log" 2>&1; then
    echo "OK: $what"
  else
    echo "FAIL: $what"
    sed 's/^/  /' "$log" | head -20
  fi
  rm -f "$log"
}

if [ "${1:-}" = --one ]; then  # how the parallel workers below call this script
  root="$2" work="$3"
  shift 3
  check_one "$@"
  exit 0
fi

root="${1:-${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-mesa_alloc}}"
if [ -n "${TEST_TMPDIR:-}" ]; then
  work="$TEST_TMPDIR"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi

compilers=(gcc)
command -v clang >/dev/null && compilers+=(clang)
headers=("$root"/mesa_alloc/*.h "$root"/containers/*.h)
headers=("${headers[@]#"$root"/}")
sources=("$root"/mesa_alloc/*.cc "$root"/mesa_alloc/internal/*.cc "$root"/containers/*.cc)
sources=("${sources[@]#"$root"/}")
checks=()
for cc in "${compilers[@]}"; do
  for h in "${headers[@]}"; do checks+=("c++ $cc - $h" "c++ $cc -fno-rtti $h"); done
  for h in "${c_headers[@]}"; do
    checks+=("c $cc - mesa_alloc/$h" "c_in_cxx14 $cc - mesa_alloc/$h")
  done
done
for h in "$root"/containers/*.h; do checks+=("after_u_memory gcc - ${h#"$root"/}"); done
if [ "$(uname -m)" = x86_64 ]; then
  if ! echo 'int main(void) { return 0; }' | gcc -m32 -x c - -o "$work/m32" 2>/dev/null; then
    echo "FAIL: gcc -m32 cannot build a 32-bit program (setup.sh installs g++-multilib)"
    exit 1
  fi
  for h in "${headers[@]}"; do checks+=("c++ gcc -m32 $h"); done
  for h in "${c_headers[@]}"; do checks+=("c gcc -m32 mesa_alloc/$h"); done
  for f in "${sources[@]}"; do checks+=("source gcc -m32 $f"); done
else
  echo "note: not an x86-64 host ($(uname -m)): the i386 (gcc -m32) checks are skipped"
fi

# Two at a time (the machines here have two cores); a failing check's log follows its FAIL line.
report="$work/report"
printf '%s\n' "${checks[@]}" |
  xargs -P 2 -L 1 bash "$(realpath "$0")" --one "$root" "$work" >"$report"
workers=$?
grep -v '^OK:' "$report"
passed=$(grep -c '^OK:' "$report")
failures=$(grep -c '^FAIL:' "$report")
echo "header hygiene: ${#checks[@]} checks (${compilers[*]}), $passed passed, $failures failed"
[ "$workers" -eq 0 ] || echo "FAIL: a check did not run to its end (xargs exit $workers)"
[ "$workers" -eq 0 ] && [ "$failures" -eq 0 ] && [ "$passed" -eq "${#checks[@]}" ]
