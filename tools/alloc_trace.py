#!/usr/bin/env python3
"""alloc_trace — summarises a mesa_alloc trace (logging_resource, MESA_ALLOC_DEBUG=trace=FILE).

usage: alloc_trace.py TRACE [--json] [--svg OUT.svg] [--top N] [--short-us MICROSECONDS]

Prints totals, the peak of live bytes and when it happened, the top call sites (by bytes and
by count), a size histogram (powers of two), short-lived allocations (freed within
--short-us, default 1000 us) and the blocks still live at the end of the trace (leaks), as text,
or as one JSON object with --json. --svg writes a plot of live bytes over time.

A trace cut short (a full disk, a file-size limit, a process killed mid-write) ends in a partial
record: the report covers the complete records before it, with a warning naming the byte where
it stops (JSON: "truncated_at"). An empty file is a process that died before its trace was
first written.

Trace format: see mesa_alloc/logging_resource.h.
"""
import argparse
import json
import os
import signal
import struct
import sys

MAGIC = b"MESATRC1"
EVENT = struct.Struct("=BBHIQQQQII")  # 48 bytes
SITE_HEAD = struct.Struct("=BBHI")
OPS = {1: "alloc", 2: "free", 3: "realloc", 4: "failed"}
SCOPES = ["command", "object", "cache", "device", "instance"]


class TraceError(Exception):
    pass


