#!/usr/bin/env python3
"""healcache's Python hit and write paths against dict, functools.lru_cache and cachetools.TTLCache.

Run with `make bench-python` (it builds the release package first). For each working set (1,000,
100,000 and 1,000,000 keys unless `--keys` says otherwise) one run times every peer on the same
keys and the same access sequences (uniform and Zipf s=1.0), loop overhead measured and
subtracted, and prints the ratios and the target bars; a summary of the get-hit ratios at every
size closes the run. Nothing is asserted.

  healcache get hit  <= 1.1 x functools.lru_cache hit,  <= 0.5 x cachetools.TTLCache get
  healcache set      <= 0.5 x cachetools.TTLCache set
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import platform
import random
import sys
import time

import cachetools

import healcache


def zipf_cum_weights(n: int, s: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (i**s) for i in range(1, n + 1)))


def timed_round_robin(runs, seq, repeat: int) -> dict:
    """Best of `repeat` runs of each, in ns per access. The runs take turns, so a burst of load
    from elsewhere on the machine hits every contender alike rather than one of them."""
    best = {name: float("inf") for name, _ in runs}
    for _ in range(repeat):
        for name, run in runs:
            t0 = time.perf_counter_ns()
            run(seq)
            best[name] = min(best[name], time.perf_counter_ns() - t0)
    return {name: ns / len(seq) for name, ns in best.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", default="1000,100000,1000000", help="working-set sizes, comma-separated")
    ap.add_argument("--ops", type=int, default=1_000_000, help="accesses per timed run")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    summary = []
    for n in (int(k) for k in args.keys.split(",")):
        summary += run(n, args)
    print("get hit against a functools.lru_cache hit, random access, by working set (bar <= 1.0x at every size):")
    print(f"  {'keys':>9}  {'access':10}  {'cache[key]':>10}  {'cache.get(key)':>14}")
    for n, dist, r_item, r_get in summary:
        print(f"  {n:>9,}  {dist:10}  {r_item:9.2f}x  {r_get:13.2f}x")


def run(n: int, args) -> list:
    """One working set of `n` keys: every peer timed, the report printed; the get-hit ratios
    to lru_cache returned for the summary."""
    rng = random.Random(args.seed)

    keys = [f"user:{i:07d}" for i in range(n)]
    values = [(i, f"value-{i}") for i in range(n)]

    hc = healcache.Cache(max_entries=2 * n)  # room for every key: every read is a hit
    d: dict = {}
    ttl = cachetools.TTLCache(maxsize=n, ttl=3600)

    @functools.lru_cache(maxsize=n)
    def lru(key: str):
        return d[key]

    for k, v in zip(keys, values):
        hc[k] = v
        d[k] = v
        ttl[k] = v
    for k in keys:
        lru(k)
    assert len(hc) == n and len(ttl) == n and lru.cache_info().currsize == n

    sequences = {
        "uniform": rng.choices(keys, k=args.ops),
        "zipf(1.0)": rng.choices(keys, cum_weights=zipf_cum_weights(n, 1.0), k=args.ops),
    }

    hc_get, hc_set, d_get, ttl_get = hc.get, hc.set, d.get, ttl.get

    def loop(seq):
        for k in seq:
            pass

    def hc_getitem(seq):
        for k in seq:
            hc[k]

    def hc_get_m(seq):
        for k in seq:
            hc_get(k)

    def dict_get(seq):
        for k in seq:
            d_get(k)

    def lru_hit(seq):
        for k in seq:
            lru(k)

    def ttl_get_m(seq):
        for k in seq:
            ttl_get(k)

    def hc_setitem(seq):
        for k in seq:
            hc[k] = k

    def hc_set_m(seq):
        for k in seq:
            hc_set(k, k)

    def dict_setitem(seq):
        for k in seq:
            d[k] = k

    def ttl_setitem(seq):
        for k in seq:
            ttl[k] = k

    reads = [
        ("healcache cache[key]", hc_getitem),
        ("healcache cache.get(key)", hc_get_m),
        ("dict.get", dict_get),
        ("functools.lru_cache hit", lru_hit),
        ("cachetools.TTLCache.get", ttl_get_m),
    ]
    writes = [
        ("healcache cache[key] = v", hc_setitem),
        ("healcache cache.set(key, v)", hc_set_m),
        ("dict[key] = v", dict_setitem),
        ("cachetools.TTLCache[key] = v", ttl_setitem),
    ]

    print(f"python {platform.python_version()} ({sys.implementation.name}), healcache {healcache.__version__}, "
          f"{platform.machine()}; {n:,} keys, {args.ops:,} accesses per run, best of {args.repeat}")
    print("ns per operation, net of the bare loop (raw in parentheses)\n")
    summary = []
    gc.disable()
    try:
        for dist, seq in sequences.items():
            raw = timed_round_robin([("bare loop", loop), *reads, *writes], seq, args.repeat)
            base = raw.pop("bare loop")
            res = {}
            print(f"== {dist} (bare loop {base:.1f} ns)")
            for name, ns in raw.items():
                res[name] = max(ns - base, 0.1)
                print(f"  {name:32s} {res[name]:8.1f}   ({ns:.1f})")
            ttl_set = res["cachetools.TTLCache[key] = v"]
            print("  ratios and bars (shown, not asserted):")
            lru_hit_ns = res["functools.lru_cache hit"]
            summary.append((n, dist, res["healcache cache[key]"] / lru_hit_ns, res["healcache cache.get(key)"] / lru_hit_ns))
            for name in ("healcache cache[key]", "healcache cache.get(key)"):
                r1 = res[name] / res["functools.lru_cache hit"]
                r2 = res[name] / res["cachetools.TTLCache.get"]
                print(f"    {name:30s} {r1:5.2f}x lru_cache hit [bar <= 1.1: {'met' if r1 <= 1.1 else 'MISSED'}]"
                      f"   {r2:5.3f}x TTLCache.get [bar <= 0.5: {'met' if r2 <= 0.5 else 'MISSED'}]"
                      f"   {res[name] / res['dict.get']:5.2f}x dict.get")
            for name in ("healcache cache[key] = v", "healcache cache.set(key, v)"):
                r = res[name] / ttl_set
                print(f"    {name:30s} {r:5.3f}x TTLCache set [bar <= 0.5: {'met' if r <= 0.5 else 'MISSED'}]"
                      f"   {res[name] / res['dict[key] = v']:5.2f}x dict set")
            print()
    finally:
        gc.enable()
    s = hc.stats()
    print(f"healcache stats: hits={s['hits']:,} misses={s['misses']:,} evictions={s['evictions']:,}\n")
    return summary


if __name__ == "__main__":
    main()
