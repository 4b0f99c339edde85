"""One Python instance of `make fleet-lab`: the protocol and options of
redis/examples/lab_instance.rs (a JSON command per line on stdin, a JSON answer per line), with
a healcache.Cache whose loader asks the lab's origin over HTTP.

    python tests/fleet_lab/py_instance.py --origin URL --ttl-ms N [--redis URL] [--fleet-lock M]
        [--swr] [--grace-ms N] [--xfetch] [--jitter F] [--negative-ttl-ms N] [--lease-ms N]
        [--max-hold-ms N] [--extra-load-ms N] [--l2-timeout-ms N]
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import healcache

ARGS = sys.argv[1:]


def opt(name: str):
    return ARGS[ARGS.index(name) + 1] if name in ARGS else None


def seconds(name: str):
    v = opt(name)
    return None if v is None else int(v) / 1000


ORIGIN = opt("--origin")
EXTRA = seconds("--extra-load-ms") or 0.0
# urllib blocks: the loads run on threads, one per client at most, so the event loop never waits
POOL = ThreadPoolExecutor(max_workers=32)


def options() -> dict:
    o = {"ttl": seconds("--ttl-ms"), "max_entries": 10_000, "load_timeout": 10.0}
    if opt("--redis"):
        o.update(redis=opt("--redis"), fleet_lock=opt("--fleet-lock"), fleet_lock_lease=seconds("--lease-ms"),
                 fleet_lock_max_hold=seconds("--max-hold-ms"), l2_timeout=seconds("--l2-timeout-ms") or 1.0)
    o.update(grace=seconds("--grace-ms"), negative_ttl=seconds("--negative-ttl-ms"))
    if "--swr" in ARGS:
        o["stale_while_revalidate"] = True
    if "--xfetch" in ARGS:
        o["xfetch"] = True
    if opt("--jitter"):
        o["ttl_jitter"] = float(opt("--jitter"))
    return {k: v for k, v in o.items() if v is not None}


cache = healcache.Cache(**options())


def origin_get(key: str):
    try:
        with urllib.request.urlopen(f"{ORIGIN}/{urllib.parse.quote(key, safe='')}", timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return healcache.NOT_FOUND
        raise


async def load(key: str):
    value = await asyncio.get_running_loop().run_in_executor(POOL, origin_get, key)
    if EXTRA:
        await asyncio.sleep(EXTRA)
    return value


async def fetch(key: str):
    return await cache.fetch(key, lambda: load(key))


def zipf_cdf(n: int) -> list[float]:
    """Zipf(1.0) over 0..n by inverse CDF, as the Rust instance builds it."""
    acc, cdf = 0.0, []
    for k in range(1, n + 1):
        acc += 1.0 / k
        cdf.append(acc)
    return [c / acc for c in cdf]


async def run(cmd: dict) -> dict:
    until = cmd["until_ms"] / 1000
    tail, missing_from = cmd.get("tail", 400), cmd.get("missing_from", cmd.get("tail", 400))
    cdf = zipf_cdf(tail)
    lat: list[int] = []
    statuses: dict[str, int] = {}
    errors, first_error = 0, None

    async def client(c: int) -> None:
        nonlocal errors, first_error
        rng = random.Random(cmd.get("seed", 1) * 1000 + c)
        while time.time() < until:
            if rng.random() < 0.5:
                key = "hot"
            else:
                i = min(bisect.bisect_left(cdf, rng.random()), tail - 1)
                key = f"absent:{i}" if i >= missing_from else f"tail:{i}"
            t = time.perf_counter_ns()
            try:
                f = await fetch(key)
                statuses[f.status] = statuses.get(f.status, 0) + 1
            except Exception as e:  # counted and reported: the driver prints them
                errors += 1
                first_error = first_error or repr(e)
            lat.append(time.perf_counter_ns() - t)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(client(c) for c in range(cmd.get("clients", 32))))
    return {"requests": len(lat), "errors": errors, "first_error": first_error, "lat_ns": lat, "statuses": statuses}


async def warm(keys: list[str]) -> dict:
    done = await asyncio.gather(*(fetch(k) for k in keys), return_exceptions=True)
    return {"loaded": sum(1 for d in done if not isinstance(d, BaseException))}


STATS = ("l2_fenced_out", "fenced_writes", "loads", "l2_hits", "l2_writes")


async def answer(cmd: dict) -> dict:
    op, key = cmd.get("op"), cmd.get("key", "")
    if op == "warm":
        return await warm(cmd["keys"])
    if op == "run":
        return await run(cmd)
    if op == "fetch":
        f = await fetch(key)
        return {"status": f.status, "value": f.value}
    if op == "peek":
        return {"value": cache.peek(key)}
    if op == "stats":
        s = cache.stats()
        return {k: s[k] for k in STATS}
    return {"error": f"unknown op {op!r}"}


def main() -> None:
    loop = asyncio.new_event_loop()
    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        try:
            reply = loop.run_until_complete(answer(json.loads(line)))
        except Exception as e:  # the driver reports it
            reply = {"error": repr(e)}
        print(json.dumps(reply), flush=True)
    cache.close()
    POOL.shutdown(wait=False)


if __name__ == "__main__":
    main()
