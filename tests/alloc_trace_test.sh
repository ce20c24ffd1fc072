#!/bin/bash
# MESA_ALLOC_DEBUG=trace=FILE on a C program, then //tools:alloc_trace on the trace.
# usage: alloc_trace_test.sh PROGRAM ALLOC_TRACE
set -u
program="$1"
tool="$2"
dir="${TEST_TMPDIR:-/tmp}"
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }

# The program leaks on purpose; LeakSanitizer (asan config) must not fail the run.
ASAN_OPTIONS=detect_leaks=0 MESA_ALLOC_DEBUG=trace="$dir/run.trace" "$program" leak >/dev/null || fail "traced run"
[[ -s "$dir/run.trace" ]] || fail "no trace written"

"$tool" "$dir/run.trace" >"$dir/summary.txt" || fail "text summary"
cat "$dir/summary.txt"
# mesa_strdup, mesa_malloc(40), mesa_calloc, then mesa_realloc; two frees; 40 bytes leak.
grep -q '^allocations 3, reallocs 1, frees 2, failed 0, bytes allocated 342$' "$dir/summary.txt" ||
  fail "totals"
grep -q '^peak live bytes 310 at ' "$dir/summary.txt" || fail "peak"
grep -q '^live at the end (leaks): 1 blocks, 40 bytes$' "$dir/summary.txt" || fail "leaks"
grep -q 'leak_some' "$dir/summary.txt" || fail "call sites are named"
grep -q '^short-lived (freed within 1000 us): ' "$dir/summary.txt" || fail "short-lived"
if grep -q 'not finished' "$dir/summary.txt"; then fail "a run that returned: trace not finished"; fi

"$tool" "$dir/run.trace" --json --svg "$dir/plot.svg" >"$dir/summary.json" || fail "json"
python3 - "$dir/summary.json" <<'PY' || fail "json content"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["totals"]["allocations"] == 3, r["totals"]
assert r["peak_bytes"] == 310, r["peak_bytes"]
assert r["leaks"]["bytes"] == 40, r["leaks"]
assert r["finished"] is True and r["leaks"]["trace_not_finished"] is False, r["leaks"]
assert {h["up_to"] for h in r["size_histogram"]} == {16, 32, 64, 256}, r["size_histogram"]
PY
grep -q '<polyline' "$dir/plot.svg" || fail "svg plot"

# Under `bazel run` the tool runs in its runfiles tree; relative paths are taken from the
# directory bazel was run in (BUILD_WORKING_DIRECTORY).
tool_path="$(cd "$(dirname "$tool")" && pwd)/$(basename "$tool")"
(cd / && BUILD_WORKING_DIRECTORY="$dir" "$tool_path" run.trace --svg relative.svg \
  >"$dir/relative.txt") ||
  fail "relative paths under bazel run"
cmp -s "$dir/summary.txt" "$dir/relative.txt" || fail "relative path: a different summary"
grep -q '<polyline' "$dir/relative.svg" || fail "relative path: svg plot"

# A child of fork() that exits writes nothing: the parent's buffered events are not written a
# second time (the trace had 2 allocations for 1).
rm -f "$dir/fork.trace"
ASAN_OPTIONS=detect_leaks=0 MESA_ALLOC_DEBUG=trace="$dir/fork.trace" "$program" fork_child_exits \
  >/dev/null || fail "the forking run"
"$tool" "$dir/fork.trace" >"$dir/fork.txt" || fail "the trace of the forking run: unreadable"
grep -q '^allocations 1, reallocs 0, frees 1, failed 0, bytes allocated 10$' "$dir/fork.txt" ||
  { fail "fork: the parent's events once"; cat "$dir/fork.txt"; }

# The same under leaks,stats: the child's exit prints no report (it printed the parent's block
# as its leak, and a second statistics table).
ASAN_OPTIONS=detect_leaks=0 MESA_ALLOC_DEBUG=leaks,stats "$program" fork_child_exits \
  >/dev/null 2>"$dir/err.txt" || fail "the forking run under leaks,stats"
