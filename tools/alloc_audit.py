#!/usr/bin/env python3
"""alloc_audit — the checker behind alloc_audit_test (mesa_alloc/defs.bzl).

usage: alloc_audit.py [--allow=obj1,obj2] [--expect=sym1,sym2] ARCHIVE_OR_OBJECT...

Reads the relocations of every object file (`objdump -dr`, so each reference is tied to the
function that makes it) and reports each reference to libc allocation (malloc, calloc, realloc,
reallocarray, free, strdup, strndup, aligned_alloc, posix_memalign, memalign, valloc, pvalloc,
glibc's own __libc_malloc, __libc_free & co., __strdup, __strndup, and the libc functions that
return or grow malloc'd memory: asprintf, vasprintf, wcsdup, getline, getdelim, open_memstream,
open_wmemstream, get_current_dir_name, canonicalize_file_name, backtrace_symbols, scandir,
scandirat, tempnam, argz_* and envz_*, and the forms a fortified build calls: __asprintf_chk,
__vasprintf_chk, __getdelim; realpath and getcwd are not listed, as they allocate only when
given no buffer) or to the global operator new/delete
in any form (_Znwm, _Znam, _ZdlPv, _ZdaPv and their sized, aligned and nothrow variants), or to
std::pmr::get_default_resource() and std::pmr::new_delete_resource() (operator new reached
through std::pmr: a container made or copied without its resource, a temporary key, substr()),
or to the members of std::string and std::wstring (on std::allocator) that allocate or free:
reserve, append, assign, operator+=, operator=, a copying constructor, the destructor and their
_M_* helpers, which libstdc++.so runs out of line; std::getline and operator>> into such a
string; and the string streams. References from data (function-pointer tables) count too, in
any section that is not code (objdump -h's flag CODE, not the section's name).

It reads object files and archives of them, nothing else: a linked executable or shared library
has no relocations left to read, and a slim LTO object (-flto without -ffat-lto-objects) has no
machine code yet, so either is refused (exit 2) rather than passed as clean; so is an input with
nothing to audit (an empty file, an archive with no object files) or one that is not a regular
file. --allow names
objects by their file name without extension (`--allow=u_debug` allows u_debug.o in any
archive), or by their source's path (`--allow=src/util/u_debug.c`); findings name the archive
and the member: `libfoo.a(u_debug.o)`. Meson names an object after its source's path from the
target's directory, with `/` made `_` (src/util/u_debug.c is `u_debug.c.o` in a library
declared in src/util, `src_util_u_debug.c.o` in one declared at the top, `.._u_debug.c.o` in one
declared in src/util/tests, `meson-generated_..._u_debug.c.o` when the build generated it):
`u_debug` and `src/util/u_debug.c` allow each of these, as does the stem a finding's hint prints
(`src_util_u_debug`, or `u_debug` for the parent-directory and generated forms).

One exemption, by rule rather than by list: a deleting destructor (`D0`) calling a global
operator delete. Every polymorphic class emits one, and it only runs for an object created by a
global new-expression — which is itself a reference to operator new, reported where it is made.

Exit 0 when nothing is found (or, with --expect, when violations name every expected symbol);
exit 1 otherwise, with one line per violation: "<object>: <function> references <symbol>";
exit 2 for a bad option, an input it cannot audit, or no objdump to read it with.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

# With -O2 -D_FORTIFY_SOURCE (hardened builds), asprintf and vasprintf are called as their _chk
# forms and getline as __getdelim. __libc_malloc & co. are glibc's own allocators under their
# exported names, and __strdup/__strndup what older glibc's <string.h> made of strdup at -O2.
LIBC = re.compile(r"^(malloc|calloc|realloc|reallocarray|free|strdup|strndup|aligned_alloc|"
                  r"posix_memalign|memalign|valloc|pvalloc|asprintf|vasprintf|__asprintf|"
                  r"__asprintf_chk|__vasprintf_chk|wcsdup|getline|getdelim|__getdelim|"
                  r"open_memstream|open_wmemstream|get_current_dir_name|canonicalize_file_name|"
                  r"backtrace_symbols|scandir|scandir64|scandirat|scandirat64|tempnam|"
                  r"__libc_(malloc|calloc|realloc|reallocarray|free|memalign|valloc|pvalloc)|"
                  r"__strdup|__strndup|argz_(add|add_sep|append|create|create_sep|delete|insert|"
                  r"replace)|envz_(add|merge|remove|strip))$")
GLOBAL_NEW = re.compile(r"^_Zn[wa][jm]")
# The two ways to reach operator new through std::pmr without naming it: the default resource
# (a default-constructed container or polymorphic_allocator, a plain copy of a container, a
# temporary key or substr) and new_delete_resource(). libstdc++.so calls operator new for them,
# out of sight of the relocations read here, so the references themselves are the finding.
PMR_DEFAULT = re.compile(r"^_ZNSt3pmr(20get_default_resource|19new_delete_resource)Ev$")
# The same holds for std::string and std::wstring on std::allocator: libstdc++ declares them
# `extern template`, so growing, assigning or destroying one runs its out-of-line members
# (reserve, _M_append, _M_replace, _M_mutate, _M_create, ~basic_string) inside libstdc++.so,
# which calls operator new and delete there. Their observers (size, find, compare, swap, the
# default, move and allocator constructors) allocate nothing and are not findings. Both ABIs:
# std::__cxx11::basic_string, and the old copy-on-write Ss/Sb (whose _Rep does the allocating).
STRING_MEMBER = re.compile(r"^_ZNK?(?:St7__cxx1112basic_stringI([cw])St11char_traitsI\1ESaI\1EE"
                           r"|Ss|SbIwSt11char_traitsIwESaIwEE)(?:4_Rep)?(?P<member>.+)$")
STRING_GROWS = {"_M_create", "_M_mutate", "_M_append", "_M_replace", "_M_replace_aux",
                "_M_assign", "_M_construct", "_M_construct_aux", "_M_dispose", "_M_destroy",
                "_M_leak", "_M_leak_hard", "_M_clone", "_S_create", "_S_construct",
                "_S_construct_aux", "reserve", "resize", "resize_and_overwrite",
                "__resize_and_overwrite", "shrink_to_fit", "append", "assign", "insert",
                "replace", "push_back", "substr"}
# Constructors that allocate nothing: default (v), move (O...), and from an allocator alone
# (S3_ in the new ABI, SaIcE in the old std::string, S1_ in the old std::wstring).
STRING_QUIET_CONSTRUCTOR = re.compile(r"^C[124]E(v|O.*|RKS3_|RKSaIcE|RKS1_)$")
# The string streams on std::allocator (extern templates too: their buffer grows in
# libstdc++.so) and reading into a std::string (std::getline, operator>>).
STRING_STREAM = re.compile(r"^_Z(?:T[VT]N?|NK?)St(?:7__cxx11)?(?:15basic_stringbuf|"
                           r"19basic_istringstream|19basic_ostringstream|18basic_stringstream)"
                           r"I([cw])St11char_traitsI\1ESaI\1EE")
STRING_READ = re.compile(r"^_ZSt(?:7getline|rs)I([cw])St11char_traitsI\1ESaI\1EE")
GLOBAL_DELETE = re.compile(r"^_Zd[la]Pv")
DELETING_DESTRUCTOR = re.compile(r"D0Ev$")

# "NAME:     file format elf64-x86-64": the name may hold blanks ("bad helper.o", a build
# directory under "My Projects").
OBJECT_LINE = re.compile(r"^(.+):\s+file format \S+$")
ARCHIVE_LINE = re.compile(r"^In archive (.+):$")
FUNCTION_LINE = re.compile(r"^[0-9a-f]+ <(.+)>:$")
RELOC = re.compile(r"\bR_[A-Z0-9_]+\s+([^\s+@-]+)")
RELOCATION_SECTION = re.compile(r"^RELOCATION RECORDS FOR \[(.+)\]:$")
# A line of `objdump -h -w`: index, name, size, VMA, LMA, file offset, alignment, flags.
SECTION_LINE = re.compile(r"^\s*\d+\s+(\S+)\s+(?:[0-9a-f]+\s+){4}2\*\*\d+\s+(.*)$")
# Placement new/delete (`operator new(size_t, void *)`) construct in place; they allocate nothing.
PLACEMENT = re.compile(r"^_Z(n[wa][jm]Pv|d[la]PvS_)$")


def forbidden(symbol):
    if PLACEMENT.match(symbol):
        return False
    return bool(LIBC.match(symbol) or GLOBAL_NEW.match(symbol) or GLOBAL_DELETE.match(symbol) or
                PMR_DEFAULT.match(symbol) or STRING_STREAM.match(symbol) or
                STRING_READ.match(symbol) or string_allocates(symbol))


def string_allocates(symbol):
    """True for a std::string (std::allocator) member that can allocate or free."""
    m = STRING_MEMBER.match(symbol)
    if not m:
        return False
    member = m.group("member")
    name = re.match(r"^(\d+)", member)
    if name:  # <length><identifier>, then its template arguments or parameters
        length = int(name.group(1))
        return member[len(name.group(1)):len(name.group(1)) + length] in STRING_GROWS
    if re.match(r"^C[124]E", member):
        return not STRING_QUIET_CONSTRUCTOR.match(member)
    # Destructors free; operator+= grows; operator= copies, except from an rvalue (a move).
    return bool(re.match(r"^(D[12]E|pLE|aSE(?!O))", member))


def exempt(function, symbol):
    return bool(DELETING_DESTRUCTOR.search(function) and GLOBAL_DELETE.match(symbol))


def demangle(names):
    if not names or shutil.which("c++filt") is None:
        return {n: n for n in names}
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return dict(zip(names, out.stdout.splitlines()))


def objdump(option, path):
    """objdump's output for `path`, or exit 2 with its reason (it cannot be audited)."""
    out = subprocess.run(["objdump", option, "-w", "--", path], capture_output=True, text=True)
    if out.returncode != 0:
        reason = out.stderr.strip() or f"exit status {out.returncode}, no message"
        if "file format not recognized" in reason:
            reason += (" (an LLVM bitcode object from clang -flto is one objdump cannot read: "
                       "audit a build without LTO)")
        print(f"alloc_audit: cannot audit {path}: objdump failed: {reason}", file=sys.stderr)
        sys.exit(2)
    return out.stdout


