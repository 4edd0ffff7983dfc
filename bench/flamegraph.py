#!/usr/bin/python3
"""bench/flamegraph.py - a flame graph (SVG) from the text of `perf script`.

    bench/flamegraph.py [--title T] [--width 1200] [--folded] [--top N] FILE > out.svg

FILE (or - for stdin) is what `perf script` prints for a `perf record -g`
(or --call-graph dwarf) profile: records separated by blank lines, each a
header line (comm pid [cpu] time: period event:) and one frame a line,
leaf first (addr symbol+off (dso)).  Each sample becomes a stack of function
names from the root down to the leaf, under the thread's name (comm); the
identical stacks are counted.  Offsets (+0x..) are dropped; a frame with no
symbol is named after its object file, [dmiofs] for instance.

The SVG puts the root at the bottom; each frame is a box as wide as its
share of the samples, labelled when there is room, with a tooltip
"name (N samples, P %)".  Colours tell kernel frames ([kernel.kallsyms],
orange) from dmiofs's own code (objects matching --ours, blue-green) and
from libraries (yellow); the root and the threads are grey.

  --folded   print the folded stacks instead ("comm;a;b;c N" a line,
             Brendan Gregg's format, which his flamegraph.pl also reads)
  --top N    also print to stderr a markdown table of the N functions with
             the most self samples (the leaf) and the most total samples
             (anywhere in the stack, once a sample)
  --ours RE  object files that are dmiofs (default: dmio, which also takes
             libdmio.so and lt-dmiofs)
Standard library only.
"""
import argparse
import collections
import html
import os
import re
import sys
import zlib

HEADER = re.compile(r"^(\S.*?)\s+(\d+)(?:/\d+)?\s")
FRAME = re.compile(r"^\s*[0-9a-fA-F]+\s*(.*?)\s*\(([^()]*)\)\s*$")
OFFSET = re.compile(r"\+0x[0-9a-fA-F]+$")
KERNEL, OURS, LIB, OTHER = "kernel", "ours", "lib", "other"


def frame_name(sym, dso):
    """The function's name without its offset, or [object] when unknown."""
    sym = OFFSET.sub("", sym.strip())
    if not sym or sym == "[unknown]":
        base = os.path.basename(dso) if dso and dso != "unknown" else ""
        return "[%s]" % base.strip("[]") if base else "[unknown]"
    return sym


def frame_kind(dso, ours):
    if dso.startswith("[kernel") or dso.endswith(".ko") or dso.startswith("[guest.kernel"):
        return KERNEL
    return OURS if ours.search(os.path.basename(dso)) else LIB


def read_records(lines):
    """Yield each record of perf script's output as a list of its lines."""
    rec = []
    for line in lines:
        line = line.rstrip("\n")
        if line.startswith("#"):
            continue
        if not line.strip():
            if rec:
                yield rec
            rec = []
        else:
            rec.append(line)
    if rec:
        yield rec


def parse_sample(rec, ours, kinds):
    """(comm, frames root first) of one record; records kinds[name]."""
    head = HEADER.match(rec[0])
    comm = head.group(1) if head else rec[0].split()[0]
    raw = [FRAME.match(l) for l in rec[1:]]
    if not rec[1:]:  # no call graph: the one frame ends the header line
        raw = [FRAME.match(rec[0].split(":")[-1])] if ":" in rec[0] else []
    raw = [(m.group(1), m.group(2)) for m in raw if m]
    frames, dso_of = [], ""
    for sym, dso in reversed(raw):  # root first: an inlined frame takes
        if dso != "inlined":         # the object of the frame it sits in
            dso_of = dso
        name = frame_name(sym, dso if dso != "inlined" else dso_of)
        kinds.setdefault(name, frame_kind(dso_of, ours))
        frames.append(name)
    return comm, tuple(frames)


def fold(lines, ours):
    """Counter of (comm, frames) -> samples, and the kind of each name."""
    stacks, kinds = collections.Counter(), {}
    for rec in read_records(lines):
        stacks[parse_sample(rec, ours, kinds)] += 1
    return stacks, kinds


