"""An L2 hit from Python (L1 cold) beside redis-py GET of the same bytes plus a MessagePack decode of
the payload (msgpack), against one real redis-server on loopback (started by the test kit, stopped
by its pid), interleaved rounds in one run; prints each side's median per operation and the ratio.

    make bench-l2-python

The healcache side is a ``get_or_load_sync`` from a fresh cache (L1 cold): the core's READ script
call (value and PTTL), the envelope's checks, the decode into Python objects, the L1 insert. The
peer skips the envelope's checks: GET, then decode the bytes after the 56-byte header.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import msgpack
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/python"))
import healcache  # noqa: E402
from rediskit import RedisServer  # noqa: E402

KEYS = 2000
ROUNDS = 9
HEADER = 56  # the envelope's fixed header (docs/wire-format.md)


def unloadable():
    raise RuntimeError("the loader ran")


def main() -> None:
    with RedisServer() as server:
        writer = healcache.Cache(redis=server.url, max_entries=1_000_000)
        for i in range(KEYS):  # 64-byte payloads, as the Rust and Node benches use
            writer.set(f"k{i}", {"id": i, "name": "a name of some length", "pad": "xxxxxxxx"})
        while writer.stats()["l2_writes"] + writer.stats()["l2_errors"] < KEYS:
            time.sleep(0.01)
        assert writer.stats()["l2_writes"] == KEYS, writer.stats()
        peer = redis.Redis.from_url(server.url)
        l2_keys = {}
        for k in peer.scan_iter(match="hc1:*:v:*", count=1000):
            l2_keys[k.split(b":v:", 1)[1].decode()] = k
        keys = [l2_keys[f"k{i}"] for i in range(KEYS)]
        ours, theirs = [], []
        for _ in range(ROUNDS):
            c = healcache.Cache(redis=server.url, max_entries=1_000_000)
            t = time.perf_counter()
            for i in range(KEYS):
                if c.get_or_load_sync(f"k{i}", unloadable)["id"] != i:
                    raise AssertionError("wrong value")
            ours.append((time.perf_counter() - t) * 1e9 / KEYS)
            assert c.stats()["l2_hits"] == KEYS, c.stats()["l2_hits"]
            t = time.perf_counter()
            for i in range(KEYS):
                if msgpack.unpackb(peer.get(keys[i])[HEADER:])["id"] != i:
                    raise AssertionError("wrong value")
            theirs.append((time.perf_counter() - t) * 1e9 / KEYS)
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"L2 hit, L1 cold ({KEYS} keys, {ROUNDS} interleaved rounds, median ns/op)")
        print(f"  healcache get_or_load_sync    {a:.0f} ns (rounds {' '.join(f'{x:.0f}' for x in ours)})")
        print(f"  redis-py GET + msgpack decode {b:.0f} ns (rounds {' '.join(f'{x:.0f}' for x in theirs)})")
        print(f"  ratio {a / b:.2f}x")


if __name__ == "__main__":
    main()