class Members:
    """Names each object file of objdump's output: `archive(member)`, or the path itself."""

    def __init__(self, path):
        self.path, self.archive, self.name = path, None, path

    def update(self, line):
        """True when `line` starts a new archive or object."""
        m = ARCHIVE_LINE.match(line)
        if m:
            self.archive = m.group(1)
            return True
        m = OBJECT_LINE.match(line)
        if m:
            self.name = f"{self.archive}({m.group(1)})" if self.archive else m.group(1)
            return True
        return False


def by_object(option, path):
    """(object, line) for each line of `objdump option path` within an object file's part of
    it, and (object, None) where an archive or an object file starts."""
    members = Members(path)
    for line in objdump(option, path).splitlines():
        yield (members.name, None) if members.update(line) else (members.name, line)


def unauditable(path):
    """Why `path` cannot be audited (not a regular file, empty, an archive without objects, a
    linked binary, a slim LTO object), or None."""
    if not os.path.exists(path):
        return f"{path}: no such file"
    if os.path.isdir(path):
        return f"{path}: a directory, not an object file or archive"
    if not os.path.isfile(path):
        return f"{path}: not a regular file (a device, a pipe or a socket)"
    if os.path.getsize(path) == 0:
        return f"{path}: an empty file (0 bytes): nothing to audit (did the build write it?)"
    members = Members(path)
    objects = 0
    for line in objdump("-f", path).splitlines():
        if members.update(line):
            objects += bool(OBJECT_LINE.match(line))
            continue
        if re.search(r"\b(EXEC_P|DYNAMIC)\b", line):  # the flags line under "architecture:"
            return (f"{members.name}: a linked executable or shared library has no "
                    "relocations left to read; audit the object files or archives it is linked "
                    "from")
    if objects == 0:
        return (f"{path}: an archive with no object files: nothing to audit (did the build rule "
                "compile any source?)")
    # GCC marks a slim LTO object with the symbol __gnu_lto_slim (a fat one has machine code).
    for name, line in by_object("-t", path):
        if line is not None and line.rstrip().endswith(" __gnu_lto_slim"):
            return (f"{name}: a slim LTO object has no machine code yet, only the "
                    "compiler's intermediate form; build it with -ffat-lto-objects for the "
                    "audit, or audit a build without LTO")
    return None