def top_table(stacks, n):
    """Markdown: the n functions with the most self and total samples."""
    self_, total, all_ = collections.Counter(), collections.Counter(), 0
    for (_, frames), count in stacks.items():
        all_ += count
        if frames:
            self_[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    s, t = self_.most_common(n), total.most_common(n)
    pct = lambda c: "%.1f" % (100.0 * c / all_) if all_ else "0"
    esc = lambda name: name.replace("|", "\\|")
    out = ["%d samples" % all_, "",
           "| # | self: function | samples | % | total: function | samples | % |",
           "|--:|:--|--:|--:|:--|--:|--:|"]
    for i in range(max(len(s), len(t))):
        a = s[i] if i < len(s) else ("", 0)
        b = t[i] if i < len(t) else ("", 0)
        out.append("| %d | %s | %s | %s | %s | %s | %s |" % (
            i + 1, esc(a[0]), a[1] or "", pct(a[1]) if a[0] else "",
            esc(b[0]), b[1] or "", pct(b[1]) if b[0] else ""))
    return "\n".join(out) + "\n"


class Node:
    def __init__(self, name):
        self.name, self.count, self.children = name, 0, {}

    def child(self, name):
        return self.children.setdefault(name, Node(name))


def build_tree(stacks):
    root = Node("all")
    for (comm, frames), count in stacks.items():
        node = root
        node.count += count
        for name in (comm,) + frames:
            node = node.child(name)
            node.count += count
    return root


def colour(name, kind):
    """A fill for a frame: the hue by kind, varied a little by name."""
    v = zlib.crc32(name.encode()) % 1000 / 1000.0
    if kind == KERNEL:   # orange
        r, g, b = 240, 120 + int(45 * v), 40 + int(30 * v)
    elif kind == OURS:   # blue-green
        r, g, b = 50 + int(50 * v), 170 + int(50 * v), 190 + int(40 * v)
    elif kind == LIB:    # yellow
        r, g, b = 210 + int(35 * v), 200 + int(40 * v), 60 + int(50 * v)
    else:                # all, thread names: grey
        r = g = b = 180 + int(30 * v)
    return "rgb(%d,%d,%d)" % (r, g, b)


def fit(text, chars):
    return text if len(text) <= chars else text[:max(chars - 2, 1)] + ".."


def svg_frames(node, x, depth, scale, total, kinds, out, geom):
    """Emit node's box at x (in samples), then its children, sorted."""
    width = node.count * scale
    if width < 0.1:
        return
    px, py, fh = geom["pad"] + x * scale, geom["base"] - depth * geom["fh"], geom["fh"]
    tip = "%s (%d samples, %.2f %%)" % (node.name, node.count, 100.0 * node.count / total)
    kind = OTHER if depth < 2 else kinds.get(node.name, LIB)
    out.append('<g><title>%s</title><rect x="%.1f" y="%.1f" width="%.1f" height="%d" '
               'fill="%s" rx="2"/>' % (html.escape(tip), px, py, width, fh - 1, colour(node.name, kind)))
    chars = int((width - 6) / 7.3)  # a 12 px monospace character: 7.2 px
    if chars >= 3:
        out.append('<text x="%.1f" y="%.1f">%s</text>' % (px + 3, py + fh - 5, html.escape(fit(node.name, chars))))
    out.append("</g>")
    for name in sorted(node.children):
        child = node.children[name]
        svg_frames(child, x, depth + 1, scale, total, kinds, out, geom)
        x += child.count


def depth_of(node):
    return 1 + max((depth_of(c) for c in node.children.values()), default=0)


def render_svg(stacks, kinds, title, width):
    root = build_tree(stacks)
    fh, pad, top = 16, 10, 50
    levels = depth_of(root)
    height = top + levels * fh + 30
    geom = {"fh": fh, "pad": pad, "base": top + (levels - 1) * fh}
    scale = (width - 2 * pad) / root.count if root.count else 0
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d">' % (width, height, width, height),
           '<style>text { font: 12px monospace; fill: #000; pointer-events: none; }'
           ' rect:hover { stroke: #000; stroke-width: 1; }'
           ' .h { font: 17px sans-serif; } .l { font: 12px sans-serif; }</style>',
           '<rect width="100%" height="100%" fill="#f8f8f0"/>',
           '<text class="h" x="%d" y="24" text-anchor="middle">%s</text>' % (width // 2, html.escape(fit(title, width // 9)))]
    legend = [(KERNEL, "kernel"), (OURS, "dmiofs"), (LIB, "libraries"), (OTHER, "all, threads")]
    for i, (kind, text) in enumerate(legend):
        x = pad + i * 130
        out.append('<rect x="%d" y="32" width="12" height="12" fill="%s"/>'
                   '<text class="l" x="%d" y="43">%s</text>' % (x, colour("", kind), x + 16, text))
    out.append('<text class="l" x="%d" y="43" text-anchor="end">%d samples</text>' % (width - pad, root.count))
    if root.count:
        svg_frames(root, 0, 0, scale, root.count, kinds, out, geom)
    out.append('<text class="l" x="%d" y="%d">Hover over a frame for its samples.</text>' % (pad, height - 10))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description="A flame graph (SVG) from `perf script` text.")
    ap.add_argument("file", help="perf script output, or - for stdin")
    ap.add_argument("--title", default="Flame graph")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--folded", action="store_true", help="print folded stacks, not SVG")
    ap.add_argument("--top", type=int, metavar="N", help="markdown table of the top N to stderr")
    ap.add_argument("--ours", default="dmio", metavar="RE", help="object files that are dmiofs")
    args = ap.parse_args()
    if args.width < 100:
        ap.error("--width: at least 100")
    src = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8", errors="replace")
    with src:
        stacks, kinds = fold(src, re.compile(args.ours))
    if not stacks:
        print("flamegraph.py: no samples in %s" % args.file, file=sys.stderr)
    if args.top:
        sys.stderr.write(top_table(stacks, args.top))
    if args.folded:
        for (comm, frames), count in sorted(stacks.items()):
            print("%s %d" % (";".join((comm,) + frames), count))
    else:
        sys.stdout.write(render_svg(stacks, kinds, args.title, args.width))


if __name__ == "__main__":
    main()
