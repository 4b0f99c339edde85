"""One Python instance of a polyglot fleet: a healcache.Cache on the shared tier, driven by one
JSON command per line on stdin, answering one JSON line each; the protocol of
redis/examples/polyglot_node.rs (bytes as {"$bytes": hex}, integers beyond 2^53 as {"$int": text}).

    python tests/polyglot/py_node.py --redis URL
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import healcache

EXACT = 2**53


class Unloadable(Exception):
    pass


def unloadable():
    raise Unloadable("not in L1 or L2")


def to_py(v):
    if isinstance(v, list):
        return [to_py(x) for x in v]
    if isinstance(v, dict):
        if set(v) == {"$bytes"}:
            return bytes.fromhex(v["$bytes"])
        if set(v) == {"$int"}:
            return int(v["$int"])
        return {k: to_py(x) for k, x in v.items()}
    return v


def to_wire(v):
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > EXACT:
        return {"$int": str(v)}
    if isinstance(v, list):
        return [to_wire(x) for x in v]
    if isinstance(v, dict):
        return {k: to_wire(x) for k, x in v.items()}
    return v


def now_us() -> int:
    return time.time_ns() // 1000


def main() -> None:
    url = sys.argv[sys.argv.index("--redis") + 1]
    cache = healcache.Cache(redis=url)
    loop = asyncio.new_event_loop()

    async def fetch(key):
        return await cache.fetch(key, unloadable)

    def read(key):
        try:
            f = loop.run_until_complete(fetch(key))
        except Unloadable:
            return {"status": "miss"}
        return {"status": f.status, "value": to_wire(f.value)}

    def landed(before):
        end = time.monotonic() + 5
        while cache.stats()["l2_writes"] <= before:
            if time.monotonic() > end:
                return {"error": "the L2 write did not land"}
            time.sleep(0.001)
        return {"at_us": now_us()}

    def answer(cmd):
        op, key = cmd.get("op"), cmd.get("key", "")
        if op == "set":
            before = cache.stats()["l2_writes"]
            cache.set(key, to_py(cmd["value"]))
            return landed(before)
        if op == "delete":
            before = cache.stats()["l2_writes"]
            cache.delete(key)
            return landed(before)
        if op == "fetch":
            return read(key)
        if op == "await":
            since = cmd.get("since_us") or now_us()
            until = time.monotonic() + cmd.get("deadline_ms", 2000) / 1000
            while True:
                r = read(key)
                done = r.get("value") == cmd["want"] if "want" in cmd else r["status"] == "miss"
                if done or time.monotonic() > until:
                    r["after_ms"] = (now_us() - since) / 1000
                    return r
                time.sleep(0.001)
        if op == "stats":
            s = cache.stats()
            return {k: s[k] for k in ("l2_hits", "l2_writes", "l2_bus_received", "l2_bus_invalidated", "l2_bus_gaps")}
        return {"error": f"unknown op {op!r}"}

    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        try:
            reply = answer(json.loads(line))
        except Exception as e:  # the orchestrator reports it
            reply = {"error": repr(e)}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
