#!/usr/bin/env python3
"""The fleet lab's dashboard: one self-contained HTML page with SVG charts, drawn from the CSV
files the labs write. Standard library only, so it runs wherever Python 3.9+ does.

    python3 ops/dashboard/dashboard.py DIR [--trigger-s S]

Reads DIR/stampede.csv (`make fleet-lab`) and DIR/metastable.csv (`make metastable`); either may
be missing, and the page says so. Writes DIR/dashboard.html: no script from elsewhere, no font,
no image, no request of any kind; the charts are plain SVG (a few inline lines only record, for
the tests, the length the browser drew for each line).

Bounds: a CSV of more than MAX_LINES data lines, or with more than MAX_ROWS distinct rows, is
refused; a series longer than MAX_POINTS is thinned to MAX_POINTS points, keeping each bucket's
lowest and highest value (so the peaks of a sawtooth survive). A malformed file (another header,
a value that is not a finite number) is refused with its line number and nothing is written.
"""

import argparse
import csv
import html
import math
import os
import sys
import tempfile

MAX_LINES = 200_000
MAX_ROWS = 16
MAX_POINTS = 1_000

STAMPEDE_COLUMNS = ["row", "t_s", "origin_qps", "hot_origin_qps"]
METASTABLE_COLUMNS = [
    "row",
    "t_s",
    "goodput_rps",
    "origin_queue_depth",
    "origin_qps",
    "miss_rate",
    "breaker_open",
    "lock_wait_ms",
]
# what each metastable column is, for the chart titles
METASTABLE_CHARTS = [
    ("goodput_rps", "Goodput (successful requests / s)"),
    ("origin_queue_depth", "Origin queue depth (queries waiting)"),
    ("origin_qps", "Origin queries / s (served)"),
    ("miss_rate", "Miss rate (requests that needed the origin)"),
    ("breaker_open", "Breakers open (instances)"),
    ("lock_wait_ms", "Fleet lock wait (ms, mean per wait)"),
]
# colour-blind-safe (Okabe-Ito), one per row
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]


class BadInput(Exception):
    """A CSV this page cannot be drawn from; the message names the file and the line."""


def read_csv(path, columns):
    """{row: {column: [values...]}} in the file's row order, or None when the file is absent."""
    if not os.path.exists(path):
        return None
    name = os.path.basename(path)
    rows = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != columns:
            raise BadInput(f"{name}: the header must be exactly {','.join(columns)} (found {header})")
        for n, fields in enumerate(reader, start=2):
            if n - 1 > MAX_LINES:
                raise BadInput(f"{name}: more than {MAX_LINES} data lines")
            if not fields:
                continue
            if len(fields) != len(columns):
                raise BadInput(f"{name} line {n}: {len(columns)} fields expected, {len(fields)} found")
            row = fields[0]
            if row not in rows:
                if len(rows) == MAX_ROWS:
                    raise BadInput(f"{name}: more than {MAX_ROWS} rows")
                rows[row] = {c: [] for c in columns[1:]}
            for c, v in zip(columns[1:], fields[1:]):
                try:
                    x = float(v)
                except ValueError:
                    raise BadInput(f"{name} line {n}: {c} is not a number: {v!r}") from None
                if not math.isfinite(x):
                    raise BadInput(f"{name} line {n}: {c} is not finite: {v!r}")
                rows[row][c].append(x)
    return rows


