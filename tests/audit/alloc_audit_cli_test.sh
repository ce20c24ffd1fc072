#!/bin/bash
# The link-level audit's own command line and inputs (tools/alloc_audit.py), with objects built
# here by the system gcc: --help and bad options; findings named archive(member), one per
# archive; --allow by member name; the libc functions that return malloc'd memory (asprintf);
# and the inputs it cannot read, which must be refused (exit 2), never passed as clean: a shared
# library, an executable, a slim LTO object, a file objdump cannot read, and inputs with nothing
# to audit (an empty file, an archive without members, a device, a directory). A fat LTO object is
# audited, one holding only data too, and so is a fortified -O2 build's __asprintf_chk.
#
#   alloc_audit_cli_test.sh ALLOC_AUDIT
set -u
audit="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
out="${TEST_TMPDIR:-$(mktemp -d)}/alloc_audit_cli"
rm -rf "$out" && mkdir -p "$out/x" "$out/y" && cd "$out" || exit 1
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect STATUS PATTERN -- ARGS...: the audit exits with STATUS and its output matches PATTERN.
expect() {
  local status="$1" pattern="$2"
  shift 3
  local log rc
  log="$("$audit" "$@" 2>&1)"
  rc=$?
  echo "== alloc_audit $* -> $rc"
  echo "$log" | head -n 3 | sed 's/^/   /'
  [ "$rc" -eq "$status" ] || fail "alloc_audit $*: exit $rc, expected $status"
  grep -qE -- "$pattern" <<<"$log" || fail "alloc_audit $*: no line matching '$pattern'"
}

cat >util.c <<'EOF'
#include <stdlib.h>
void *util_alloc(void) { return malloc(16); }
EOF
cat >clean.c <<'EOF'
int clean_add(int a, int b) { return a + b; }
EOF
cat >formats.c <<'EOF'
#define _GNU_SOURCE
#include <stdio.h>
char *format_number(int x) {
  char *s;
  return asprintf(&s, "%d", x) < 0 ? 0 : s;
}
EOF
gcc -c -fPIC util.c -o x/util.o && cp x/util.o y/util.o && ar rcs libx.a x/util.o &&
  ar rcs liby.a y/util.o && gcc -c clean.c -o clean.o && ar rcs libclean.a clean.o &&
  gcc -c formats.c -o formats.o && gcc -O2 -D_FORTIFY_SOURCE=2 -c formats.c -o fortified.o &&
  gcc -shared -o libutil.so x/util.o &&
  gcc -o program clean.c -nostartfiles -e clean_add &&
  gcc -O2 -flto -c util.c -o slim.o && ar rcs libslim.a slim.o &&
  gcc -O2 -flto -ffat-lto-objects -c util.c -o fat.o &&
  printf 'int table_entry = 1;\n' >data.c &&
  gcc -O2 -flto -ffat-lto-objects -c data.c -o fat_data.o &&
  printf 'not an object file\n' >junk.o && : >zero.a && ar rcs members_none.a &&
  mkdir -p "with blank" && cp x/util.o "with blank/bad helper.o" &&
  ar rcs libmix.a clean.o "with blank/bad helper.o" &&
  printf 'void *malloc(unsigned long);\n__attribute__((section(".init.tables"), used))\nvoid *(*const table[])(unsigned long) = {malloc};\n' >table.c &&
  gcc -O2 -c table.c -o table.o && mkdir -p libmeson.a.p &&
  cp x/util.o libmeson.a.p/src_util_u_debug.c.o && ar rcs libmeson.a libmeson.a.p/src_util_u_debug.c.o &&
  mkdir -p libsub.a.p && cp x/util.o libsub.a.p/u_debug.c.o &&
  cp x/util.o libsub.a.p/.._top_helper.c.o &&
  cp x/util.o libsub.a.p/meson-generated_.._.._u_format_table.c.o &&
  cp x/util.o libsub.a.p/meson-generated_.._.._vk_dispatch_table.c.o &&
  ar rcsT libsub.a libsub.a.p/u_debug.c.o libsub.a.p/.._top_helper.c.o \
    libsub.a.p/meson-generated_.._.._u_format_table.c.o \
    libsub.a.p/meson-generated_.._.._vk_dispatch_table.c.o &&
  mkdir -p no-objdump &&
  ln -s "$(python3 -c "import sys; print(sys.executable)")" no-objdump/python3 &&
  ln -s no-such-target dangling.a || {
  echo "FAIL: could not build the fixtures"
  exit 1
}

