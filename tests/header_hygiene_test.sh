#!/bin/bash
# Header hygiene: every public header compiles on its own, with no warning, under the flags a
# driver may build with.
#   - C++17, each header alone, with gcc and clang, with RTTI and with -fno-rtti (Mesa builds its
#     C++ without RTTI when its LLVM has none), under -Werror and a strict warning set;
#   - the C headers also as C11, each alone, with gcc and clang, under -Werror and the warnings
#     Mesa's C code is built with (missing prototypes, declarations after statements, VLAs, ...).
# Every header in mesa_alloc/ and containers/ is checked as C++; the C list is explicit, so a C
# header that starts to need C++ fails here rather than dropping out.
#
#   header_hygiene_test.sh [SOURCE_ROOT]
set -u
c_headers=(callback_validator.h debug_resources.h fast_resources.h mesa_alloc.h poison.h u_memory.h)
cxx_flags=(-std=c++17 -fsyntax-only -Werror -Wall -Wextra -Wpedantic -Wshadow -Wundef
           -Wconversion -Wold-style-cast -Woverloaded-virtual -Wnon-virtual-dtor
           -Wmissing-declarations)
c_flags=(-std=c11 -fsyntax-only -Werror -Wall -Wextra -Wpedantic -Wshadow -Wundef -Wconversion
         -Wstrict-prototypes -Wmissing-prototypes -Wdeclaration-after-statement -Wvla)

# One header, one language, one compiler, one extra flag ("-" for none).
check_one() {
  local lang="$1" cc="$2" extra="$3" header="$4" log flags
  if [ "$lang" = c ]; then
    flags=("${c_flags[@]}")
  else
    flags=("${cxx_flags[@]}")
    cc="${cc/gcc/g++}"
    cc="${cc/clang/clang++}"
  fi
  [ "$extra" = - ] || flags+=("$extra")
  log="$(mktemp "$work/log.XXXXXX")"
  # <...>, not "...": a quoted include from standard input is looked for in the current
  # directory first, which is not the tree under test.
  if ! echo "#include <$header>" | "$cc" -x "$lang" "${flags[@]}" -I "$root" - >"$log" 2>&1; then
    echo "FAIL: $header as $lang with $cc$([ "$extra" = - ] || echo " $extra")"
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
checks=()
for cc in "${compilers[@]}"; do
  for h in "$root"/mesa_alloc/*.h "$root"/containers/*.h; do
    checks+=("c++ $cc - ${h#"$root"/}" "c++ $cc -fno-rtti ${h#"$root"/}")
  done
  for h in "${c_headers[@]}"; do checks+=("c $cc - mesa_alloc/$h"); done
done

# Two at a time (the machines here have two cores); each failing check prints FAIL and its log.
report="$work/report"
printf '%s\n' "${checks[@]}" |
  xargs -P 2 -L 1 bash "$(realpath "$0")" --one "$root" "$work" >"$report"
cat "$report"
failures=$(grep -c '^FAIL:' "$report")
echo "header hygiene: ${#checks[@]} checks (${compilers[*]}), $failures failure(s)"
[ "$failures" -eq 0 ]
