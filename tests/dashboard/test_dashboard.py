"""The dashboard generator (ops/dashboard/dashboard.py) on small fixtures of its two CSV files,
and the page it writes opened in a real headless Chromium: a screenshot and the page as drawn."""

import math
import os
import shutil
import struct
import subprocess
import sys
import zlib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "ops", "dashboard"))
import dashboard  # noqa: E402

SCRIPT = os.path.join(ROOT, "ops", "dashboard", "dashboard.py")
STAMPEDE_HEAD = "row,t_s,origin_qps,hot_origin_qps"
METASTABLE_HEAD = "row,t_s,goodput_rps,origin_queue_depth,origin_qps,miss_rate,breaker_open,lock_wait_ms"


def write_stampede(d, rows=("single-flight only", "+ fleet lock"), buckets=50):
    """One row a sawtooth (4 instances rebuild at every 500 ms boundary), the next flat."""
    lines = [STAMPEDE_HEAD]
    for i, row in enumerate(rows):
        for b in range(buckets):
            t = b / 10
            burst = (b % 5 == 0) and i == 0
            lines.append(f"{row},{t:.1f},{400 if burst else 20},{40 if burst else (10 if b % 5 == 0 else 0)}")
    (d / "stampede.csv").write_text("\n".join(lines) + "\n")


def write_metastable(d):
    """20 s per row, trigger at 5 s: 'pinned' never comes back; 'gated' is back at 9 s (4 s after)."""
    lines = [METASTABLE_HEAD]
    for row in ("no protection", "+ 503 gate"):
        for q in range(80):
            t = q / 4
            if t < 5:
                g, depth, miss = 900, 1, 0.05
            elif row == "no protection" or t < 9:
                g, depth, miss = 80, 200 * (t - 5), 1.0
            else:
                g, depth, miss = 905, 2, 0.06
            lines.append(f"{row},{t:.2f},{g},{depth:.0f},1600,{miss},{1 if 5 <= t < 5.5 else 0},{3.5 if t >= 5 else 0}")
    (d / "metastable.csv").write_text("\n".join(lines) + "\n")


def run(d, *args):
    return subprocess.run([sys.executable, SCRIPT, str(d), *args], capture_output=True, text=True, timeout=60)


def test_both_files_give_every_chart_with_every_point_and_nothing_from_elsewhere(tmp_path):
    write_stampede(tmp_path)
    write_metastable(tmp_path)
    r = run(tmp_path, "--trigger-s", "5")
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "dashboard.html").read_text()
    assert page.count('<svg class="chart"') == 2 + 6
    # two series per stampede chart (50 points each), two rows per metastable chart (80 each)
    assert page.count('data-points="50"') == 4
    assert page.count('data-points="80"') == 12
    for ref in ("src=", "href=", "url(", "@import", "<link", "<img", "<iframe"):
        assert ref not in page, ref
    assert "missing from this directory" not in page


def test_the_summary_shows_the_pinned_row_never_recovering_and_the_gated_row_after_4_s(tmp_path):
    write_metastable(tmp_path)
    assert run(tmp_path, "--trigger-s", "5").returncode == 0
    page = (tmp_path / "dashboard.html").read_text()
    assert "<td>no protection</td><td>900</td><td>80</td>" in page
    assert "not within the run" in page
    assert "<td>4.00 s</td>" in page


def test_recovery_needs_3_s_above_95_percent_of_the_baseline():
    ts = [i / 4 for i in range(60)]
    base = [100.0] * 20
    # back at 7 s, dips to 94% at 8 s (restarts the 3 s), holds from 8.25 s on
    after = [10.0 if t < 7 else (94.0 if t == 8 else 95.0) for t in ts[20:]]
    assert dashboard.recovery(ts, base + after, 5.0) == pytest.approx(3.25)
    assert dashboard.recovery(ts, base + [94.9] * 40, 5.0) is None


@pytest.mark.parametrize("present", ["stampede", "metastable", "neither"])
def test_a_missing_file_is_named_in_the_page(tmp_path, present):
    if present == "stampede":
        write_stampede(tmp_path)
    if present == "metastable":
        write_metastable(tmp_path)
    assert run(tmp_path).returncode == 0
    page = (tmp_path / "dashboard.html").read_text()
    assert ("stampede.csv is missing" in page) == (present != "stampede")
    assert ("metastable.csv is missing" in page) == (present != "metastable")


@pytest.mark.parametrize(
    "content,message",
    [
        ("row,t,origin_qps,hot_origin_qps\na,0,1,1\n", "the header must be exactly"),
        (STAMPEDE_HEAD + "\na,0,1\n", "line 2: 4 fields expected"),
        (STAMPEDE_HEAD + "\na,0,1,1\na,0.1,x,1\n", "line 3: origin_qps is not a number"),
        (STAMPEDE_HEAD + "\na,0,inf,1\n", "line 2: origin_qps is not finite"),
        (STAMPEDE_HEAD + "\na,0,nan,1\n", "not finite"),
    ],
)
def test_a_malformed_file_is_refused_with_its_line_and_the_old_page_stays(tmp_path, content, message):
    (tmp_path / "dashboard.html").write_text("old page")
    (tmp_path / "stampede.csv").write_text(content)
    r = run(tmp_path)
    assert r.returncode == 2
    assert message in r.stderr and "nothing written" in r.stderr
    assert (tmp_path / "dashboard.html").read_text() == "old page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dashboard.html", "stampede.csv"], "no temporary file left"