def thin(xs, ys):
    """At most MAX_POINTS points: each bucket's lowest and highest, in time order."""
    if len(xs) <= MAX_POINTS:
        return xs, ys
    per = math.ceil(len(xs) / (MAX_POINTS // 2))
    ox, oy = [], []
    for i in range(0, len(xs), per):
        b = list(range(i, min(i + per, len(xs))))
        lo = min(b, key=lambda j: ys[j])
        hi = max(b, key=lambda j: ys[j])
        for j in sorted({lo, hi}):
            ox.append(xs[j])
            oy.append(ys[j])
    return ox, oy


def nice_max(v):
    """The axis top: 1, 2 or 5 times a power of ten, at least v."""
    if v <= 0:
        return 1.0
    p = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if m * p >= v:
            return m * p
    return 10 * p


def fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.2f}"


def chart(title, series, x_max, y_max=None, marker=None, width=600, height=230, chart_id=""):
    """An SVG line chart. series: [(label, colour, xs, ys, dashed)]; y_max: the axis top as given
    (otherwise the data's maximum, rounded up to 1, 2 or 5 times a power of ten)."""
    left, right, top, bottom = 56, 12, 28, 34
    pw, ph = width - left - right, height - top - bottom
    top_y = y_max if y_max is not None else nice_max(max((max(ys) for _, _, _, ys, _ in series if ys), default=1))
    x_max = x_max or 1.0

    def px(x):
        return left + pw * x / x_max

    def py(y):
        return top + ph - ph * min(y, top_y) / top_y

    out = [
        f'<svg class="chart" id="{html.escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="17" class="title">{html.escape(title)}</text>',
    ]
    for i in range(5):
        y = top_y * i / 4
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" class="tick" text-anchor="end">{fmt(y)}</text>')
    step = nice_max(x_max / 6)
    t = 0.0
    while t <= x_max + 1e-9:
        out.append(f'<text x="{px(t):.1f}" y="{top + ph + 16}" class="tick" text-anchor="middle">{fmt(t)}</text>')
        t += step
    out.append(f'<text x="{left + pw}" y="{height - 3}" class="tick" text-anchor="end">time (s)</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>')
    if marker is not None and 0 <= marker <= x_max:
        out.append(
            f'<line x1="{px(marker):.1f}" x2="{px(marker):.1f}" y1="{top}" y2="{top + ph}" class="marker"/>'
            f'<text x="{px(marker) + 4:.1f}" y="{top + 12}" class="tick">trigger</text>'
        )
    for label, colour, xs, ys, dashed in series:
        xs, ys = thin(xs, ys)
        if not xs:
            continue
        d = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(zip(xs, ys)))
        dash = ' stroke-dasharray="5,3"' if dashed else ""
        out.append(
            f'<path class="series" data-series="{html.escape(label)}" data-points="{len(xs)}" d="{d}" '
            f'fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
    out.append("</svg>")
    return "\n".join(out)


def legend(items):
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{c}"></i>{html.escape(label)}</span>' for label, c in items
    ) + "</div>"


def stampede_section(rows):
    if rows is None:
        return (
            '<section id="stampede"><h2>Stampede: origin queries per second, in 100 ms buckets</h2>'
            '<p class="missing">stampede.csv is missing from this directory: run <code>make fleet-lab</code> '
            "to draw this part.</p></section>"
        )
    x_max = max((max(r["t_s"]) for r in rows.values() if r["t_s"]), default=1)
    y_max = nice_max(max((max(r["origin_qps"]) for r in rows.values() if r["origin_qps"]), default=1))
    parts = [
        '<section id="stampede"><h2>Stampede: origin queries per second, in 100 ms buckets</h2>',
        "<p>Each protection layer, one chart each on the same scale: without the layers the origin's "
        "load is a sawtooth (every instance rebuilds at each TTL boundary); with them it is flat.</p>",
        table(
            ["row", "mean origin q/s", "peak origin q/s", "peak / mean", "mean hot-key q/s"],
            [
                [
                    name,
                    fmt(mean(r["origin_qps"])),
                    fmt(max(r["origin_qps"], default=0)),
                    fmt(max(r["origin_qps"], default=0) / mean(r["origin_qps"])) if mean(r["origin_qps"]) else "-",
                    fmt(mean(r["hot_origin_qps"])),
                ]
                for name, r in rows.items()
            ],
        ),
        '<div class="grid2">',
    ]
    for i, (name, r) in enumerate(rows.items()):
        c = PALETTE[i % len(PALETTE)]
        parts.append(
            "<figure>"
            + chart(
                name,
                [("origin q/s", c, r["t_s"], r["origin_qps"], False), ("hot key q/s", "#777777", r["t_s"], r["hot_origin_qps"], True)],
                x_max,
                y_max,
                chart_id=f"stampede-{i}",
            )
            + legend([("origin q/s", c), ("hot key q/s (dashed)", "#777777")])
            + "</figure>"
        )
    parts.append("</div></section>")
    return "\n".join(parts)


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def recovery(ts, goodput, trigger, hold=3.0, share=0.95):
    """Seconds from `trigger` until goodput stays at least `share` of its mean before `trigger`
    for `hold` seconds; None when that never happens within the run."""
    before = [g for t, g in zip(ts, goodput) if t < trigger]
    if not before:
        return None
    bar = share * mean(before)
    start = None
    for t, g in zip(ts, goodput):
        if t < trigger:
            continue
        if g >= bar:
            start = t if start is None else start
            if t - start >= hold:
                return start - trigger
        else:
            start = None
    return None


