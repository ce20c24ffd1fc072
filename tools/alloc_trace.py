#!/usr/bin/env python3
"""alloc_trace — summarises a mesa_alloc trace (logging_resource, MESA_ALLOC_DEBUG=trace=FILE).

usage: alloc_trace.py TRACE [--json] [--svg OUT.svg] [--top N] [--short-us MICROSECONDS]

Prints totals, the peak of live bytes and when it happened, the top call sites (by bytes and
by count), a size histogram (powers of two), short-lived allocations (freed within
--short-us, default 1000 us) and the blocks still live at the end of the trace (leaks), as text,
or as one JSON object with --json. --svg writes a plot of live bytes over time.

A trace cut short (a full disk, a file-size limit, a process killed mid-write) ends in a partial
record: the report covers the complete records before it, with a warning naming the byte where
it stops, on stderr and at the top of the text report (JSON: "truncated_at", and
"trace_cut_short" in "leaks"); its live blocks are listed as live when the trace was cut, not
as leaks. An empty file is a process that died before its trace was first written, or could not
write its header (a full disk: it said so). Times count from the trace's first event.

A whole trace ends with an end record, written when the trace is finished (at exit, when its
trace_file is destroyed, by mesa_logging_destroy). A trace without one was left by a process
that never got there (killed, crashed, _exit) or is still running: its last buffered events
(up to 64 KiB) may be missing, so it is reported like a trace cut short (JSON: "finished" false,
"trace_not_finished" in "leaks"). Events after the end record (frees made during exit, after
the finish) are counted. An end record the writer withdrew (a write after it failed, or a
report of the debug layer ended the process after it) does not count.

The trace is read a chunk at a time, so memory grows with the blocks live at once and the call
sites, not with the trace's length (the plot keeps the lowest and highest point of each of at
most 2048 windows of events). Running out of memory, a closed (>&-) or full stdout, and
an output encoding that cannot show a call site's name each give one line on stderr.

Trace format: see mesa_alloc/logging_resource.h.
"""
import argparse
import codecs
import json
import os
import signal
import struct
import sys

MAGIC = b"MESATRC1"
EVENT = struct.Struct("=BBHIQQQQII")  # 48 bytes
SITE_HEAD = struct.Struct("=BBHI")
OPS = {1: "alloc", 2: "free", 3: "realloc", 4: "failed", 6: "end", 7: "withdrawn end"}
SCOPES = ["command", "object", "cache", "device", "instance"]


CHUNK = 1 << 20  # bytes read at a time: memory does not grow with the trace's length
TIMELINE_WINDOWS = 2048  # the plot keeps at most this many (lowest, highest) pairs of points


class TraceError(Exception):
    pass


class Timeline:
    """Live bytes after each event, in bounded memory: the events are taken in windows, and each
    window keeps its lowest and highest point, so the plot still shows every peak and trough.
    A window is one event until TIMELINE_WINDOWS windows are full; then neighbours merge and
    windows hold twice as many events."""

    def __init__(self):
        self.windows = []  # [(point, point)], a point being (event index, t_ns, live bytes)
        self.size = 1
        self.current = None
        self.count = 0
        self.last = (0, 0, 0)

    def add(self, index, t, live):
        point = (index, t, live)
        self.last = point
        if self.current is None:
            self.current = (point, point)
        else:
            low, high = self.current
            self.current = (point if live < low[2] else low, point if live > high[2] else high)
        self.count += 1
        if self.count == self.size:
            self.windows.append(self.current)
            self.current, self.count = None, 0
            if len(self.windows) == TIMELINE_WINDOWS:
                self.windows = [self._merge(self.windows[i], self.windows[i + 1])
                                for i in range(0, len(self.windows), 2)]
                self.size *= 2

    @staticmethod
    def _merge(a, b):
        points = a + b
        return (min(points, key=lambda p: p[2]), max(points, key=lambda p: p[2]))

    def points(self, start=0):
        """[(t_ns - start, live bytes)] in event order, from (0, 0) to the last event."""
        windows = self.windows + ([self.current] if self.current else [])
        chosen = sorted({p for w in windows for p in w} | {self.last})
        return [(0, 0)] + [(t - start, live) for index, t, live in chosen if index > 0]