def code_sections(path):
    """{object: the sections objdump -d disassembles (flag CODE)}: the data pass reads the
    others, whatever their names (a table in a section called .init.tables is data)."""
    code = {}
    for name, line in by_object("-h", path):
        m = SECTION_LINE.match(line or "")
        if m and "CODE" in m.group(2).split(", "):
            code.setdefault(name, set()).add(m.group(1))
    return code


def references(path):
    """Yields (object, function, symbol) for every relocation naming a forbidden symbol."""
    function = "?"
    for name, line in by_object("-dr", path):
        if line is None:
            function = "?"
            continue
        m = FUNCTION_LINE.match(line)
        if m:
            function = m.group(1)
            continue
        m = RELOC.search(line)
        if m and forbidden(m.group(1)):
            yield name, function, m.group(1)
    # Data relocations (a table holding &free), in every section that is not code: -d above
    # covers code. Which section a table lands in depends on the flags (.data, .data.rel,
    # .data.rel.ro, .rodata, their -fdata-sections subsections, .init_array, ...).
    code = code_sections(path)
    section = ""
    for name, line in by_object("-r", path):
        if line is None:
            section = ""
            continue
        m = RELOCATION_SECTION.match(line)
        if m:
            section = m.group(1)
            continue
        fields = line.split()
        if (section not in code.get(name, ()) and len(fields) >= 3 and
                re.match(r"^[0-9a-f]+$", fields[0])):
            symbol = re.split(r"[+@-]", fields[2])[0]
            if forbidden(symbol):
                yield name, f"<data in {section}>", symbol


