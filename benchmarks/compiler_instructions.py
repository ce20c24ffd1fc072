#!/usr/bin/env python3
"""compiler_instructions — the compiler benchmark's comparison without the clock.

usage: compiler_instructions.py COMPILER_BACKEND [--shaders N] [--size S] [--jobs J]
                                [--allocators std,pmr_monotonic,arena,arena_static] [--json]

Runs the example compiler's command-line driver (//examples/compiler_backend, build it with
-c opt) once per allocator under valgrind's cachegrind and prints, per allocator: instructions
executed, simulated L1 data-cache misses, both as std::allocator's count over this one, and
the instructions spent in glibc malloc/free and global operator new/delete (--json: the raw
counts, one object per allocator). These counts are
the same on every run, so they settle what the timed benchmark (compiler_benchmark, whose
ratios drift with a shared VM's speed) cannot: how much of std::allocator's work an arena
removes, and how far that is from removing the allocator altogether (the last line: std's
instructions outside the allocator against the arena's total).

Every allocator must print the same `checksum:` line; a mismatch is an error (exit 1). Needs
valgrind, and libc6-dbg for the glibc function names (setup.sh installs both).

pmr_newdelete is not offered: the driver puts a tracking_resource under it, so it would count
the tracker on every allocation, which the benchmark's pmr_newdelete does not have. (The arena
and monotonic variants have the same trackers, but those see only block requests.)

Example:
  bazel build -c opt //examples/compiler_backend:compiler_backend
  benchmarks/compiler_instructions.py bazel-bin/examples/compiler_backend/compiler_backend
"""
import argparse
import collections
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ALLOCATORS = ["std", "pmr_monotonic", "arena", "arena_static"]
# glibc's allocator lives in malloc/*.c (named with libc6-dbg); operator new/delete are ours
# or libstdc++'s thin wrappers over it.
ALLOCATOR_FILE = re.compile(r"(^|/)malloc/[^/]+\.c$")
ALLOCATOR_FUNCTION = re.compile(r"^(operator new|operator delete)")
CHECKSUM = re.compile(r"^checksum: ([0-9a-f]{16})$", re.MULTILINE)


Profile = collections.namedtuple(
    "Profile", ["allocator", "instructions", "d1_misses", "in_allocator", "checksum"])


def parse_cachegrind(path):
    """(total instructions, total D1 misses, instructions in the allocator) from an out file."""
    events = None
    ir_column = 1  # cost lines: the line number, then one count per event
    summary = None
    in_allocator = 0
    counting = False
    file_name = ""
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
                ir_column = 1 + events.index("Ir")
            elif line.startswith("fl="):
                file_name = line[3:].strip()
            elif line.startswith("fn="):
                counting = bool(ALLOCATOR_FILE.search(file_name) or
                                ALLOCATOR_FUNCTION.search(line[3:]))
            elif line.startswith("summary:"):
                summary = [int(x) for x in line.split()[1:]]
            elif counting and line[:1].isdigit():
                in_allocator += int(line.split()[ir_column])
    if events is None or summary is None or "D1mr" not in events:
        raise ValueError("%s: not a cachegrind file with --cache-sim=yes" % path)
    total = dict(zip(events, summary))
    return total["Ir"], total["D1mr"] + total["D1mw"], in_allocator


def profile(program, allocator, shaders, size, scratch_dir):
    out_file = os.path.join(scratch_dir, "cachegrind." + allocator)
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=yes",
               "--cachegrind-out-file=" + out_file, program, "--shaders", str(shaders),
               "--size", str(size), "--allocator", allocator]
    run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:
        raise RuntimeError("%s exited with %d:\n%s" % (" ".join(command), run.returncode,
                                                       run.stderr[-2000:]))
    sums = CHECKSUM.findall(run.stdout)
    if len(sums) != 1:
        raise RuntimeError("--allocator %s printed no checksum line" % allocator)
    return Profile(allocator, *parse_cachegrind(out_file), sums[0])


def millions(n):
    return "%.1f M" % (n / 1e6)


def report(program, profiles, shaders, size):
    base = profiles[0]
    print("%s under cachegrind: %d shaders of ~%d instructions, checksum %s on every allocator"
          % (os.path.basename(program), shaders, size, base.checksum))
    print()
    print("| allocator | instructions | std / this | D1 misses | std / this "
          "| in malloc/free/new/delete |")
    print("|---|---:|---:|---:|---:|---:|")
    for p in profiles:
        print("| %s | %s | %.2f× | %s | %.2f× | %s (%.1f%%) |" % (
            p.allocator, millions(p.instructions), base.instructions / p.instructions,
            millions(p.d1_misses), base.d1_misses / max(p.d1_misses, 1),
            millions(p.in_allocator), 100.0 * p.in_allocator / p.instructions))
    outside = base.instructions - base.in_allocator
    print()
    print("%s outside the allocator: %s instructions (std / that = %.2f×, the most any "
          "allocator could gain by instruction count)" % (
              base.allocator, millions(outside), base.instructions / outside))
    for p in profiles[1:]:
        print("  %s executes %.2f× that" % (p.allocator, p.instructions / outside))


def main():
    parser = argparse.ArgumentParser(
        description="The compiler backend on each allocator, counted by cachegrind.")
    parser.add_argument("program", help="the compiler_backend binary (build with -c opt)")
    parser.add_argument("--shaders", type=int, default=100)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true", help="raw counts as JSON")
    parser.add_argument("--allocators", default=",".join(ALLOCATORS),
                        help="comma-separated, std first (default: %(default)s)")
    args = parser.parse_args()
    allocators = args.allocators.split(",")
    if allocators[0] != "std" or any(a not in ALLOCATORS for a in allocators):
        parser.error("--allocators: std first, then any of " + ", ".join(ALLOCATORS[1:]))
    if not os.access(args.program, os.X_OK):
        parser.error("%s is not an executable" % args.program)
    if args.shaders < 1 or args.size < 1 or args.jobs < 1:
        parser.error("--shaders, --size and --jobs must be at least 1")
    if shutil.which("valgrind") is None:
        sys.exit("compiler_instructions: needs valgrind on PATH (setup.sh installs it)")
    with tempfile.TemporaryDirectory() as scratch_dir:
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(profile, args.program, a, args.shaders, args.size,
                                   scratch_dir) for a in allocators]
            try:
                profiles = [f.result() for f in futures]
            except (RuntimeError, ValueError, OSError) as e:
                sys.exit("compiler_instructions: %s" % e)
    if any(p.checksum != profiles[0].checksum for p in profiles):
        sys.exit("compiler_instructions: checksums differ: " + ", ".join(
            "%s %s" % (p.allocator, p.checksum) for p in profiles))
    if args.json:
        json.dump([p._asdict() for p in profiles], sys.stdout, indent=1)
        print()
    else:
        report(args.program, profiles, args.shaders, args.size)


if __name__ == "__main__":
    main()