class Analysis:
    """The report's state, updated one record at a time: its size grows with the blocks live at
    once and the call sites, not with the length of the trace."""

    def __init__(self, short_ns):
        self.short_ns = short_ns
        self.events = 0
        self.sites = {}
        self.live = {}  # ptr -> (size, t, site)
        self.live_bytes = self.peak = self.peak_t = self.last_t = 0
        self.first_t = None  # events are timed from the process's first logging_resource
        self.totals = {"allocations": 0, "frees": 0, "reallocs": 0, "failed": 0,
                       "bytes_allocated": 0, "unknown_frees": 0, "live_reallocated": 0}
        self.by_site = {}
        self.histogram = {}
        self.short_count = self.short_bytes = self.lifetimes = 0
        self.threads = set()
        self.finished = False  # an end record was read
        self.timeline = Timeline()
        self.by_scope = [0] * len(SCOPES)

    def add(self, ptr, size, t, site, scope):
        if ptr in self.live:  # born again while live: a trace out of order, counted, not summed
            self.totals["live_reallocated"] += 1
            self.live_bytes -= self.live[ptr][0]
        self.live[ptr] = (size, t, site)
        self.live_bytes += size
        self.totals["bytes_allocated"] += size
        s = self.by_site.setdefault(site, [0, 0])
        s[0] += 1
        s[1] += size
        bucket = 1 << max(0, (size - 1).bit_length()) if size > 0 else 0
        self.histogram[bucket] = self.histogram.get(bucket, 0) + 1
        if 0 <= scope < len(self.by_scope):
            self.by_scope[scope] += size
        if self.live_bytes > self.peak:
            self.peak, self.peak_t = self.live_bytes, t

    def remove(self, ptr, t):
        block = self.live.pop(ptr, None)
        if block is None:
            self.totals["unknown_frees"] += 1
            return
        size, born, _ = block
        self.live_bytes -= size
        self.lifetimes += 1
        if t - born <= self.short_ns:
            self.short_count += 1
            self.short_bytes += size

    def event(self, op, scope, thread, t, ptr, old, size, site):
        if op == 6:
            self.finished = True
            return
        if op == 7:  # an end record the writer took back: a write after it failed, or a crash
            return
        self.events += 1
        self.threads.add(thread)
        self.last_t = max(self.last_t, t)
        self.first_t = t if self.first_t is None else min(self.first_t, t)
        if op == 1:
            self.totals["allocations"] += 1
            self.add(ptr, size, t, site, scope)
        elif op == 2:
            self.totals["frees"] += 1
            self.remove(ptr, t)
        elif op == 3:
            self.totals["reallocs"] += 1
            self.remove(old, t)
            self.add(ptr, size, t, site, scope)
        elif op == 4:
            self.totals["failed"] += 1
        self.timeline.add(self.events, t, self.live_bytes)

    def report(self, top=10, truncated_at=None):
        sites = self.sites

        def site_name(site):
            return sites.get(site, "(no call site recorded)" if site == 0 else f"site {site}")

        # By the site's text: resources that share a sink each number their own sites, so one
        # call site may come under several ids.
        by_name = {}
        for site, (count, size) in self.by_site.items():
            s = by_name.setdefault(site_name(site), [0, 0])
            s[0] += count
            s[1] += size
        top_bytes = sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]
        top_count = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:top]
        leaks_by_site = {}
        for size, _, site in self.live.values():
            s = leaks_by_site.setdefault(site_name(site), [0, 0])
            s[0] += 1
            s[1] += size
        start = self.first_t or 0
        return {
            "events": self.events,
            "threads": len(self.threads),
            "start_ns": start,
            "duration_ns": self.last_t - start,
            "totals": self.totals,
            "peak_bytes": self.peak,
            "peak_time_ns": self.peak_t - start if self.peak else 0,
            "bytes_by_scope": dict(zip(SCOPES, self.by_scope)),
            "top_sites_by_bytes": [{"site": k, "allocations": v[0], "bytes": v[1]}
                                   for k, v in top_bytes],
            "top_sites_by_count": [{"site": k, "allocations": v[0], "bytes": v[1]}
                                   for k, v in top_count],
            "size_histogram": [{"up_to": k, "allocations": v}
                               for k, v in sorted(self.histogram.items())],
            "short_lived": {"threshold_ns": self.short_ns, "blocks": self.short_count,
                            "bytes": self.short_bytes,
                            "fraction_of_frees": (self.short_count / self.lifetimes
                                                  if self.lifetimes else 0.0)},
            "finished": self.finished,
            # A trace cut short, or never finished, ends while the program still runs: its live
            # blocks are the ones in use at its end, not necessarily leaks.
            "leaks": {"blocks": len(self.live), "bytes": sum(v[0] for v in self.live.values()),
                      "trace_cut_short": truncated_at is not None,
                      "trace_not_finished": not self.finished,
                      "by_site": [{"site": k, "blocks": v[0], "bytes": v[1]}
                                  for k, v in sorted(leaks_by_site.items(),
                                                     key=lambda kv: -kv[1][1])]},
            "truncated_at": truncated_at,
            "timeline": self.timeline.points(start),
        }