# A Meson object's name: its source's path (from the target's directory) with / made _, then
# the source's extension and .o; a source from a parent directory starts with .._, one the build
# generated with meson-generated_.
MESON_OBJECT = re.compile(r"\.(c|cc|cpp|cxx|c\+\+|m|mm|s|S)\.o$")


def member_stem(name):
    """What --allow matches an object by: u_debug for libfoo.a(u_debug.o), dir/u_debug.pic.o or
    Meson's u_debug.c.o; for a Meson object its source's path as Meson spells it, without the
    parent-directory and generated prefixes: src_util_u_debug for src_util_u_debug.c.o,
    top_helper for .._top_helper.c.o, u_format_table for
    meson-generated_.._.._u_format_table.c.o."""
    if name.endswith(")") and "(" in name:
        name = name[name.rindex("(") + 1:-1]
    base = os.path.basename(name)
    meson = MESON_OBJECT.search(base)
    if meson is None:
        return base.split(".")[0]
    stem = base[:meson.start()]
    if stem.startswith("meson-generated_"):
        stem = stem[len("meson-generated_"):]
    while stem.startswith(".._"):
        stem = stem[len(".._"):]
    return stem or base


def allow_entry(entry):
    """An --allow entry as (name, path_spellings): a bare name (u_debug, u_debug.c) is the name
    without extension; a source path (src/util/u_debug.c) is the stems of the objects it may be
    compiled to, one per trailing part of the path, as Meson spells them (u_debug for a target
    in src/util, util_u_debug for one in src, src_util_u_debug for one at the top)."""
    parts = [p for p in entry.split("/") if p not in ("", ".", "..")]
    if not parts:
        return entry, ()
    parts[-1] = parts[-1].split(".")[0]
    if "/" not in entry:
        return parts[-1], ()
    return None, tuple("_".join(parts[i:]) for i in range(len(parts)))


def allowed(obj, allow):
    """Whether an --allow entry names the object. A bare name is its stem, or for a Meson object
    the stem's last path components (`u_debug` allows src_util_u_debug.c.o; a name with _ in it
    may also read as a path there: `debug` allows it too, though not u_debug.o). A source path
    allows the objects it may be compiled to, and nothing else."""
    stem = member_stem(obj)
    meson = MESON_OBJECT.search(obj.rstrip(")")) is not None
    for name, spellings in allow:
        if name is not None and (stem == name or (meson and stem.endswith("_" + name))):
            return True
        if stem in spellings:
            return True
    return False


def main(argv):
    parser = argparse.ArgumentParser(
        prog="alloc_audit", description="\n\n".join(__doc__.split("\n\n")[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--allow", default="", metavar="OBJ1,OBJ2",
                        help="objects (file names without extension) allowed to allocate")
    parser.add_argument("--expect", default="", metavar="SYM1,SYM2",
                        help="symbols the violations must name (a negative test)")
    parser.add_argument("files", nargs="+", metavar="ARCHIVE_OR_OBJECT")
    args = parser.parse_args(argv)
    allow = [allow_entry(a) for a in args.allow.split(",") if a]
    expect = [e for e in args.expect.split(",") if e]
    if shutil.which("objdump") is None:
        print("alloc_audit: objdump (binutils) not found", file=sys.stderr)
        return 2
    for path in args.files:
        why = unauditable(path)
        if why:
            print(f"alloc_audit: cannot audit {why}", file=sys.stderr)
            return 2

    found = set()
    objects = 0
    for path in args.files:
        objects += sum(1 for line in objdump("-f", path).splitlines() if OBJECT_LINE.match(line))
        for obj, function, symbol in references(path):
            if allowed(obj, allow) or exempt(function, symbol):
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
        stems = ",".join(sorted({member_stem(obj) for obj, _, _ in found}))
        print("(route them through mesa_alloc, or add the object to allow = [...] with a reason: "
              f"--allow={stems})", file=sys.stderr)
        return 1
    print(f"alloc_audit: {len(args.files)} file(s) clean ({objects} object file(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