[[ $(grep -c '^mesa_alloc: statistics of the default allocator' "$dir/err.txt") == 1 ]] ||
  { fail "fork: one statistics table"; cat "$dir/err.txt"; }
if grep -q '^mesa_alloc: leak' "$dir/err.txt"; then
  fail "fork: the child reported the parent's block as a leak"; cat "$dir/err.txt"
fi

# A program started with stderr closed: the trace must not become descriptor 2, or the reports
# (and anything else the program writes there) land inside it.
rm -f "$dir/closed.trace"
ASAN_OPTIONS=detect_leaks=0 MESA_ALLOC_DEBUG=leaks,stats,trace="$dir/closed.trace" "$program" \
  leak >/dev/null 2>&- || fail "the run with stderr closed"
"$tool" "$dir/closed.trace" >"$dir/closed.txt" 2>&1 ||
  { fail "stderr closed: the trace is unreadable"; cat "$dir/closed.txt"; }
if grep -aq 'mesa_alloc: leak\|mesa_alloc: statistics' "$dir/closed.trace"; then
  fail "stderr closed: reports in the trace"
fi

# A trace into a pipe whose reader has gone (here after 100 bytes): the program runs on and the
# trace ends with a line; SIGPIPE killed it (status 141).
ASAN_OPTIONS=detect_leaks=0 MESA_ALLOC_DEBUG=trace=/dev/fd/3 "$program" many_small 3>&1 \
  >/dev/null 2>"$dir/err.txt" | head -c 100 >/dev/null
status=${PIPESTATUS[0]}
[[ $status == 0 ]] || { fail "pipe reader gone: the program ended with status $status"; }
grep -q '^mesa_alloc: trace file: write failed after [0-9]* bytes (Broken pipe); the trace ends' \
  "$dir/err.txt" || { fail "pipe reader gone: no line"; cat "$dir/err.txt"; }

# A program that dies of the error being debugged (an underrun: the debug layer aborts) leaves
# its trace: the header is written when the file is opened and the buffer before the report.
rm -f "$dir/crash.trace"
ASAN_OPTIONS=detect_leaks=0 MESA_ALLOC_DEBUG=cookie,trace="$dir/crash.trace" "$program" underrun \
  >/dev/null 2>&1 && fail "the underrun did not abort"
"$tool" "$dir/crash.trace" >"$dir/crash.txt" 2>&1 || fail "the trace of a crashed run: unreadable"
grep -q '^allocations [1-9]' "$dir/crash.txt" || fail "the trace of a crashed run: no allocation"
# It has no end record, which the report says: its live blocks are not called leaks.
grep -q 'crash.trace has no end record (the traced process was killed, crashed' "$dir/crash.txt" ||
  fail "the trace of a crashed run: no warning"
grep -q '^trace not finished (no end record: the traced process was killed, crashed, called _exit or exec, or still runs)' \
  "$dir/crash.txt" || fail "the trace of a crashed run: the report does not say so at its top"
grep -q "^live at the trace's end (not necessarily leaks: the trace was not finished): " \
  "$dir/crash.txt" || fail "the trace of a crashed run: its live blocks titled as leaks"
if grep -q '(leaks)' "$dir/crash.txt"; then fail "the trace of a crashed run: leaks"; fi

# So has the trace of a process that calls _exit: its buffered events never reach the file.
rm -f "$dir/quick.trace"
MESA_ALLOC_DEBUG=trace="$dir/quick.trace" "$program" exit_at_once || fail "the _exit run"
"$tool" "$dir/quick.trace" >"$dir/quick.txt" 2>"$dir/err.txt" || fail "the _exit trace: unreadable"
grep -q 'quick.trace has no end record' "$dir/err.txt" || fail "the _exit trace: no warning"

