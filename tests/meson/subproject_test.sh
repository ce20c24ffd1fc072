#!/bin/bash
# Subproject test: a parent Meson project (tests/meson/parent) gets mesa_alloc with
#   dependency('mesa_alloc', fallback: ['mesa_alloc', 'mesa_alloc_dep'])
# from subprojects/mesa_alloc (a link to this source tree), static (default_library=static, as
# Mesa links its own libraries into each driver), builds a C program with poison.h forced on and
# a C++ program (which also takes dependency('mesa_alloc_containers')), both with
# -fvisibility=hidden, and runs both; the C program's compile line has no Abseil
# flag. The parent sets cpp_eh=none (the library's files must still build with exceptions) and
# cpp_rtti=false,
# as Mesa must when its LLVM has no RTTI; the test checks that every C++ file of the subproject
# was compiled with -fno-rtti, so the library, the Vulkan bridge and the containers are proven
# to build and work without RTTI. --force-fallback-for makes sure the subproject, not an
# installed mesa_alloc.pc, is what is found. The parent runs the link-level audit on its driver's
# archive (find_program('mesa_alloc_audit')), and nothing of mesa_alloc is installed with it.
#
#   subproject_test.sh SOURCE_ROOT
set -euo pipefail
[ -d "${1:-}" ] || { echo "usage: $0 SOURCE_ROOT" >&2; exit 1; }
source_root="$(cd "$1" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp -r "$source_root/tests/meson/parent" "$work/parent"
mkdir "$work/parent/subprojects"
ln -s "$source_root" "$work/parent/subprojects/mesa_alloc"

meson setup "$work/build" "$work/parent" --force-fallback-for=mesa_alloc >"$work/setup.log" 2>&1 ||
  { cat "$work/setup.log"; echo "FAIL: meson setup of the parent project failed" >&2; exit 1; }
grep -q "Subproject mesa_alloc finished" "$work/setup.log" ||
  { cat "$work/setup.log"; echo "FAIL: mesa_alloc was not configured as a subproject" >&2; exit 1; }
python3 - "$work/build/compile_commands.json" <<'EOF'
import json, sys
commands = json.load(open(sys.argv[1]))
cpp = [c for c in commands if c["file"].endswith(".cc") and "subprojects" in c["file"]]
missing = [c["file"] for c in cpp if "-fno-rtti" not in c["command"]]
if not cpp or missing:
    sys.exit("FAIL: subproject C++ files not compiled with -fno-rtti: %s" % (missing or "none found"))
print("subproject: %d C++ files compiled with -fno-rtti" % len(cpp))
# The parent turns exceptions off for its whole build; the library keeps them.
no_eh = [c["file"] for c in cpp if "-fno-exceptions" in c["command"]]
if no_eh:
    sys.exit("FAIL: subproject C++ files compiled with -fno-exceptions: %s" % no_eh)
# The C driver takes dependency('mesa_alloc') alone: no Abseil flags reach its compile line.
driver = [c for c in commands if c["file"].endswith("parent_driver.c")]
leaked = [c["file"] for c in driver if "absl" in c["command"] or "NOMINMAX" in c["command"]]
if not driver or leaked:
    sys.exit("FAIL: the C driver's compile line has Abseil's flags: %s" % (leaked or "no command"))
EOF
# Every default target, as a parent's build makes them (meson test builds only the tests' own).
meson compile -C "$work/build" >"$work/compile.log" 2>&1 ||
  { cat "$work/compile.log"; echo "FAIL: building the parent project failed" >&2; exit 1; }
meson test -C "$work/build" --print-errorlogs
# Linked statically into a module without a version script, the library exports nothing.
symbols="$(nm -D --defined-only "$work/build/libparent_icd.so")" ||
  { echo "FAIL: cannot read the driver module's dynamic symbols" >&2; exit 1; }
# Ours: the C API and anything in namespace mesa (std:: templates instantiated on our types keep
# libstdc++'s default visibility, as they do in any library built hidden).
exported="$(grep -E ' (mesa_|_ZN4mesa|_ZNK4mesa|_ZT[VIS]N?4mesa)' <<<"$symbols" || true)"
if [ -n "$exported" ]; then
  echo "FAIL: the driver module exports mesa_alloc's symbols:" >&2
  echo "$exported" >&2
  exit 1
fi
# A driver's install must not ship mesa_alloc's headers, archives and .pc files.
installed="$(meson introspect --installed "$work/build")"
if [ "$installed" != "{}" ]; then
  echo "FAIL: the subproject installs files with its parent: $installed" >&2
  exit 1
fi
libraries="$(cd "$work/build/subprojects/mesa_alloc" &&
  find . -name 'libmesa_alloc.*' -type f | sort)"
if [ "$libraries" != "./mesa_alloc/libmesa_alloc.a" ]; then
  echo "FAIL: expected the subproject to build only mesa_alloc/libmesa_alloc.a, found:" \
    "$libraries" >&2
  exit 1
fi
echo "subproject test passed"