def read_trace(path, analysis):
    """Feeds every record of the trace at `path` to `analysis`, reading it a chunk at a time.
    Returns the byte where a partial last record starts (None when the trace ends on a record
    boundary)."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
        if not head:
            raise TraceError(f"{path}: empty file (the traced process wrote nothing: it died "
                             "before its trace was first written, or its header could not be "
                             "written, which it said on stderr, as on a full disk)")
        if len(head) < len(MAGIC) and MAGIC.startswith(head):
            raise TraceError(f"{path}: a trace cut short in its {len(MAGIC)}-byte header "
                             f"({len(head)} bytes: the traced process could not write the rest, "
                             "which it said on stderr, as on a full disk)")
        if head != MAGIC:
            raise TraceError(f"{path}: not a mesa_alloc trace (missing MESATRC1 header)")
        buf, pos, base = b"", 0, len(MAGIC)  # base: the file offset of buf[0]
        end_of_file = False

        def have(n):
            """True once `n` bytes from pos are in buf; False when the file ends first."""
            nonlocal buf, pos, base, end_of_file
            while len(buf) - pos < n and not end_of_file:
                more = f.read(max(CHUNK, n))
                end_of_file = not more
                buf, base, pos = buf[pos:] + more, base + pos, 0
            return len(buf) - pos >= n

        while True:
            if not have(1):
                return None
            kind = buf[pos]
            if kind in OPS:
                if not have(EVENT.size):
                    return base + pos
                op, scope, _, thread, t, ptr, old, size, _, site = EVENT.unpack_from(buf, pos)
                analysis.event(op, scope, thread, t, ptr, old, size, site)
                pos += EVENT.size
            elif kind == 5:
                if not have(SITE_HEAD.size):
                    return base + pos
                _, _, length, site_id = SITE_HEAD.unpack_from(buf, pos)
                if not have(SITE_HEAD.size + length):
                    return base + pos
                text = buf[pos + SITE_HEAD.size:pos + SITE_HEAD.size + length]
                analysis.sites[site_id] = text.decode("utf-8", "replace")
                pos += SITE_HEAD.size + length
            elif have(len(MAGIC)) and buf[pos:pos + len(MAGIC)] == MAGIC:
                raise TraceError(f"{path}: a second trace header (MESATRC1) at byte {base + pos}: "
                                 "two traces joined into one file? read each on its own")
            else:
                raise TraceError(f"{path}: unknown record type {kind} at byte {base + pos}")


def print_text(r, out, top=10):
    t = r["totals"]
    if r["truncated_at"] is not None:
        out.write(f"trace cut short at byte {r['truncated_at']} (a partial last record): this "
                  "report covers the events before the cut, and the blocks live at the cut are "
                  "not necessarily leaks\n")
    elif not r["finished"]:
        out.write("trace not finished (no end record: the traced process was killed, crashed, "
                  "called _exit or exec, or still runs): up to 64 KiB of its last events may be "
                  "missing, and the blocks live at its end are not necessarily leaks\n")
    out.write(f"events {r['events']}, threads {r['threads']}, "
              f"duration {r['duration_ns'] / 1e6:.3f} ms (times count from the first event)\n")
    out.write(f"allocations {t['allocations']}, reallocs {t['reallocs']}, frees {t['frees']}, "
              f"failed {t['failed']}, bytes allocated {t['bytes_allocated']}\n")
    if t["unknown_frees"]:
        out.write(f"frees of pointers not seen allocated: {t['unknown_frees']}\n")
    if t["live_reallocated"]:
        out.write(f"allocations of pointers already live: {t['live_reallocated']} "
                  "(the trace is out of order; its peak and leaks are approximate)\n")
    out.write(f"peak live bytes {r['peak_bytes']} at {r['peak_time_ns'] / 1e6:.3f} ms\n")
    out.write("bytes by scope: " +
              ", ".join(f"{k} {v}" for k, v in r["bytes_by_scope"].items() if v) + "\n")
    out.write("\ntop call sites by bytes:\n")
    for s in r["top_sites_by_bytes"]:
        out.write(f"  {s['bytes']:>12} B {s['allocations']:>8} x  {s['site']}\n")
    out.write("\ntop call sites by count:\n")
    for s in r["top_sites_by_count"]:
        out.write(f"  {s['allocations']:>8} x {s['bytes']:>12} B  {s['site']}\n")
    out.write("\nsize histogram (bytes <= N):\n")
    most = max([h["allocations"] for h in r["size_histogram"]] or [1])
    for h in r["size_histogram"]:
        bar = "#" * max(1, round(40 * h["allocations"] / most))
        out.write(f"  {h['up_to']:>10} {h['allocations']:>8}  {bar}\n")
    s = r["short_lived"]
    out.write(f"\nshort-lived (freed within {s['threshold_ns'] / 1000:.0f} us): {s['blocks']} "
              f"blocks, {s['bytes']} bytes, {100 * s['fraction_of_frees']:.1f}% of the blocks "
              "freed or reallocated\n")
    leaks = r["leaks"]
    if leaks["trace_cut_short"]:
        title = "live when the trace was cut (not necessarily leaks: the trace was cut short)"
    elif leaks["trace_not_finished"]:
        title = "live at the trace's end (not necessarily leaks: the trace was not finished)"
    else:
        title = "live at the end (leaks)"
    out.write(f"\n{title}: {leaks['blocks']} blocks, {leaks['bytes']} bytes\n")
    for s in leaks["by_site"][:top]:
        out.write(f"  {s['bytes']:>12} B {s['blocks']:>8} x  {s['site']}\n")
    rest = leaks["by_site"][top:]
    if rest:
        out.write(f"  ... and {len(rest)} more sites ({sum(s['bytes'] for s in rest)} bytes; "
                  "--top N shows more, --json all)\n")


def write_svg(r, path, width=800, height=300):
    points = r["timeline"]
    end = max(max(t for t, _ in points), 1)
    peak = max(r["peak_bytes"], 1)
    margin = 50
    # Live bytes change at events and hold between them: a step at each point, never a ramp.
    steps = points[:1]
    for t, b in points[1:]:
        steps += [(t, steps[-1][1]), (t, b)]
    coords = " ".join(
        f"{margin + (width - 2 * margin) * t / end:.1f},"
        f"{height - margin - (height - 2 * margin) * b / peak:.1f}" for t, b in steps)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">\n'
                f'<rect width="100%" height="100%" fill="white"/>\n'
                f'<text x="{margin}" y="20" font-family="sans-serif" font-size="14">'
                f'live bytes over time (peak {r["peak_bytes"]} B at '
                f'{r["peak_time_ns"] / 1e6:.3f} ms)</text>\n'
                f'<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" '
                f'y2="{height - margin}" stroke="black"/>\n'
                f'<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" '
                f'stroke="black"/>\n'
                f'<text x="{width - margin}" y="{height - margin + 20}" font-family="sans-serif" '
                f'font-size="12" text-anchor="end">{end / 1e6:.3f} ms</text>\n'
                f'<polyline fill="none" stroke="steelblue" stroke-width="1.5" points="{coords}"/>\n'
                f'</svg>\n')


UNSHOWN = [0]  # characters of the report the output's encoding could not show


def count_unshown(error):
    """An encoding error handler: '?' for each character the output cannot show, counted."""
    UNSHOWN[0] += error.end - error.start
    return "?" * (error.end - error.start), error.end


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    parser.add_argument("--svg", help="write a plot of live bytes over time to this file")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--short-us", type=float, default=1000.0)
    args = parser.parse_args(argv)
    if args.top < 0:
        parser.error("--top must be 0 or more")
    if not (0 <= args.short_us < 1e12):  # also NaN and infinity
        parser.error("--short-us must be a number of microseconds from 0 to 1e12")
    # Under `bazel run` the tool runs in its runfiles tree: relative paths are the user's.
    here = os.environ.get("BUILD_WORKING_DIRECTORY")
    if here:
        args.trace = os.path.join(here, args.trace)
        if args.svg:
            args.svg = os.path.join(here, args.svg)
    if sys.stdout is None:  # started with stdout closed (`alloc_trace t >&-`)
        print("alloc_trace: standard output is closed: nowhere to write the report",
              file=sys.stderr)
        return 1
    analysis = Analysis(int(args.short_us * 1000))
    try:
        truncated_at = read_trace(args.trace, analysis)
        r = analysis.report(args.top, truncated_at)
    except (OSError, TraceError) as e:
        print(f"alloc_trace: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        events, live = analysis.events, len(analysis.live)
        analysis = None  # give the memory back before saying why
        print(f"alloc_trace: out of memory after {events} events of {args.trace}, with {live} "
              "blocks live at once (memory grows with the live blocks and call sites, not the "
              "trace's length)", file=sys.stderr)
        return 1
    if truncated_at is not None:
        print(f"alloc_trace: warning: {args.trace} ends in a partial record at byte "
              f"{truncated_at} (the trace was cut short); the report covers the {r['events']} "
              "events before it, and its live blocks are not necessarily leaks", file=sys.stderr)
    elif not r["finished"]:
        print(f"alloc_trace: warning: {args.trace} has no end record (the traced process was "
              "killed, crashed, called _exit or exec, or still runs); its last events may be "
              "missing, and its live blocks are not necessarily leaks", file=sys.stderr)
    if args.svg:
        try:
            write_svg(r, args.svg)
        except OSError as e:
            print(f"alloc_trace: cannot write {args.svg}: {e.strerror}", file=sys.stderr)
            return 1
    try:
        if args.json:
            r = dict(r)
            del r["timeline"]
            json.dump(r, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            print_text(r, sys.stdout, args.top)
        sys.stdout.flush()
    except MemoryError:
        print("alloc_trace: out of memory writing the report", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk: say so, and drop what is still buffered
        print(f"alloc_trace: cannot write the report: {e.strerror}", file=sys.stderr)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    if UNSHOWN[0]:
        print(f"alloc_trace: warning: the output encoding ({sys.stdout.encoding}) cannot show "
              f"{UNSHOWN[0]} character(s) of call-site names; they are written as '?'",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    # A reader that goes away (`alloc_trace t | head`) ends the tool as it ends a C tool.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # A site name the locale's encoding cannot show (an ASCII-only locale) is written with '?'.
    codecs.register_error("alloc_trace_unshown", count_unshown)
    if sys.stdout is not None:
        sys.stdout.reconfigure(errors="alloc_trace_unshown")
    sys.exit(main(sys.argv[1:]))
