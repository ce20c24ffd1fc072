#!/usr/bin/env python3
"""alloc_audit — the checker behind alloc_audit_test (mesa_alloc/defs.bzl).

usage: alloc_audit.py [--allow=obj1,obj2] [--expect=sym1,sym2] ARCHIVE_OR_OBJECT...

Reads the relocations of every object file (`objdump -dr`, so each reference is tied to the
function that makes it) and reports each reference to libc allocation (malloc, calloc, realloc,
reallocarray, free, strdup, strndup, aligned_alloc, posix_memalign, memalign, valloc, pvalloc)
or to the global operator new/delete in any form (_Znwm, _Znam, _ZdlPv, _ZdaPv and their sized,
aligned and nothrow variants). References from data (function-pointer tables) count too, in
any section that is not code.

One exemption, by rule rather than by list: a deleting destructor (`D0`) calling a global
operator delete. Every polymorphic class emits one, and it only runs for an object created by a
global new-expression — which is itself a reference to operator new, reported where it is made.

Exit 0 when nothing is found (or, with --expect, when violations name every expected symbol);
exit 1 otherwise, with one line per violation: "<object>: <function> references <symbol>".
"""
import os
import re
import shutil
import subprocess
import sys

LIBC = re.compile(r"^(malloc|calloc|realloc|reallocarray|free|strdup|strndup|aligned_alloc|"
                  r"posix_memalign|memalign|valloc|pvalloc)$")
GLOBAL_NEW = re.compile(r"^_Zn[wa][jm]")
GLOBAL_DELETE = re.compile(r"^_Zd[la]Pv")
DELETING_DESTRUCTOR = re.compile(r"D0Ev$")

OBJECT_LINE = re.compile(r"^(\S+):\s+file format ")
FUNCTION_LINE = re.compile(r"^[0-9a-f]+ <(.+)>:$")
RELOC = re.compile(r"\bR_[A-Z0-9_]+\s+([^\s+@-]+)")
RELOCATION_SECTION = re.compile(r"^RELOCATION RECORDS FOR \[(.+)\]:$")
CODE_SECTION = re.compile(r"^\.(text|init|fini)(\..*)?$")
# Placement new/delete (`operator new(size_t, void *)`) construct in place; they allocate nothing.
PLACEMENT = re.compile(r"^_Z(n[wa][jm]Pv|d[la]PvS_)$")


def forbidden(symbol):
    if PLACEMENT.match(symbol):
        return False
    return bool(LIBC.match(symbol) or GLOBAL_NEW.match(symbol) or GLOBAL_DELETE.match(symbol))


def exempt(function, symbol):
    return bool(DELETING_DESTRUCTOR.search(function) and GLOBAL_DELETE.match(symbol))


def demangle(names):
    if not names or shutil.which("c++filt") is None:
        return {n: n for n in names}
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return dict(zip(names, out.stdout.splitlines()))


def references(path):
    """Yields (object, function, symbol) for every relocation naming a forbidden symbol."""
    code = subprocess.run(["objdump", "-dr", "-w", path], capture_output=True, text=True)
    if code.returncode != 0:
        sys.exit(f"alloc_audit: objdump failed on {path}: {code.stderr.strip()}")
    obj, function = path, "?"
    for line in code.stdout.splitlines():
        m = OBJECT_LINE.match(line)
        if m:
            obj, function = m.group(1), "?"
            continue
        m = FUNCTION_LINE.match(line)
        if m:
            function = m.group(1)
            continue
        m = RELOC.search(line)
        if m and forbidden(m.group(1)):
            yield obj, function, m.group(1)
    # Data relocations (a table holding &free), in every section that is not code: -d above
    # covers code. Which section a table lands in depends on the flags (.data, .data.rel,
    # .data.rel.ro, .rodata, their -fdata-sections subsections, .init_array, ...).
    data = subprocess.run(["objdump", "-r", "-w", path], capture_output=True, text=True)
    obj, section = path, ""
    for line in data.stdout.splitlines():
        m = OBJECT_LINE.match(line)
        if m:
            obj, section = m.group(1), ""
            continue
        m = RELOCATION_SECTION.match(line)
        if m:
            section = m.group(1)
            continue
        fields = line.split()
        if (not CODE_SECTION.match(section) and len(fields) >= 3 and
                re.match(r"^[0-9a-f]+$", fields[0])):
            symbol = re.split(r"[+@-]", fields[2])[0]
            if forbidden(symbol):
                yield obj, f"<data in {section}>", symbol


def main(argv):
    allow, expect, files = [], [], []
    for arg in argv:
        if arg.startswith("--allow="):
            allow = [a for a in arg[len("--allow="):].split(",") if a]
        elif arg.startswith("--expect="):
            expect = [e for e in arg[len("--expect="):].split(",") if e]
        else:
            files.append(arg)
    if not files:
        sys.exit("alloc_audit: no object files given")
    if shutil.which("objdump") is None:
        sys.exit("alloc_audit: objdump (binutils) not found")

    found = set()
    for path in files:
        for obj, function, symbol in references(path):
            if os.path.basename(obj).split(".")[0] in allow or exempt(function, symbol):
                continue
            found.add((obj, function, symbol))

    names = demangle(sorted({f for _, f, _ in found} | {s for _, _, s in found}))
    lines = sorted(f"{obj}: {names.get(fn, fn)} references {sym} ({names.get(sym, sym)})"
                   for obj, fn, sym in found)
    symbols = {sym for _, _, sym in found}

    if expect:
        missing = [e for e in expect if e not in symbols]
        if not found or missing:
            print(f"alloc_audit: expected violations naming {', '.join(expect)}; "
                  f"missing {', '.join(missing) or 'all'}; found:", file=sys.stderr)
            print("\n".join(lines) or "(nothing)", file=sys.stderr)
            return 1
        print("alloc_audit: found the expected violations:")
        print("\n".join(lines))
        return 0

    if found:
        print("alloc_audit: FAILED - these object files allocate behind mesa_alloc's back:",
              file=sys.stderr)
        print("\n".join(lines), file=sys.stderr)
        print("(route them through mesa_alloc, or add the object to allow = [...] with a reason)",
              file=sys.stderr)
        return 1
    print(f"alloc_audit: {len(files)} archive(s) clean")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
