"""Read-through over Redis from asyncio beside cashews (its Redis backend), against one real
redis-server on loopback (started by the test kit, stopped by its pid), interleaved rounds in one
run; prints each side's median per operation and the ratio.

    make bench-l2-python

Two readings of 2,000 keys of 64-byte documents:
- L2 hit, L1 cold: healcache ``await get_or_load`` on a fresh cache (the value is in Redis) beside
  cashews ``await cache.get`` (one Redis GET and its unpickling).
- a repeated read (L1 warm): healcache ``await get_or_load`` beside a cashews ``@cache``-decorated
  loader (a Redis GET per call), and beside cashews with client-side caching (``client_side=True``:
  a local copy invalidated by Redis tracking), the closest it has to an L1.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

from cashews import Cache as Cashews

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/python"))
import healcache  # noqa: E402
from rediskit import RedisServer  # noqa: E402

KEYS = 2000
ROUNDS = 9


def doc(i: int) -> dict:
    return {"id": i, "name": "a name of some length", "pad": "xxxxxxxx"}


async def unloadable():
    raise RuntimeError("the loader ran")


async def timed(f) -> float:
    t = time.perf_counter()
    await f()
    return (time.perf_counter() - t) * 1e9 / KEYS


def report(title: str, rows: list[tuple[str, list[float]]]) -> None:
    print(f"{title} ({KEYS} keys, {ROUNDS} interleaved rounds, median ns/op)")
    base = statistics.median(rows[0][1])
    for name, xs in rows:
        m = statistics.median(xs)
        print(f"  {name:44} {m:8.0f} ns  {m / base:5.2f}x of healcache (rounds {' '.join(f'{x:.0f}' for x in xs)})")


async def main() -> None:
    with RedisServer() as server:
        writer = healcache.Cache(redis=server.url, max_entries=1_000_000)
        for i in range(KEYS):
            writer.set(f"k{i}", doc(i))
        while writer.stats()["l2_writes"] < KEYS:
            await asyncio.sleep(0.01)
        plain = Cashews()
        plain.setup(server.url)
        tracked = Cashews()
        tracked.setup(server.url, client_side=True)
        for i in range(KEYS):
            await plain.set(f"c{i}", doc(i), expire=3600)

        @plain(ttl="1h", key="d{i}")
        async def load(i: int) -> dict:
            return doc(i)

        @tracked(ttl="1h", key="t{i}")
        async def load_tracked(i: int) -> dict:
            return doc(i)

        warm = healcache.Cache(redis=server.url, max_entries=1_000_000)
        for i in range(KEYS):
            assert (await warm.get_or_load(f"k{i}", unloadable))["id"] == i
            assert (await load(i))["id"] == i
            assert (await load_tracked(i))["id"] == i

        cold_ours, cold_theirs, warm_ours, warm_theirs, warm_tracked = [], [], [], [], []
        for _ in range(ROUNDS):
            cold = healcache.Cache(redis=server.url, max_entries=1_000_000)

            async def ours_cold() -> None:
                for i in range(KEYS):
                    if (await cold.get_or_load(f"k{i}", unloadable))["id"] != i:
                        raise AssertionError("wrong value")

            async def theirs_cold() -> None:
                for i in range(KEYS):
                    if (await plain.get(f"c{i}"))["id"] != i:
                        raise AssertionError("wrong value")

            async def ours_warm() -> None:
                for i in range(KEYS):
                    if (await warm.get_or_load(f"k{i}", unloadable))["id"] != i:
                        raise AssertionError("wrong value")

            async def theirs_warm() -> None:
                for i in range(KEYS):
                    if (await load(i))["id"] != i:
                        raise AssertionError("wrong value")

            async def tracked_warm() -> None:
                for i in range(KEYS):
                    if (await load_tracked(i))["id"] != i:
                        raise AssertionError("wrong value")

            cold_ours.append(await timed(ours_cold))
            assert cold.stats()["l2_hits"] == KEYS
            cold_theirs.append(await timed(theirs_cold))
            warm_ours.append(await timed(ours_warm))
            warm_theirs.append(await timed(theirs_warm))
            warm_tracked.append(await timed(tracked_warm))
        report("L2 hit, L1 cold", [("healcache await get_or_load", cold_ours), ("cashews await get (Redis)", cold_theirs)])
        report(
            "repeated read, L1 warm",
            [
                ("healcache await get_or_load", warm_ours),
                ("cashews @cache (Redis)", warm_theirs),
                ("cashews @cache (Redis, client_side=True)", warm_tracked),
            ],
        )
        await plain.close()
        await tracked.close()


if __name__ == "__main__":
    asyncio.run(main())