# A block an exit handler frees after MESA_ALLOC_DEBUG's own handler finished the trace (the
# program registered its handler first, so it runs last): the free follows the end record, and
# the block is not a leak.
rm -f "$dir/atexit.trace"
MESA_ALLOC_DEBUG=trace="$dir/atexit.trace" "$program" free_at_exit || fail "the free_at_exit run"
"$tool" "$dir/atexit.trace" >"$dir/atexit.txt" 2>"$dir/err.txt" || fail "the atexit trace"
grep -q '^allocations 1, reallocs 0, frees 1, failed 0, bytes allocated 24$' "$dir/atexit.txt" ||
  { fail "the atexit trace: the free after the end record"; cat "$dir/atexit.txt"; }
grep -q '^live at the end (leaks): 0 blocks, 0 bytes$' "$dir/atexit.txt" ||
  fail "the atexit trace: a leak"
[[ -s "$dir/err.txt" ]] && { fail "the atexit trace: a warning"; cat "$dir/err.txt"; }

# quick_exit runs no atexit handler, but the trace is finished all the same (at_quick_exit).
rm -f "$dir/quick_exit.trace"
MESA_ALLOC_DEBUG=trace="$dir/quick_exit.trace" "$program" quick_exit || fail "the quick_exit run"
"$tool" "$dir/quick_exit.trace" >"$dir/quick_exit.txt" 2>"$dir/err.txt" ||
  fail "the quick_exit trace: unreadable"
grep -q '^allocations 1, reallocs 0, frees 1, failed 0, bytes allocated 24$' \
  "$dir/quick_exit.txt" || fail "the quick_exit trace: its events"
[[ -s "$dir/err.txt" ]] && { fail "the quick_exit trace: a warning"; cat "$dir/err.txt"; }

# An error the debug layer reports after the trace was finished (an exit handler's invalid
# free, which aborts): the end record is withdrawn, and the trace reads as not finished rather
# than as a whole one whose unreached frees would be leaks.
rm -f "$dir/bad_free.trace"
ASAN_OPTIONS=detect_leaks=0 MESA_ALLOC_DEBUG=cookie,trace="$dir/bad_free.trace" "$program" \
  bad_free_at_exit >/dev/null 2>&1 && fail "the invalid free at exit did not abort"
"$tool" "$dir/bad_free.trace" >"$dir/bad_free.txt" 2>"$dir/err.txt" ||
  fail "the trace of a report at exit: unreadable"
grep -q 'bad_free.trace has no end record' "$dir/err.txt" ||
  fail "the trace of a report at exit: its end record stands"

printf 'not a trace' >"$dir/bad.trace"
if "$tool" "$dir/bad.trace" 2>"$dir/err.txt"; then fail "bad trace accepted"; fi
grep -q 'not a mesa_alloc trace' "$dir/err.txt" || fail "bad trace message"

# Cut off inside a call-site record's text (its head says 60000 bytes follow; 12 do): a warning
# naming the byte, and a summary of the records before it, without a made-up site name.
python3 - "$dir/cut.trace" <<'PY'
import struct, sys
event = struct.pack("=BBHIQQQQII", 1, 0, 0, 1, 0, 0x1000, 0, 16, 16, 7)
site = struct.pack("=BBHI", 5, 0, 60000, 7) + b"main < start"
open(sys.argv[1], "wb").write(b"MESATRC1" + event + site)
PY
"$tool" "$dir/cut.trace" >"$dir/cut.txt" 2>"$dir/err.txt" || fail "cut-off trace refused"
grep -q 'ends in a partial record at byte 56 (the trace was cut short); the report covers the 1 events before it' \
  "$dir/err.txt" || fail "cut-off trace: no warning naming the byte"
grep -q '^allocations 1, ' "$dir/cut.txt" || fail "cut-off trace: the event before the cut"
grep -q '16 B        1 x  site 7$' "$dir/cut.txt" || fail "cut-off trace: the site is not named"
if grep -q 'main < start' "$dir/cut.txt"; then fail "cut-off trace: a made-up site name"; fi
# The report itself (saved from stdout, without stderr) says the trace was cut, and does not
# call the block live at the cut a leak.
head -n 1 "$dir/cut.txt" | grep -q '^trace cut short at byte 56 .*not necessarily leaks$' ||
  fail "cut-off trace: the report does not say so at its top"