def test_a_directory_that_does_not_exist_is_refused(tmp_path):
    r = run(tmp_path / "absent")
    assert r.returncode == 2 and "is not a directory" in r.stderr


def test_rows_bound_holds_at_max_rows_and_refuses_one_more(tmp_path):
    rows = [f"r{i}" for i in range(dashboard.MAX_ROWS)]
    write_stampede(tmp_path, rows=rows, buckets=3)
    assert run(tmp_path).returncode == 0
    write_stampede(tmp_path, rows=rows + ["one more"], buckets=3)
    r = run(tmp_path)
    assert r.returncode == 2 and f"more than {dashboard.MAX_ROWS} rows" in r.stderr


def test_lines_bound_holds_at_max_lines_and_refuses_one_more(tmp_path):
    body = "".join(f"a,{i / 10:.1f},{i % 7},0\n" for i in range(dashboard.MAX_LINES))
    (tmp_path / "stampede.csv").write_text(STAMPEDE_HEAD + "\n" + body)
    rows = dashboard.read_csv(str(tmp_path / "stampede.csv"), dashboard.STAMPEDE_COLUMNS)
    assert len(rows["a"]["t_s"]) == dashboard.MAX_LINES
    (tmp_path / "stampede.csv").write_text(STAMPEDE_HEAD + "\n" + body + "a,0,0,0\n")
    with pytest.raises(dashboard.BadInput, match=f"more than {dashboard.MAX_LINES} data lines"):
        dashboard.read_csv(str(tmp_path / "stampede.csv"), dashboard.STAMPEDE_COLUMNS)


def test_a_long_series_is_thinned_to_max_points_keeping_its_peaks():
    n = 10 * dashboard.MAX_POINTS
    xs = [i / 10 for i in range(n)]
    ys = [500.0 if i % 50 == 0 else 10.0 for i in range(n)]
    tx, ty = dashboard.thin(xs, ys)
    assert len(tx) <= dashboard.MAX_POINTS
    assert ty.count(500.0) == n // 50, "every peak kept"
    assert tx == sorted(tx)
    short = list(range(dashboard.MAX_POINTS))
    assert dashboard.thin(short, short) == (short, short), "at the bound: untouched"


def test_row_names_are_data_never_markup(tmp_path):
    write_stampede(tmp_path, rows=['<script>alert(1)</script>', 'a "quoted" row'])
    assert run(tmp_path).returncode == 0
    page = (tmp_path / "dashboard.html").read_text()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'a &quot;quoted&quot; row' in page


# --- in a real browser ---------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]
WIDTH, HEIGHT = 1280, 1000


def chromium(tmp_path, *args):
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, colour, _, _, interlace = ihdr
    assert depth == 8 and colour in (2, 6) and interlace == 0, ihdr
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif f == 3:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((a + prev[i]) >> 1)) & 0xFF
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else (b if pb <= pc else c))) & 0xFF
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


@pytest.fixture(scope="module")
def page_dir(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: run .ci/setup-dashboard.sh (make test-dashboard does)")
    d = tmp_path_factory.mktemp("page")
    write_stampede(d)
    write_metastable(d)
    assert run(d, "--trigger-s", "5").returncode == 0
    return d


def test_chromium_draws_every_line_of_every_chart(page_dir, tmp_path):
    r = chromium(tmp_path, "--dump-dom", f"file://{page_dir / 'dashboard.html'}")
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    # the inline probe ran in the browser and measured every drawn line
    assert 'data-drawn-paths="16"' in dom
    lengths = [float(x.split('"')[1]) for x in dom.split("data-drawn=")[1:]]
    assert len(lengths) == 16
    assert all(n > 100 for n in lengths), lengths


def test_chromium_screenshot_has_the_size_asked_and_the_charts_colours(page_dir, tmp_path):
    shot = tmp_path / "dashboard.png"
    r = chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", f"file://{page_dir / 'dashboard.html'}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert shot.exists()
    w, h, bpp, rows = png_pixels(shot)
    assert (w, h) == (WIDTH, HEIGHT)
    colours = {}
    for line in rows[::2]:
        for i in range(0, len(line), bpp * 2):
            px = tuple(line[i : i + 3])
            colours[px] = colours.get(px, 0) + 1
    total = sum(colours.values())
    white = colours.get((255, 255, 255), 0)
    assert white < total * 0.98, "not blank"
    assert len(colours) > 50, "more than a flat fill"
    # the first two rows' line colours, exactly as drawn (anti-aliasing blends only the edges)
    for hexc in dashboard.PALETTE[:2]:
        rgb = tuple(int(hexc[k : k + 2], 16) for k in (1, 3, 5))
        assert colours.get(rgb, 0) > 20, f"{hexc} drawn"
