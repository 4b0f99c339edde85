"""The load path's answers agree across calls: a sync load past ``load_timeout``, the counting of a
cached "not found", a per-call ``xfetch``, and a compare-and-delete that removes nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import healcache
from healcache import NOT_FOUND, Cache, ManualClock


def test_p1_p2_sync_load_past_load_timeout_is_a_timeout_for_every_caller() -> None:
    """P1/P2: one flight, one outcome. The thread running a sync loader cannot be interrupted, so
    it gets ``LoadTimeout`` when the loader returns; a thread waiting on the same load gets it at
    its deadline; the late value is not stored; the timeout is counted once."""
    c = Cache(load_timeout=0.1)
    waited: dict[str, Any] = {}

    def waiter() -> None:
        # joins the load once it is under way (the main thread starts it): a bounded wait for
        # it, not a fixed sleep the main thread may not have started it within
        end = time.monotonic() + 10
        while c.stats()["in_flight"] == 0 and time.monotonic() < end:
            time.sleep(0.001)
        t = time.monotonic()
        try:
            waited["r"] = c.get_or_load_sync("k", lambda: "joined")
        except healcache.LoadTimeout as e:
            waited["r"] = e
        waited["after"] = time.monotonic() - t

    th = threading.Thread(target=waiter)
    th.start()

    def slow() -> str:
        time.sleep(0.4)
        return "late"

    with pytest.raises(healcache.LoadTimeout):
        c.get_or_load_sync("k", slow)
    th.join()
    assert isinstance(waited["r"], healcache.LoadTimeout)
    assert waited["after"] < 0.3
    s = c.stats()
    assert (s["loads"], s["load_timeouts"], s["inserts"]) == (1, 1, 0)
    assert c.get("k") is None


def test_p2_cached_sync_function_past_load_timeout_raises_load_timeout() -> None:
    """P2: the decorator goes through ``get_or_load_sync``: the same outcome, nothing cached."""
    c = Cache(load_timeout=0.1)

    @c.cached
    def f(x: int) -> int:
        time.sleep(0.3)
        return x

    with pytest.raises(healcache.LoadTimeout):
        f(1)
    assert len(c) == 0
    assert c.stats()["load_timeouts"] == 1


@pytest.mark.asyncio
async def test_p2_async_call_of_a_sync_loader_past_load_timeout_matches_the_sync_call() -> None:
    """P2: ``get_or_load`` with the same blocking loader answers as ``get_or_load_sync`` does."""
    c = Cache(load_timeout=0.1)

    def slow() -> str:
        time.sleep(0.3)
        return "late"

    with pytest.raises(healcache.LoadTimeout):
        await c.get_or_load("k", slow)
    assert c.get("k") is None
    assert c.stats()["load_timeouts"] == 1


@pytest.mark.asyncio
async def test_every_read_of_a_cached_not_found_is_a_negative_hit() -> None:
    """One set of counters: each read of a cached "not found" adds one to ``negative_hits`` and
    nothing to ``hits``, whichever call reads it."""
    c = Cache(negative_ttl=5)
    await c.fetch("x", lambda: NOT_FOUND)

    def counts() -> tuple[int, int, int]:
        s = c.stats()
        return s["hits"], s["misses"], s["negative_hits"]

    def gol_sync() -> None:
        with pytest.raises(healcache.NotFound):
            c.get_or_load_sync("x", lambda: 1)

    async def gol() -> None:
        with pytest.raises(healcache.NotFound):
            await c.get_or_load("x", lambda: 1)

    async def fetch() -> None:
        assert (await c.fetch("x", lambda: 1)).status == "negative-hit"

    reads: list[tuple[str, Any]] = [
        ("get", lambda: c.get("x")),
        ("get_entry", lambda: c.get_entry("x")),
        ("get_or_load_sync", gol_sync),
        ("get_or_load", gol),
        ("fetch", fetch),
    ]
    for name, read in reads:
        before = counts()
        r = read()
        if asyncio.iscoroutine(r):
            await r
        after = counts()
        assert tuple(a - b for a, b in zip(after, before)) == (0, 0, 1), name


@pytest.mark.asyncio
async def test_per_call_xfetch_turns_early_refresh_on_with_the_cache_beta() -> None:
    """``xfetch=True`` per call on a cache built without XFetch refreshes early, with the
    cache's ``xfetch_beta``."""
    clk = ManualClock()
    c = Cache(clock=clk, ttl=1, xfetch_beta=1000, seed=11)

    async def load() -> str:
        clk.advance(0.1)
        return "v"

    assert (await c.fetch("k", load, xfetch=True)).status == "loaded"
    clk.advance(0.8)
    assert (await c.fetch("k", load)).status == "hit"
    assert (await c.fetch("k", load, xfetch=True)).status == "early-refresh"
    assert c.stats()["early_refreshes"] == 1


@pytest.mark.asyncio
async def test_delete_if_version_0_of_a_stale_key_keeps_the_stale_copy() -> None:
    """A compare-and-delete that removes nothing live changes nothing: the stale copy stays for
    fail-safe, as after a version mismatch."""
    clk = ManualClock()
    c = Cache(clock=clk, ttl=1, grace=100)
    c.set("m", "old")
    clk.advance(2)
    assert c.delete("m", if_version=0) is False
    assert len(c) == 1

    async def down() -> str:
        raise RuntimeError("origin down")

    f = await c.fetch("m", down)
    assert (f.value, f.status) == ("old", "stale-fail-safe")