grep -q '^live when the trace was cut (not necessarily leaks: the trace was cut short): 1 blocks, 16 bytes$' \
  "$dir/cut.txt" || fail "cut-off trace: its live block titled as a leak"
if grep -q '(leaks)' "$dir/cut.txt"; then fail "cut-off trace: 'leaks' in the report"; fi
if grep -q '^trace cut short' "$dir/summary.txt"; then fail "a whole trace said to be cut"; fi
"$tool" --json "$dir/cut.trace" 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["truncated_at"] == 56 and r["leaks"]["trace_cut_short"] is True, r' ||
  fail "cut-off trace: truncated_at and leaks.trace_cut_short in the JSON"
# Two traces joined into one file (cat a b): the second header is named, not taken for a record.
cat "$dir/run.trace" "$dir/run.trace" >"$dir/joined.trace"
if "$tool" "$dir/joined.trace" >/dev/null 2>"$dir/err.txt"; then fail "joined traces accepted"; fi
grep -q 'a second trace header (MESATRC1) at byte [0-9]*: two traces joined into one file' \
  "$dir/err.txt" || { fail "joined traces: message"; cat "$dir/err.txt"; }
# An empty file: the process died before writing its trace.
: >"$dir/empty.trace"
if "$tool" "$dir/empty.trace" 2>"$dir/err.txt"; then fail "empty trace accepted"; fi
grep -q 'empty file (the traced process wrote nothing' "$dir/err.txt" || fail "empty trace message"
# A file cut inside its header (a full disk at the first write) is a trace cut short, not
# something else.
printf 'MESAT' >"$dir/short.trace"
if "$tool" "$dir/short.trace" 2>"$dir/err.txt"; then fail "header cut short accepted"; fi
grep -q 'a trace cut short in its 8-byte header (5 bytes' "$dir/err.txt" ||
  { fail "header cut short: message"; cat "$dir/err.txt"; }
# A trace out of order (alloc p, alloc p again, free p): counted and said, with the peak and the
# live bytes kept consistent (108 bytes were never live together).
python3 - "$dir/dup.trace" <<'PY'
import struct, sys
ev = lambda op, ptr, size, t: struct.pack("=BBHIQQQQII", op, 1, 0, 1, t, ptr, 0, size, 16, 0)
open(sys.argv[1], "wb").write(b"MESATRC1" + ev(1, 0x1000, 8, 1) + ev(1, 0x1000, 100, 2) +
                              ev(2, 0x1000, 0, 3) + ev(6, 0, 0, 4))
PY
"$tool" "$dir/dup.trace" >"$dir/dup.txt" || fail "out-of-order trace"
grep -q '^allocations of pointers already live: 1 (the trace is out of order' "$dir/dup.txt" ||
  fail "out-of-order trace: not said"
grep -q '^peak live bytes 100 at ' "$dir/dup.txt" || fail "out-of-order trace: peak"
grep -q '^live at the end (leaks): 0 blocks, 0 bytes$' "$dir/dup.txt" ||
  fail "out-of-order trace: leaks"

# Times count from the trace's first event, not from the process's first logging_resource (a
# second trace in one process read as 2 s long), and the plot is a step function (it drew ramps
# between events: a 1 MiB block held for 1 s read as half that). Two resources sharing a sink
# number their sites apart: one call site is one report line. Every leak site is listed up to
# --top, and the rest are counted (at most ten were shown, with no word of the others).
python3 - "$dir/timed.trace" <<'PY'
import struct, sys
ev = lambda op, ptr, size, t, site: struct.pack("=BBHIQQQQII", op, 1, 0, 1, t, ptr, 0, size, 16,
                                                site)
