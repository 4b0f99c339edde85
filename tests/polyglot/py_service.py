"""The Python service of `make fleet-demo`: the HTTP routes of redis/examples/fleet_service.rs,
plus `GET /heal/PREFIX`, which registers the origin as the source of truth of PREFIX and runs one
healing interval (its repairs land in L2 and the bus drops every other copy).

    python tests/polyglot/py_service.py --redis URL --port P --origin URL [--ttl-ms N] [--fleet-lock all]
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import healcache


def opt(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


ORIGIN = opt("--origin")
ttl_ms = opt("--ttl-ms")
cache = healcache.Cache(redis=opt("--redis"), ttl=int(ttl_ms) / 1000 if ttl_ms else None,
                        fleet_lock=opt("--fleet-lock", "refresh"), healing_sample_rate=1.0)


def origin_get(key):
    with urllib.request.urlopen(f"{ORIGIN}/{key}", timeout=5) as r:
        return json.loads(r.read())


async def fetch(key):
    return await cache.fetch(key, lambda: origin_get(key))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        parts = self.path.lstrip("/").split("/", 2)
        if parts[0] == "get" and len(parts) == 2:
            f = asyncio.run(fetch(parts[1]))
            body = {"status": f.status, "value": f.value}
        elif parts[0] == "set" and len(parts) == 3:
            before = cache.stats()["l2_writes"]
            cache.set(parts[1], parts[2])
            end = time.monotonic() + 5
            while cache.stats()["l2_writes"] <= before and time.monotonic() < end:
                time.sleep(0.001)
            body = {"ok": cache.stats()["l2_writes"] > before}
        elif parts[0] == "heal" and len(parts) == 2:
            cache.register_source(parts[1], ORIGIN + "/{key}", decode="json", allow_private=True)
            # the first interval starts the verifier's lease keeper: until this instance holds
            # the prefix's lease it checks only what L2 lacks, so the entries in L2 wait for it
            body = dict(cache.verify_now_sync())
            end = time.monotonic() + 5
            while body["drift"] == 0 and time.monotonic() < end:
                if cache.stats()["l2_verifier_held"] > 0:
                    body = dict(cache.verify_now_sync())
                    break
                time.sleep(0.005)
        elif parts[0] == "stats":
            body = cache.stats()
        else:
            body = {"error": "not found"}
        data = json.dumps(body, default=str).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(opt("--port"))), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()  # the demo stops this service by closing stdin (or by its pid)
server.shutdown()
cache.close()
