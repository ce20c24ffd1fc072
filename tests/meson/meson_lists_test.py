#!/usr/bin/env python3
"""meson_lists_test — fails when a source file is missing from the Meson lists.

usage: meson_lists_test.py SOURCE_ROOT
       meson_lists_test.py --self-test    (the check catches an unlisted file, and only that)

Bazel globs its sources; Meson cannot, so every file is listed by name in the meson.build of its
directory (or of an ancestor). This test walks mesa_alloc/, containers/, tests/, benchmarks/,
examples/ and tools/ and requires that each of these is named, as a quoted path relative to that
meson.build, in some meson.build:
  - every .c and .cc file;
  - every test script (.sh, .py) under tests/;
  - every header of mesa_alloc/ and containers/ (but not containers/testing/, which holds test
    fixtures), because `meson install` lists what it installs.
A new source or test added for Bazel alone therefore breaks `meson test` until one line is added
to the right meson.build. (A listed file that does not exist is caught by Meson itself: files()
fails at configure time.)

It also requires a `timeout:` in every test() and benchmark() call of every meson.build: Meson's
default is 30 s, which a test that runs the compiler or the whole suite's programs passes on a
loaded 2-core machine (a CI run failed so, with the test itself correct).
"""
import os
import re
import sys
import tempfile

CHECKED_DIRS = ["mesa_alloc", "containers", "tests", "benchmarks", "examples", "tools"]
HEADER_DIRS = ["mesa_alloc", "containers"]  # installed: every header must be listed
NOT_INSTALLED = ["containers/testing"]  # test fixtures: their headers are not installed
SCRIPT_TEST_DIRS = ["tests"]  # where a .sh or .py file is a test (sh_test) to register too
QUOTED = re.compile(r"'([^'\n]+)'")
COMMENT = re.compile(r"#.*$", re.MULTILINE)


def listed_paths(root):
    """Every quoted string of every meson.build, resolved relative to its directory."""
    listed = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "build", "bazel-"))]
        if "meson.build" not in filenames:
            continue
        with open(os.path.join(dirpath, "meson.build"), encoding="utf-8") as f:
            text = COMMENT.sub("", f.read())
        rel_dir = os.path.relpath(dirpath, root)
        for literal in QUOTED.findall(text):
            listed.add(os.path.normpath(os.path.join(rel_dir, literal)))
    return listed


def required_paths(root):
    for top in CHECKED_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                if name.endswith((".c", ".cc")):
                    yield rel
                elif name.endswith((".sh", ".py")) and top in SCRIPT_TEST_DIRS:
                    yield rel
                elif (name.endswith(".h") and top in HEADER_DIRS and
                      not any(rel.startswith(d + os.sep) for d in NOT_INSTALLED)):
                    yield rel


TEST_CALL = re.compile(r"(?<![\w.])(test|benchmark)\s*\(")


def call_end(text, open_paren):
    """The index just past the parenthesis that closes the one at `open_paren`."""
    depth, i = 0, open_paren
    while i < len(text):
        c = text[i]
        if c == "'":
            i = text.find("'", i + 1)
            if i < 0:
                return len(text)
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def tests_without_timeout(root):
    """(meson.build path, line, call's first line) of each test() or benchmark() call with no
    `timeout:` argument."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "build", "bazel-")))
        if "meson.build" not in filenames:
            continue
        path = os.path.join(dirpath, "meson.build")
        with open(path, encoding="utf-8") as f:
            text = COMMENT.sub("", f.read())
        for m in TEST_CALL.finditer(text):
            call = text[m.start():call_end(text, m.end() - 1)]
            if not re.search(r"\btimeout\s*:", call):
                line = text.count("\n", 0, m.start()) + 1
                found.append((os.path.relpath(path, root), line, call.split("\n")[0]))
    return found


def missing_paths(root):
    listed = listed_paths(root)
    return [path for path in sorted(required_paths(root)) if path not in listed]


def self_test():
    """A tree where tests/b_test.cc, tests/c_test.sh and mesa_alloc/new.h are unlisted, and a
    commented-out entry does not count."""
    with tempfile.TemporaryDirectory() as root:
        files = {
            "meson.build": "subdir('mesa_alloc')\n",
            "mesa_alloc/meson.build": "lib = files('a.cc', 'internal/x.cc')  # 'old.h'\n"
                                      "install_headers('a.h')\n",
            "mesa_alloc/a.cc": "", "mesa_alloc/a.h": "", "mesa_alloc/new.h": "",
            "mesa_alloc/internal/x.cc": "", "mesa_alloc/old.h": "",
            "tests/meson.build": "gtest_suites = [\n  'a_test.cc',\n]\n"
                                 "test('timed', exe, args: ['(x'], timeout: 600)\n"
                                 "test('untimed', exe,\n     args: ')')  # timeout: 1\n"
                                 "benchmark('bench', exe)\nlatest_test('not a test call')\n",
            "tests/a_test.cc": "", "tests/b_test.cc": "", "tests/helper.h": "",
            "tests/c_test.sh": "",
        }
        for path, text in files.items():
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), "w", encoding="utf-8") as f:
                f.write(text)
        found = missing_paths(root)
        expected = ["mesa_alloc/new.h", "mesa_alloc/old.h", "tests/b_test.cc", "tests/c_test.sh"]
        if found != expected:
            print(f"meson_lists_test --self-test: FAILED, expected {expected}, got {found}",
                  file=sys.stderr)
            return 1
        untimed = [(path, line) for path, line, _ in tests_without_timeout(root)]
        expected_untimed = [("tests/meson.build", 5), ("tests/meson.build", 7)]
        if untimed != expected_untimed:
            print(f"meson_lists_test --self-test: FAILED, expected tests without a timeout at "
                  f"{expected_untimed}, got {untimed}", file=sys.stderr)
            return 1
    print("meson_lists_test --self-test: unlisted sources and headers, and tests without a "
          "timeout, are caught")
    return 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    if len(argv) != 1 or not os.path.isdir(argv[0]):
        sys.exit("usage: meson_lists_test.py SOURCE_ROOT")
    root = argv[0]
    missing = missing_paths(root)
    if missing:
        print("meson_lists_test: FAILED - these files are not in any meson.build list, so the "
              "Meson build does not compile, run or install them:", file=sys.stderr)
        for path in missing:
            print(f"  {path}  (add it to {os.path.dirname(path) or '.'}/meson.build "
                  "or the nearest parent meson.build)", file=sys.stderr)
    untimed = tests_without_timeout(root)
    if untimed:
        print("meson_lists_test: FAILED - these tests have no timeout: argument, so Meson kills "
              "them at its default of 30 s:", file=sys.stderr)
        for path, line, call in untimed:
            print(f"  {path}:{line}: {call}", file=sys.stderr)
    if missing or untimed:
        return 1
    count = len(list(required_paths(root)))
    print(f"meson_lists_test: all {count} sources and installed headers are listed, and every "
          "test has a timeout")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