def metastable_section(rows, trigger):
    if rows is None:
        return (
            '<section id="metastable"><h2>Metastable failure</h2>'
            '<p class="missing">metastable.csv is missing from this directory: run <code>make metastable</code> '
            "to draw this part.</p></section>"
        )
    x_max = max((max(r["t_s"]) for r in rows.values() if r["t_s"]), default=1)
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(rows)}
    summary = []
    for name, r in rows.items():
        rec = recovery(r["t_s"], r["goodput_rps"], trigger) if trigger is not None else None
        before = [g for t, g in zip(r["t_s"], r["goodput_rps"]) if trigger is None or t < trigger]
        tail = [g for t, g in zip(r["t_s"], r["goodput_rps"]) if t >= x_max - 3]
        summary.append(
            [
                name,
                fmt(mean(before)),
                fmt(mean(tail)),
                fmt(max(r["origin_queue_depth"], default=0)),
                fmt(r["origin_queue_depth"][-1] if r["origin_queue_depth"] else 0),
                "-" if trigger is None else ("not within the run" if rec is None else f"{rec:.2f} s"),
            ]
        )
    parts = [
        '<section id="metastable"><h2>Metastable failure: before and after the gate</h2>',
        "<p>Open-loop arrivals, request timeout and retries; at the trigger the shared tier loses its data "
        "and every instance distrusts its L1. Recovery: from the trigger line until goodput stays at 95% of "
        "its mean before the trigger for 3 s.</p>",
        table(
            ["row", "goodput before (req/s)", "goodput, last 3 s", "peak queue", "queue at the end", "recovery"],
            summary,
        ),
        legend([(name, c) for name, c in colours.items()]),
        '<div class="grid2">',
    ]
    for col, title in METASTABLE_CHARTS:
        series = [(name, colours[name], r["t_s"], r[col], False) for name, r in rows.items()]
        y_max = None
        if col == "miss_rate":
            y_max = 1.0
        elif col == "breaker_open":
            # a count of instances: a multiple of 4, so the ticks are whole numbers
            y_max = 4.0 * max(1, math.ceil(max((max(r[col], default=0) for r in rows.values()), default=0) / 4))
        parts.append("<figure>" + chart(title, series, x_max, y_max, marker=trigger, chart_id=f"metastable-{col}") + "</figure>")
    parts.append("</div></section>")
    return "\n".join(parts)


def table(head, body):
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    b = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>"


STYLE = """
body { font: 14px/1.4 sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; }
.grid2 { display: grid; grid-template-columns: repeat(2, 600px); gap: 12px 24px; }
figure { margin: 0; }
table { border-collapse: collapse; margin: 8px 0 12px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.legend span { margin-right: 16px; white-space: nowrap; }
.legend i { display: inline-block; width: 14px; height: 4px; margin: 0 5px 3px 0; vertical-align: middle; }
.missing { color: #a00; }
svg .title { font-size: 13px; font-weight: bold; fill: #222; }
svg .tick { font-size: 11px; fill: #555; }
svg .grid { stroke: #e4e4e4; }
svg .frame { fill: none; stroke: #999; }
svg .marker { stroke: #a00; stroke-dasharray: 4,3; }
"""

# Records what the browser drew: each line's rendered length (the tests read it back from the
# page Chromium dumps). The page reads the same without it.
PROBE = """<script>
for (const p of document.querySelectorAll("path.series")) p.setAttribute("data-drawn", p.getTotalLength().toFixed(1));
document.body.setAttribute("data-drawn-paths", document.querySelectorAll("path.series[data-drawn]").length);
</script>"""


def render(directory, trigger=None):
    stampede = read_csv(os.path.join(directory, "stampede.csv"), STAMPEDE_COLUMNS)
    metastable = read_csv(os.path.join(directory, "metastable.csv"), METASTABLE_COLUMNS)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8"><title>healcache fleet lab</title>',
            f"<style>{STYLE}</style></head><body>",
            "<h1>healcache fleet lab</h1>",
            stampede_section(stampede),
            metastable_section(metastable, trigger),
            PROBE,
            "</body></html>",
        ]
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description="Writes DIR/dashboard.html from DIR/stampede.csv and DIR/metastable.csv.")
    ap.add_argument("dir")
    ap.add_argument("--trigger-s", type=float, default=None, help="when the metastable run's trigger began (s)")
    a = ap.parse_args(argv)
    if not os.path.isdir(a.dir):
        print(f"dashboard: {a.dir} is not a directory", file=sys.stderr)
        return 2
    try:
        page = render(a.dir, a.trigger_s)
    except BadInput as e:
        print(f"dashboard: {e}; nothing written", file=sys.stderr)
        return 2
    # written whole or not at all: a reader never sees half a page
    out = os.path.join(a.dir, "dashboard.html")
    fd, tmp = tempfile.mkstemp(dir=a.dir, prefix=".dashboard-", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, out)
    print(f"dashboard: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