name = b"churn < main"
sites = b"".join(struct.pack("=BBHI", 5, 0, len(name), i) + name for i in (1, 2))
second = 2 * 10**9
leaks = b"".join(struct.pack("=BBHI", 5, 0, 6, 10 + i) + b"leak%02d" % i +
                 ev(1, 0x9000 + 16 * i, 8, second + 16 * 10**8, 10 + i) for i in range(12))
open(sys.argv[1], "wb").write(
    b"MESATRC1" + sites + ev(1, 0x1000, 16, second, 1) +
    ev(1, 0x2000, 1 << 20, second + 5 * 10**8, 2) + ev(2, 0x2000, 0, second + 15 * 10**8, 0) +
    leaks + ev(6, 0, 0, second + 2 * 10**9, 0))
PY
"$tool" "$dir/timed.trace" --svg "$dir/timed.svg" >"$dir/timed.txt" || fail "timed trace"
grep -q '^events 15, threads 1, duration 1600.000 ms' "$dir/timed.txt" || fail "duration"
grep -q '^peak live bytes 1048592 at 500.000 ms$' "$dir/timed.txt" || fail "peak time"
[[ $(grep -c 'churn < main' "$dir/timed.txt") == 3 ]] || fail "one site, one line in each list"
grep -q '^ *1048592 B *2 x  churn < main$' "$dir/timed.txt" || fail "the shared site's sum"
grep -q '^  \.\.\. and 3 more sites (24 bytes; --top N shows more, --json all)$' "$dir/timed.txt" ||
  fail "leak sites past --top"
python3 - "$dir/timed.svg" <<'PY' || fail "step plot"
import re, sys
points = [tuple(map(float, p.split(","))) for p in
          re.search(r'points="([^"]*)"', open(sys.argv[1]).read()).group(1).split()]
for (x0, y0), (x1, y1) in zip(points, points[1:]):
    assert x0 == x1 or y0 == y1, (x0, y0, x1, y1)  # a step, never a ramp
assert points[0][0] == 50.0 and points[-1][0] == 750.0, points  # the first event to the last
PY

# Bad options and an unwritable plot: one line and status 1 or 2, never a traceback.
for bad in "--top -1" "--short-us nan" "--short-us inf" "--svg $dir/no/such/dir/plot.svg" \
  "--svg $dir"; do
  # shellcheck disable=SC2086
  "$tool" "$dir/run.trace" $bad >/dev/null 2>"$dir/err.txt"
  status=$?
  [[ $status -eq 1 || $status -eq 2 ]] || fail "'$bad': status $status"
  if grep -q 'Traceback' "$dir/err.txt"; then fail "'$bad': traceback"; fi
  grep -q 'alloc_trace' "$dir/err.txt" || fail "'$bad': no message"
done

# The trace is read a chunk at a time: 800 000 events (38 MB) in bounded memory, where holding
# them all took 5 times the file. Memory that runs out all the same (800 000 blocks live at
# once, under a small limit) is one line and status 1, and so is /dev/zero (never a header).
python3 - "$dir/pairs.trace" "$dir/live.trace" <<'PY'
import struct, sys
event = struct.Struct("=BBHIQQQQII")
pair = (event.pack(1, 1, 0, 1, 5, 0x1000, 0, 64, 16, 0) +
        event.pack(2, 1, 0, 1, 6, 0x1000, 0, 0, 0, 0))
open(sys.argv[1], "wb").write(b"MESATRC1" + pair * 400000)
open(sys.argv[2], "wb").write(b"MESATRC1" + b"".join(
    event.pack(1, 1, 0, 1, i, 0x1000 + 16 * i, 0, 64, 16, 0) for i in range(800000)))
PY
(ulimit -v 120000 && "$tool" "$dir/pairs.trace" --svg "$dir/pairs.svg" >"$dir/pairs.txt" \
  2>"$dir/err.txt") || { fail "a long trace in 120 MB"; head -n 3 "$dir/err.txt"; }