expect 0 "usage: alloc_audit" -- --help
expect 2 "unrecognized arguments: --alow=util" -- --alow=util libx.a
expect 2 "unrecognized arguments: --al=util" -- --al=util libx.a
expect 2 "no such file" -- missing.a
expect 2 "cannot audit dangling\.a: no such file" -- dangling.a
expect 2 "cannot audit /dev/null: not a regular file" -- /dev/null
expect 2 "cannot audit x: a directory" -- x
expect 2 "cannot audit zero\.a: an empty file \(0 bytes\): nothing to audit" -- zero.a
expect 2 "cannot audit members_none\.a: an archive with no object files: nothing to audit" -- \
  libclean.a members_none.a
expect 0 "1 file\(s\) clean \(1 object file\(s\)\)" -- libclean.a
expect 1 "^libx\.a\(util\.o\): util_alloc references malloc" -- libx.a liby.a
expect 1 "^liby\.a\(util\.o\): util_alloc references malloc" -- libx.a liby.a
expect 0 "2 file\(s\) clean" -- --allow=util libx.a liby.a
expect 1 "format_number references asprintf" -- formats.o
expect 1 "format_number references __asprintf_chk" -- fortified.o
expect 2 "cannot audit libutil\.so: a linked executable or shared library" -- libutil.so
expect 2 "cannot audit program: a linked executable or shared library" -- program
expect 2 "cannot audit libslim\.a\(slim\.o\): a slim LTO object.*-ffat-lto-objects" -- libslim.a
expect 1 "^fat\.o: util_alloc references malloc" -- fat.o
expect 0 "1 file\(s\) clean" -- fat_data.o
expect 2 "cannot audit junk\.o: objdump failed: .*file format not recognized" -- junk.o
# Names with a blank (an object, a build directory): the finding names the right member, which
# --allow then allows; the others are not charged with it.
expect 1 "^libmix\.a\(bad helper\.o\): util_alloc references malloc" -- libmix.a
expect 1 "^libmix\.a\(bad helper\.o\)" -- --allow=clean libmix.a
expect 0 "1 file\(s\) clean \(2 object file\(s\)\)" -- --allow="bad helper" libmix.a
expect 1 "^with blank/bad helper\.o: util_alloc references malloc" -- "with blank/bad helper.o"
# A Meson parent's object is named after its source's path (src/util/u_debug.c is
# src_util_u_debug.c.o): its file name or its path allows it, and the hint names its stem. Only
# there is a stem's last part taken as a name: util.o is not allowed by "til".
expect 1 "allow = \[\.\.\.\] with a reason: --allow=src_util_u_debug\)" -- libmeson.a
expect 0 "1 file\(s\) clean" -- --allow=u_debug libmeson.a
expect 0 "1 file\(s\) clean" -- --allow=u_debug.c libmeson.a
expect 0 "1 file\(s\) clean" -- --allow=src/util/u_debug.c libmeson.a
expect 0 "1 file\(s\) clean" -- --allow=src_util_u_debug libmeson.a
expect 1 "^libmeson\.a\(src_util_u_debug\.c\.o\)" -- --allow=other/u_debug.c libmeson.a
expect 1 "^libx\.a\(util\.o\)" -- --allow=til libx.a
# Meson's other forms, in a thin archive as Meson makes them: a source in the library's own
# directory (src/util/u_debug.c for a library declared in src/util), one from a parent
# directory, generated ones. Each can be allowed, by name or by path, and the hint names each by
# its own name, never by a prefix the others share.
expect 1 "with a reason: --allow=top_helper,u_debug,u_format_table,vk_dispatch_table\)" -- \
  libsub.a
expect 0 "1 file\(s\) clean \(4 object file\(s\)\)" -- \
  --allow=src/util/u_debug.c,../top_helper.c,u_format_table,vk_dispatch_table libsub.a
expect 1 "with a reason: --allow=vk_dispatch_table\)" -- \
  --allow=u_debug.c,top_helper,src/util/format/u_format_table.c libsub.a
expect 1 "with a reason: --allow=top_helper,u_debug,u_format_table,vk_dispatch_table\)" -- \
  --allow=meson-generated_,.._ libsub.a
# No objdump to read the objects with: a bad setup (2), not a finding (1).
log="$(PATH="$out/no-objdump" "$audit" libx.a 2>&1)"
rc=$?
echo "== alloc_audit libx.a without objdump -> $rc: $log"
[ "$rc" -eq 2 ] || fail "alloc_audit without objdump: exit $rc, expected 2"
grep -q "objdump (binutils) not found" <<<"$log" || fail "alloc_audit without objdump: $log"
# A table in a data section whose name looks like code's is read as data.
expect 1 "^table\.o: <data in \.init\.tables> references malloc" -- table.o

if [ "$failures" -ne 0 ]; then
  echo "alloc_audit_cli_test: $failures failure(s)"
  exit 1
fi
echo "alloc_audit_cli_test passed"
