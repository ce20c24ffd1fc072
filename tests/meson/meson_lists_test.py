#!/usr/bin/env python3
"""meson_lists_test — fails when a source file is missing from the Meson lists.

usage: meson_lists_test.py SOURCE_ROOT

Bazel globs its sources; Meson cannot, so every file is listed by name in the meson.build of its
directory (or of an ancestor). This test walks mesa_alloc/, containers/, tests/, benchmarks/,
examples/ and tools/ and requires that each .c and .cc file there — and each header of
mesa_alloc/ and containers/, which `meson install` must list — is named, as a quoted path
relative to that meson.build, in some meson.build. A new source added for Bazel alone therefore
breaks `meson test` until one line is added to the right meson.build. (A listed file that does
not exist is caught by Meson itself: files() fails at configure time.)
"""
import os
import re
import sys

CHECKED_DIRS = ["mesa_alloc", "containers", "tests", "benchmarks", "examples", "tools"]
HEADER_DIRS = ["mesa_alloc", "containers"]  # installed: every header must be listed
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
                elif name.endswith(".h") and top in HEADER_DIRS:
                    yield rel


def main(argv):
    if len(argv) != 1 or not os.path.isdir(argv[0]):
        sys.exit("usage: meson_lists_test.py SOURCE_ROOT")
    root = argv[0]
    listed = listed_paths(root)
    required = sorted(required_paths(root))
    missing = [path for path in required if path not in listed]
    if missing:
        print("meson_lists_test: FAILED - these files are not in any meson.build list, so the "
              "Meson build does not compile, run or install them:", file=sys.stderr)
        for path in missing:
            print(f"  {path}  (add it to {os.path.dirname(path) or '.'}/meson.build "
                  "or the nearest parent meson.build)", file=sys.stderr)
        return 1
    print(f"meson_lists_test: all {len(required)} sources and installed headers are listed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
