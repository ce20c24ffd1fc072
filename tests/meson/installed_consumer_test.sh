#!/bin/bash
# Installed-consumer test: builds tests/meson/consumer.c (C11, poison.h forced on) with
# `pkg-config --cflags --libs mesa_alloc` and consumer.cc (C++17, the containers too) with
# `pkg-config --cflags --libs mesa_alloc_containers` against an INSTALLED mesa_alloc, outside the
# source tree, and runs them. A shared install gives the C program no Abseil library to link.
#
#   installed_consumer_test.sh --build BUILD_DIR [consumer.c consumer.cc]
#       meson install BUILD_DIR into a temporary DESTDIR first (as `meson test` does)
#   installed_consumer_test.sh --prefix PREFIX [consumer.c consumer.cc]
#       use a copy already installed under PREFIX
# The consumer sources default to the ones next to this script.
#
# Also checks the documented layout: headers under include/mesa_alloc/{mesa_alloc,containers}/.
# CC and CXX name the compilers (default cc and c++; meson test passes the build's own, so a
# cross build, e.g. gcc -m32, builds its consumers for the same target).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

case "${1:-}" in
  --build)
    [ -d "${2:-}" ] || fail "usage: $0 --build BUILD_DIR | --prefix PREFIX"
    root="$work/destdir"
    meson install -C "$2" --no-rebuild --quiet --destdir "$root" >"$work/install.log" 2>&1 ||
      { cat "$work/install.log"; fail "meson install into a DESTDIR failed"; }
    # pkg-config prepends the sysroot to every -I and -L of the staged .pc file.
    export PKG_CONFIG_SYSROOT_DIR="$root"
    ;;
  --prefix)
    [ -d "${2:-}" ] || fail "usage: $0 --build BUILD_DIR | --prefix PREFIX"
    root="$(cd "$2" && pwd)"
    ;;
  *) fail "usage: $0 --build BUILD_DIR | --prefix PREFIX" ;;
esac
shift 2
c_source="${1:-$here/consumer.c}"
cxx_source="${2:-$here/consumer.cc}"

pc="$(find "$root" -name mesa_alloc.pc -path '*/pkgconfig/*' | head -n1)"
[ -n "$pc" ] || fail "no mesa_alloc.pc installed under $root"
pc_dir="$(dirname "$pc")"
export PKG_CONFIG_PATH="$pc_dir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
echo "using $pc"

# A static install (no shared library) links with --static: the archives need libstdc++ and libdl.
static=()
find "$root" -name 'libmesa_alloc.so*' | grep -q . || static=(--static)
pc_flags() {  # PACKAGE: its --cflags and --libs, or fail
  pkg-config --cflags "$1" >/dev/null && pkg-config "${static[@]}" --libs "$1" >/dev/null ||
    fail "pkg-config --cflags --libs $1 failed"
}
pc_flags mesa_alloc
pc_flags mesa_alloc_containers
cflags="$(pkg-config --cflags mesa_alloc)"
libs="$(pkg-config "${static[@]}" --libs mesa_alloc)"
cxx_cflags="$(pkg-config --cflags mesa_alloc_containers)"
cxx_libs="$(pkg-config "${static[@]}" --libs mesa_alloc_containers)"
echo "C:   $cflags $libs"
echo "C++: $cxx_cflags $cxx_libs"
if [ ${#static[@]} -eq 0 ] && grep -q absl <<<"$libs"; then
  fail "mesa_alloc.pc gives a C program Abseil's libraries: $libs"
fi

include_dir="$(pkg-config --cflags-only-I mesa_alloc | tr ' ' '\n' | sed -n 's/^-I//p' |
  grep '/mesa_alloc$' | head -n1)"
[ -n "$include_dir" ] || fail "mesa_alloc.pc has no -I.../include/mesa_alloc"
for header in mesa_alloc/mesa_alloc.h mesa_alloc/u_memory.h mesa_alloc/poison.h \
    mesa_alloc/internal/c_handle.h containers/arena_allocator.h; do
  [ -f "$include_dir/$header" ] || fail "$header not installed under $include_dir"
done

read -ra cc_cmd <<<"${CC:-cc}"
read -ra cxx_cmd <<<"${CXX:-c++}"

# Compile in an empty directory, so nothing can come from the source tree.
cp "$c_source" "$work/consumer.c"
cp "$cxx_source" "$work/consumer.cc"
cd "$work"
# shellcheck disable=SC2086  # pkg-config output is a list of flags
"${cc_cmd[@]}" -std=c11 -Wall -Werror -include mesa_alloc/poison.h consumer.c $cflags $libs \
  -o consumer_c || fail "the C consumer did not build"
# shellcheck disable=SC2086
"${cxx_cmd[@]}" -std=c++17 -Wall -Werror consumer.cc $cxx_cflags $cxx_libs -o consumer_cc ||
  fail "the C++ consumer did not build"

libdirs="$(pkg-config --libs-only-L mesa_alloc_containers | tr ' ' '\n' | sed -n 's/^-L//p' |
  paste -sd:)"
# Only the installed copy (meson test points LD_LIBRARY_PATH at the build tree).
export LD_LIBRARY_PATH="$libdirs"
./consumer_c || fail "the C consumer failed"
./consumer_cc || fail "the C++ consumer failed"

# The tools come with the library: the link-level audit (what a parent's
# find_program('mesa_alloc_audit') finds on PATH) passes the clean consumer's object and names a
# malloc in another; the trace reader runs.
audit="$(find "$root" -path '*/bin/mesa_alloc_audit' | head -n1)"
trace="$(find "$root" -path '*/bin/mesa_alloc_trace' | head -n1)"
[ -x "$audit" ] && [ -x "$trace" ] || fail "mesa_alloc_audit or mesa_alloc_trace not installed in bin/"
# shellcheck disable=SC2086
"${cc_cmd[@]}" -std=c11 -c -include mesa_alloc/poison.h consumer.c $cflags -o consumer_c.o ||
  fail "the C consumer's object did not build"
"$audit" consumer_c.o >audit.log 2>&1 || { cat audit.log; fail "the installed audit failed a clean object"; }
printf '#include <stdlib.h>\nvoid *leak(void) { return malloc(8); }\n' >dirty.c
"${cc_cmd[@]}" -c dirty.c -o dirty.o || fail "dirty.c did not build"
if "$audit" dirty.o >audit.log 2>&1 || ! grep -q malloc audit.log; then
  cat audit.log
  fail "the installed audit did not name dirty.o's malloc"
fi
"$trace" --help >/dev/null || fail "the installed mesa_alloc_trace does not run"
echo "installed-consumer test passed"