def read_trace(path):
    """Returns (events, sites, truncated_at): events as tuples (op, scope, thread, t_ns, ptr,
    old, size, alignment, site), sites as {id: text}, and the byte where a partial last record
    starts (None when the trace ends on a record boundary)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise TraceError(f"{path}: empty file (the traced process wrote nothing: it died before "
                         "its trace was first written)")
    if data[:8] != MAGIC:
        raise TraceError(f"{path}: not a mesa_alloc trace (missing MESATRC1 header)")
    events, sites = [], {}
    pos = 8
    while pos < len(data):
        kind = data[pos]
        if kind in OPS:
            if pos + EVENT.size > len(data):
                return events, sites, pos
            op, scope, _, thread, t, ptr, old, size, align, site = EVENT.unpack_from(data, pos)
            events.append((op, scope, thread, t, ptr, old, size, align, site))
            pos += EVENT.size
        elif kind == 5:
            if pos + SITE_HEAD.size > len(data):
                return events, sites, pos
            _, _, length, site_id = SITE_HEAD.unpack_from(data, pos)
            if pos + SITE_HEAD.size + length > len(data):
                return events, sites, pos
            pos += SITE_HEAD.size
            sites[site_id] = data[pos:pos + length].decode("utf-8", "replace")
            pos += length
        else:
            raise TraceError(f"{path}: unknown record type {kind} at byte {pos}")
    return events, sites, None


def analyse(events, sites, top=10, short_ns=1_000_000):
    live = {}  # ptr -> (size, t, site)
    live_bytes = peak = peak_t = 0
    totals = {"allocations": 0, "frees": 0, "reallocs": 0, "failed": 0, "bytes_allocated": 0,
              "unknown_frees": 0, "live_reallocated": 0}
    by_site = {}
    histogram = {}
    short_count = short_bytes = 0
    lifetimes = 0
    threads = set()
    timeline = [(0, 0)]
    by_scope = [0] * len(SCOPES)

    def add(ptr, size, t, site, scope):
        nonlocal live_bytes, peak, peak_t
        if ptr in live:  # born again while live: a trace out of order, counted, not summed twice
            totals["live_reallocated"] += 1
            live_bytes -= live[ptr][0]
        live[ptr] = (size, t, site)
        live_bytes += size
        totals["bytes_allocated"] += size
        s = by_site.setdefault(site, [0, 0])
        s[0] += 1
        s[1] += size
        bucket = 1 << max(0, (size - 1).bit_length()) if size > 0 else 0
        histogram[bucket] = histogram.get(bucket, 0) + 1
        if 0 <= scope < len(by_scope):
            by_scope[scope] += size
        if live_bytes > peak:
            peak, peak_t = live_bytes, t

    def remove(ptr, t):
        nonlocal live_bytes, short_count, short_bytes, lifetimes
        block = live.pop(ptr, None)
        if block is None:
            totals["unknown_frees"] += 1
            return
        size, born, _ = block
        live_bytes -= size
        lifetimes += 1
        if t - born <= short_ns:
            short_count += 1
            short_bytes += size

    last_t = 0
    for op, scope, thread, t, ptr, old, size, align, site in events:
        threads.add(thread)
        last_t = max(last_t, t)
        if op == 1:
            totals["allocations"] += 1
            add(ptr, size, t, site, scope)
        elif op == 2:
            totals["frees"] += 1
            remove(ptr, t)
        elif op == 3:
            totals["reallocs"] += 1
            remove(old, t)
            add(ptr, size, t, site, scope)
        elif op == 4:
            totals["failed"] += 1
        timeline.append((t, live_bytes))

    def site_name(site):
        return sites.get(site, "(no call site recorded)" if site == 0 else f"site {site}")

    top_bytes = sorted(by_site.items(), key=lambda kv: -kv[1][1])[:top]
    top_count = sorted(by_site.items(), key=lambda kv: -kv[1][0])[:top]
    leaks_by_site = {}
    for size, _, site in live.values():
        s = leaks_by_site.setdefault(site, [0, 0])
        s[0] += 1
        s[1] += size
    return {
        "events": len(events),
        "threads": len(threads),
        "duration_ns": last_t,
        "totals": totals,
        "peak_bytes": peak,
        "peak_time_ns": peak_t,
        "bytes_by_scope": dict(zip(SCOPES, by_scope)),
        "top_sites_by_bytes": [{"site": site_name(k), "allocations": v[0], "bytes": v[1]}
                               for k, v in top_bytes],
        "top_sites_by_count": [{"site": site_name(k), "allocations": v[0], "bytes": v[1]}
                               for k, v in top_count],
        "size_histogram": [{"up_to": k, "allocations": v} for k, v in sorted(histogram.items())],
        "short_lived": {"threshold_ns": short_ns, "blocks": short_count, "bytes": short_bytes,
                        "fraction_of_frees": (short_count / lifetimes) if lifetimes else 0.0},
        "leaks": {"blocks": len(live), "bytes": sum(v[0] for v in live.values()),
                  "by_site": [{"site": site_name(k), "blocks": v[0], "bytes": v[1]}
                              for k, v in sorted(leaks_by_site.items(), key=lambda kv: -kv[1][1])]},
        "timeline": timeline,
    }


def print_text(r, out):
    t = r["totals"]
    out.write(f"events {r['events']}, threads {r['threads']}, "
              f"duration {r['duration_ns'] / 1e6:.3f} ms\n")
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
    out.write(f"\nlive at the end (leaks): {leaks['blocks']} blocks, {leaks['bytes']} bytes\n")
    for s in leaks["by_site"][:10]:
        out.write(f"  {s['bytes']:>12} B {s['blocks']:>8} x  {s['site']}\n")


def write_svg(r, path, width=800, height=300):
    points = r["timeline"]
    end = max(points[-1][0], 1)
    peak = max(r["peak_bytes"], 1)
    margin = 50
    coords = " ".join(
        f"{margin + (width - 2 * margin) * t / end:.1f},"
        f"{height - margin - (height - 2 * margin) * b / peak:.1f}" for t, b in points)
    with open(path, "w") as f:
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
    try:
        events, sites, truncated_at = read_trace(args.trace)
    except (OSError, TraceError) as e:
        print(f"alloc_trace: {e}", file=sys.stderr)
        return 1
    if truncated_at is not None:
        print(f"alloc_trace: warning: {args.trace} ends in a partial record at byte "
              f"{truncated_at} (the trace was cut short); the report covers the {len(events)} "
              "events before it", file=sys.stderr)
    r = analyse(events, sites, args.top, int(args.short_us * 1000))
    r["truncated_at"] = truncated_at
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
            print_text(r, sys.stdout)
        sys.stdout.flush()
    except OSError as e:  # a full disk: say so, and drop what is still buffered
        print(f"alloc_trace: cannot write the report: {e.strerror}", file=sys.stderr)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    # A reader that goes away (`alloc_trace t | head`) ends the tool as it ends a C tool.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
