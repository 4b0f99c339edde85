"""`make fleet-demo`: a redis-server, one Rust, one Python and one Node HTTP service on 127.0.0.1
over one shared slow origin (50 ms a query, counting queries per key), traffic at all three, and a
table of what the fleet did: cross-language hits, origin rebuilds per TTL boundary with the fleet
lock, a write in one language invalidating the others, and a self-healing repair in one process
fixing all. Everything is stopped by its pid at the end, also on Ctrl-C or a failure.

`run()` returns the figures; tests/polyglot/test_fleet_demo.py runs it as a smoke test."""

from __future__ import annotations

import collections
import json
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "python")]

from fleet import node_exe, rust_binary  # noqa: E402
from rediskit import RedisServer, free_port  # noqa: E402

import subprocess  # noqa: E402

ORIGIN_MS = 50
TTL_MS = 1000


class Origin:
    """The slow origin: `GET /KEY` answers `values[KEY]` (JSON) after 50 ms, counting per key."""

    def __init__(self):
        self.values = {}
        self.queries = collections.Counter()
        lock = threading.Lock()
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                key = urllib.parse.unquote(self.path.lstrip("/"))
                time.sleep(ORIGIN_MS / 1000)
                with lock:
                    me.queries[key] += 1
                    data = json.dumps(me.values.get(key, f"{key}@origin")).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Service:
    def __init__(self, lang, redis_url, origin_url):
        self.lang, self.port = lang, free_port()
        common = ["--redis", redis_url, "--port", str(self.port), "--origin", origin_url,
                  "--ttl-ms", str(TTL_MS), "--fleet-lock", "all"]
        exe = {"rust": [rust_binary("fleet_service")], "python": [sys.executable, str(HERE / "py_service.py")],
               "node": [node_exe(), str(HERE / "js_service.mjs")]}[lang]
        self.proc = subprocess.Popen(exe + common, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the {lang} service did not start ({line!r})")

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/{path}", timeout=30) as r:
            return json.loads(r.read())

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()  # by its pid
                self.proc.wait()


def status_value(reply):
    return reply["status"], reply["value"]


def first_read_of(service, path, value, within=5.0):
    """(status, value) of `service`'s first read of `path` that returns `value` (its copy dropped
    by a bus message, the read goes to L2), or of its last read after `within` seconds."""
    end = time.monotonic() + within
    while True:
        seen = status_value(service.get(path))
        if seen[1] == value or time.monotonic() > end:
            return seen
        time.sleep(0.01)


def hammer(services, keys, seconds, clients=3):
    """`clients` threads per service read `keys` in turn for `seconds`; statuses per service."""
    statuses = {s.lang: collections.Counter() for s in services}
    end = time.monotonic() + seconds

    def client(s, i):
        n = i
        while time.monotonic() < end:
            statuses[s.lang][s.get(f"get/{keys[n % len(keys)]}")["status"]] += 1
            n += 1

    threads = [threading.Thread(target=client, args=(s, i)) for s in services for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def run(seconds=3.5, out=print):
    redis = origin = None
    services = []
    try:
        redis = RedisServer()
        origin = Origin()
        services = [Service(lang, redis.url, origin.url) for lang in ("rust", "python", "node")]
        rust, python, node = services
        rows = []

        # 1. cross-language hits: one service loads, the other two read it from L2
        first = [s.get("get/item:1")["status"] for s in services]
        rows.append(("item:1 read by rust, python, node", " / ".join(first), f"origin queries {origin.queries['item:1']}"))

        # 2. a hot key and a few others from all three for a few TTLs, fleet lock "all"
        keys = ["hot", "hot", "hot", "k1", "k2", "k3"]
        start = time.monotonic()
        statuses = hammer(services, keys, seconds)
        windows = int((time.monotonic() - start) * 1000 // TTL_MS) + 1
        for s in services:
            rows.append((f"{s.lang} statuses", ", ".join(f"{k} {v}" for k, v in sorted(statuses[s.lang].items())), ""))
        rows.append(("hot: origin rebuilds fleet-wide", f"{origin.queries['hot']} over {windows} TTL windows",
                     "at most one per TTL boundary"))

        # 3. a write in Node: Rust and Python read the new value
        node.get("get/item:2"), rust.get("get/item:2"), python.get("get/item:2")
        node.get("set/item:2/written-by-node")
        # the write's bus message drops the copies of the other two (within the bus's bound): each
        # one's first read of the new value is what it shows (a later read of it is an L1 hit)
        after_write = [first_read_of(s, "get/item:2", "written-by-node") for s in (rust, python)]
        rows.append(("item:2 set in node, read by rust / python", " / ".join(f"{v} ({st})" for st, v in after_write), ""))

        # 4. the origin changes behind the cache; one healing interval in Python repairs all
        for s in services:
            s.get("get/cfg:1")
        origin.values["cfg:1"] = "cfg:1@origin-v2"
        stale = [s.get("get/cfg:1")["value"] for s in services]
        report = python.get("heal/cfg:")
        # the repair's bus message reaches the other two: their next read goes to L2
        healed = [first_read_of(s, "get/cfg:1", "cfg:1@origin-v2") for s in (rust, node)]
        rows.append(("cfg:1 before the repair (r/p/n)", " / ".join(stale), ""))
        rows.append(("python heal: verified / drift / repaired", f"{report['verified']} / {report['drift']} / {report['repaired']}", ""))
        rows.append(("cfg:1 after, read by rust / node", " / ".join(f"{v} ({st})" for st, v in healed), ""))

        width = max(len(r[0]) for r in rows)
        out(f"{'what':<{width}}  result")
        for what, result, note in rows:
            out(f"{what:<{width}}  {result}" + (f"   [{note}]" if note else ""))
        return {"first": first, "hot_queries": origin.queries["hot"], "windows": windows, "statuses": statuses,
                "after_write": after_write, "stale": stale, "report": report, "healed": healed,
                "item1_queries": origin.queries["item:1"]}
    finally:
        for s in services:
            s.close()
        if origin:
            origin.close()
        if redis:
            redis.close()


if __name__ == "__main__":
    try:
        run()
    except KeyboardInterrupt:
        sys.exit(130)