grep -q '^allocations 400000, reallocs 0, frees 400000, failed 0, bytes allocated 25600000$' \
  "$dir/pairs.txt" || fail "a long trace: totals"
[[ $(grep -o ' [0-9.]*,[0-9.]*' "$dir/pairs.svg" | wc -l) -le 8193 ]] ||  # two per step
  fail "a long trace: the plot keeps a point per event"
(ulimit -v 60000 && "$tool" "$dir/live.trace" >/dev/null 2>"$dir/err.txt")
status=$?
[[ $status -eq 1 ]] || fail "out of memory: status $status"
if grep -q 'Traceback\|MemoryError' "$dir/err.txt"; then fail "out of memory: traceback"; fi
grep -q '^alloc_trace: out of memory after [0-9]* events of .*live.trace, with [0-9]* blocks' \
  "$dir/err.txt" || fail "out of memory: message"
rm -f "$dir/pairs.trace" "$dir/live.trace"
"$tool" /dev/zero >/dev/null 2>"$dir/err.txt"
[[ $? -eq 1 ]] || fail "/dev/zero: status"
grep -q '^alloc_trace: /dev/zero: not a mesa_alloc trace' "$dir/err.txt" ||
  fail "/dev/zero: message"

# A call site's name the output encoding cannot show (an ASCII-only locale) is written with '?'
# and said once; a closed stdout (`>&-`) is one line and status 1; never a traceback.
python3 - "$dir/utf8.trace" <<'PY'
import struct, sys
text = "draw_\u00e9l\u00e9ment < main".encode()
site = struct.pack("=BBHI", 5, 0, len(text), 1) + text
event = struct.pack("=BBHIQQQQII", 1, 0, 0, 1, 0, 0x1000, 0, 16, 16, 1)
open(sys.argv[1], "wb").write(b"MESATRC1" + site + event)
PY
PYTHONIOENCODING=ascii "$tool" "$dir/utf8.trace" >"$dir/ascii.txt" 2>"$dir/err.txt" ||
  fail "ASCII output: status"
if grep -q 'Traceback' "$dir/err.txt"; then fail "ASCII output: traceback"; fi
grep -q '16 B        1 x  draw_?l?ment < main$' "$dir/ascii.txt" || fail "ASCII output: site"
grep -q "^alloc_trace: warning: the output encoding (ascii) cannot show 6 character(s)" \
  "$dir/err.txt" || fail "ASCII output: not said"
"$tool" "$dir/run.trace" >&- 2>"$dir/err.txt"
[[ $? -eq 1 ]] || fail "closed stdout: status"
if grep -q 'Traceback' "$dir/err.txt"; then fail "closed stdout: traceback"; fi
grep -q '^alloc_trace: standard output is closed' "$dir/err.txt" || fail "closed stdout: message"

# A report that cannot be written (a full disk): status 1 and one line, never a traceback. A
# reader that goes away (`| head`) ends the tool quietly by SIGPIPE, as it would a C tool.
for format in "" "--json"; do
  # shellcheck disable=SC2086
  "$tool" "$dir/run.trace" $format >/dev/full 2>"$dir/err.txt"
  status=$?
  [[ $status -eq 1 ]] || fail "full disk ($format): status $status"
  if grep -q 'Traceback\|Exception' "$dir/err.txt"; then fail "full disk ($format): traceback"; fi
  grep -q '^alloc_trace: cannot write the report: No space left on device$' "$dir/err.txt" ||
    fail "full disk ($format): message"
done
python3 - "$tool" "$dir/run.trace" "$dir/err.txt" <<'PY' || fail "closed pipe"
import signal, subprocess, sys
with open(sys.argv[3], "wb") as err:
    p = subprocess.Popen(sys.argv[1:3] + ["--top", "100000"], stdout=subprocess.PIPE, stderr=err)
    p.stdout.close()  # the reader is gone before the tool writes
    status = p.wait()
text = open(sys.argv[3]).read()
assert status == -signal.SIGPIPE, status
assert text == "", text
PY
exit $failures
