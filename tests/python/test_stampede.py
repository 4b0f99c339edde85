"""Stampede protection from Python: the `Cache(...)` options, `fetch` and its status
values, background refreshes on the caller's event loop, negative caching, fenced rebuilds,
stats and Prometheus text. The layers themselves are the core's (tested in core/tests/stampede.rs);
these tests check the conversion and the async bridging, with small real durations and gates
(asyncio events) instead of timing assertions.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from typing import Any, Awaitable, Callable

import pytest

import healcache
from healcache import NOT_FOUND, Cache, Fetched


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Waits (yielding to the loop) until `cond()` holds; fails after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


async def eventually(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Waits (yielding to the loop) until `cond()` holds or `timeout` seconds pass; returns
    whether it holds. Fails nothing itself: the caller's own assertion, with its message, says
    what did not happen. For background work a fixed sleep cannot be sure to outlast on a
    loaded machine."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


class Source:
    """A loader counting its calls; calls after the first `free` ones wait for `gate`."""

    def __init__(self, free: int = 1, value: Callable[[int], Any] = lambda n: f"v{n}") -> None:
        self.calls = 0
        self.finished = 0
        self.free = free
        self.gate = asyncio.Event()
        self.value = value

    async def __call__(self) -> Any:
        self.calls += 1
        n = self.calls
        if n > self.free:
            await self.gate.wait()
        self.finished += 1
        return self.value(n)


# -- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"grace": -1}, "grace"),
        ({"grace": math.nan}, "grace"),
        ({"stale_while_revalidate": True}, "stale_while_revalidate"),  # needs grace
        ({"load_soft_timeout": 0}, "load_soft_timeout"),
        ({"load_soft_timeout": 2, "load_timeout": 1}, "load_soft_timeout"),
        ({"xfetch": True, "xfetch_beta": 0}, "xfetch_beta"),
        ({"xfetch_beta": 5000}, "xfetch_beta"),
        ({"refresh_after": -0.5}, "refresh_after"),
        ({"ttl_jitter": 1.5}, "ttl_jitter"),
        ({"ttl_jitter": -0.1}, "ttl_jitter"),
        ({"negative_ttl": 0}, "negative_ttl"),
        ({"negative_ttl": math.inf}, "negative_ttl"),
        ({"max_negative_share": 2}, "max_negative_share"),
    ],
)
def test_invalid_stampede_options_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(healcache.InvalidConfig) as ei:
        Cache(**kwargs)
    assert isinstance(ei.value, ValueError)
    assert ei.value.field == field
    assert f"`{field}`" in str(ei.value)
    assert "_ms" not in ei.value.reason  # reasons use the Python names


def test_valid_stampede_options_build() -> None:
    # Every layer at once: the binding supplies the core's timer and spawner.
    Cache(
        ttl=1,
        grace=2,
        stale_while_revalidate=True,
        load_timeout=1,
        load_soft_timeout=0.5,
        xfetch=True,
        xfetch_beta=2,
        refresh_after=0.5,
        ttl_jitter=0.2,
        negative_ttl=1,
        max_negative_share=0.5,
    )
    Cache(xfetch=False, stale_while_revalidate=False, max_negative_share=0)


def test_flags_are_booleans() -> None:
    with pytest.raises(TypeError):
        Cache(xfetch="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Cache(grace=1, stale_while_revalidate=1)  # type: ignore[arg-type]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "kwargs, field",
    [({"negative_ttl": -1}, "negative_ttl"), ({"soft_timeout": 0}, "soft_timeout"), ({"ttl": 0}, "ttl")],
)
async def test_invalid_per_call_options_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(healcache.InvalidConfig) as ei:
        await Cache().fetch("k", lambda: 1, **kwargs)
    assert ei.value.field == field


# -- statuses ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fetch_status_loaded_coalesced_hit() -> None:
    c = Cache()
    src = Source(free=0)
    first = asyncio.ensure_future(c.fetch("k", src))
    second = asyncio.ensure_future(c.fetch("k", src))
    await until(lambda: src.calls == 1)
    src.gate.set()
    got = await asyncio.gather(first, second)
    assert sorted(f.status for f in got) == ["coalesced", "loaded"]
    assert all(f.value == "v1" for f in got)
    f = await c.fetch("k", src)
    assert isinstance(f, Fetched) and isinstance(f, tuple)
    value, status = f
    assert (value, status) == ("v1", "hit") and f == Fetched("v1", "hit")
    assert src.calls == 1


@pytest.mark.asyncio
async def test_fetch_takes_sync_loaders_and_per_call_ttl() -> None:
    c = Cache()
    assert await c.fetch("s", lambda: "sync", ttl=30) == ("sync", "loaded")
    _, _, left = c.get_entry("s")  # type: ignore[misc]
    assert left is not None and 0 < left <= 30
    assert await c.fetch("forever", lambda: 1, ttl=math.inf) == (1, "loaded")
    assert c.get_entry("forever")[2] is None  # type: ignore[index]


@pytest.mark.asyncio
async def test_loader_exception_reaches_fetch_unchanged() -> None:
    c = Cache()
    boom = KeyError("db down")

    def loader() -> Any:
        raise boom

    with pytest.raises(KeyError) as ei:
        await c.fetch("k", loader)
    assert ei.value is boom


# -- negative caching ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_negative_loaded_then_negative_hit_until_its_ttl() -> None:
    c = Cache(negative_ttl=0.2)
    calls = 0

    async def missing() -> Any:
        nonlocal calls
        calls += 1
        return NOT_FOUND

    assert await c.fetch("gone", missing) == (None, "negative-loaded")
    assert await c.fetch("gone", missing) == (None, "negative-hit")
    assert calls == 1
    assert c.get("gone") is None and "gone" not in c
    with pytest.raises(healcache.NotFound):  # get_or_load: a cached "not found" raises
        await c.get_or_load("gone", lambda: "never called")
    s = c.stats()
    assert (s["negative_entries"], s["negative_hits"]) == (1, 3)
    await asyncio.sleep(0.25)  # the negative entry's own TTL passes
    assert await c.fetch("gone", missing) == (None, "negative-loaded")
    assert calls == 2
    c.set("gone", "back")  # a real value replaces it
    assert await c.fetch("gone", missing) == ("back", "hit")
    assert c.stats()["negative_entries"] == 0


@pytest.mark.asyncio
async def test_not_found_without_negative_ttl_is_not_cached_unless_per_call() -> None:
    c = Cache()
    assert await c.fetch("k", lambda: NOT_FOUND) == (None, "negative-loaded")
    assert len(c) == 0
    assert await c.fetch("k", lambda: NOT_FOUND, negative_ttl=5) == (None, "negative-loaded")
    assert len(c) == 1
    assert await c.fetch("k", lambda: pytest.fail("cached")) == (None, "negative-hit")


@pytest.mark.asyncio
async def test_get_or_load_raises_not_found_for_a_loaded_not_found() -> None:
    c = Cache(negative_ttl=5)

    async def missing() -> Any:
        return NOT_FOUND

    for _ in range(2):  # loaded, then cached
        with pytest.raises(healcache.NotFound) as ei:
            await c.get_or_load("k", missing)
        assert isinstance(ei.value, LookupError)
    assert c.stats()["loads"] == 1


def test_get_or_load_sync_not_found() -> None:
    c = Cache(negative_ttl=5)
    with pytest.raises(healcache.NotFound):
        c.get_or_load_sync("k", lambda: NOT_FOUND)
    assert "k" not in c


@pytest.mark.asyncio
async def test_negative_entries_are_bounded() -> None:
    c = Cache(max_entries=100, negative_ttl=5, max_negative_share=0.05)
    for i in range(20):
        await c.fetch(f"nf{i}", lambda: NOT_FOUND)
    s = c.stats()
    assert (s["negative_entries"], s["negative_refused"]) == (5, 15)


def test_not_found_sentinel() -> None:
    import copy
    import pickle

    assert repr(NOT_FOUND) == "healcache.NOT_FOUND"
    assert copy.deepcopy(NOT_FOUND) is NOT_FOUND
    assert pickle.loads(pickle.dumps(NOT_FOUND)) is NOT_FOUND


# -- stale-while-revalidate, fail-safe, soft timeout ---------------------------------------------


@pytest.mark.asyncio
async def test_stale_while_revalidate_one_background_refresh() -> None:
    c = Cache(ttl=0.03, grace=30, stale_while_revalidate=True)
    src = Source()
    assert await c.fetch("k", src) == ("v1", "loaded")
    await asyncio.sleep(0.06)
    # Many stale reads while the refresh is held at its gate: each returns the stale value at
    # once (the refresh has not finished), and only one loader call runs.
    got = await asyncio.gather(*[c.fetch("k", src) for _ in range(50)])
    assert all(f == ("v1", "stale") for f in got)
    await until(lambda: src.calls == 2)  # the refresh starts at the loop's next turn
    for _ in range(10):
        assert await c.fetch("k", src) == ("v1", "stale")
    assert src.calls == 2 and src.finished == 1
    assert c.get("k") is None  # plain reads never see stale values
    # Nobody awaits the refresh: it runs to completion on this loop once its gate opens.
    src.gate.set()
    await until(lambda: c.get("k") == "v2")
    assert src.finished == 2
    f = await c.fetch("k", src)
    assert f.value == "v2" and f.status in ("hit", "stale")  # (ttl is short: it may be stale again)
    assert c.stats()["stale_served_swr"] >= 60


@pytest.mark.asyncio
async def test_stale_while_revalidate_per_call() -> None:
    c = Cache(ttl=0.03, grace=30)
    src = Source()
    await c.fetch("k", src)
    await asyncio.sleep(0.06)
    assert await c.fetch("k", src, stale_while_revalidate=True) == ("v1", "stale")
    src.gate.set()
    await until(lambda: c.get("k") == "v2")
    # without it (the cache's default), a stale entry is a foreground load
    c2 = Cache(ttl=0.03, grace=30, stale_while_revalidate=True)
    src2 = Source(free=5)
    await c2.fetch("k", src2)
    await asyncio.sleep(0.06)
    assert await c2.fetch("k", src2, stale_while_revalidate=False) == ("v2", "loaded")


@pytest.mark.asyncio
async def test_background_refresh_with_a_sync_loader() -> None:
    c = Cache(ttl=0.03, grace=30, stale_while_revalidate=True)
    n = iter(range(1, 100))
    assert await c.fetch("k", lambda: next(n)) == (1, "loaded")
    await asyncio.sleep(0.06)
    assert await c.fetch("k", lambda: next(n)) == (1, "stale")
    await until(lambda: c.get("k") == 2)


@pytest.mark.asyncio
async def test_background_refresh_keeps_the_callers_contextvars() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    c = Cache(ttl=0.03, grace=30, stale_while_revalidate=True)
    seen = []

    async def loader() -> str:
        seen.append(var.get())
        return var.get()

    var.set("first")
    await c.fetch("k", loader)
    await asyncio.sleep(0.06)
    var.set("second")
    assert await c.fetch("k", loader) == ("first", "stale")
    await until(lambda: c.get("k") == "second")
    assert seen == ["first", "second"]


@pytest.mark.asyncio
async def test_failing_background_refresh_keeps_the_stale_value(caplog: pytest.LogCaptureFixture) -> None:
    c = Cache(ttl=0.03, grace=30, stale_while_revalidate=True)
    c.set("k", "old")
    await asyncio.sleep(0.06)

    async def failing() -> Any:
        raise RuntimeError("db down")

    assert await c.fetch("k", failing) == ("old", "stale")
    await until(lambda: c.stats()["load_errors"] == 1 and c.stats()["in_flight"] == 0)
    assert await c.fetch("k", failing) == ("old", "stale")  # not cached: the next read refreshes again
    await until(lambda: c.stats()["load_errors"] == 2)
    assert "never retrieved" not in caplog.text


@pytest.mark.asyncio
async def test_fail_safe_serves_stale_within_grace() -> None:
    c = Cache(ttl=0.03, grace=30)
    c.set("k", "old")
    await asyncio.sleep(0.06)
    boom = RuntimeError("db down")

    async def failing() -> Any:
        raise boom

    assert await c.fetch("k", failing) == ("old", "stale-fail-safe")
    assert await c.get_or_load("k", failing) == "old"  # get_or_load falls back the same way
    s = c.stats()
    assert (s["stale_served_fail_safe"], s["load_errors"]) == (2, 2)
    # without a stale value (or past grace) the loader's exception reaches the caller unchanged
    with pytest.raises(RuntimeError) as ei:
        await c.fetch("absent", failing)
    assert ei.value is boom
    short = Cache(ttl=0.02, grace=0.02)
    short.set("k", "old")
    await asyncio.sleep(0.08)
    with pytest.raises(RuntimeError) as ei:
        await short.fetch("k", failing)
    assert ei.value is boom


@pytest.mark.asyncio
async def test_soft_timeout_serves_stale_and_the_load_finishes_in_background() -> None:
    c = Cache(ttl=0.03, grace=30, load_soft_timeout=0.02, load_timeout=30)
    c.set("k", "old")
    await asyncio.sleep(0.06)
    src = Source(free=0)
    assert await c.fetch("k", src) == ("old", "stale-soft-timeout")
    assert src.calls == 1 and src.finished == 0  # the load is still held at its gate
    src.gate.set()
    await until(lambda: c.get("k") == "v1")
    assert c.stats()["stale_served_soft_timeout"] == 1


@pytest.mark.asyncio
async def test_soft_timeout_per_call() -> None:
    c = Cache(ttl=0.03, grace=30)
    c.set("k", "old")
    await asyncio.sleep(0.06)
    src = Source(free=0)
    assert await c.fetch("k", src, soft_timeout=0.02) == ("old", "stale-soft-timeout")
    src.gate.set()
    await until(lambda: c.get("k") == "v1")
    # no stale value to fall back on: the soft timeout does not apply, the caller waits
    src2 = Source(free=0)
    task = asyncio.ensure_future(c.fetch("new", src2, soft_timeout=0.01))
    await asyncio.sleep(0.05)
    assert not task.done()
    src2.gate.set()
    assert await task == ("v1", "loaded")


# -- refresh-ahead, XFetch, jitter ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_refresh_ahead() -> None:
    c = Cache(ttl=60, refresh_after=0.2)
    src = Source()
    assert await c.fetch("k", src) == ("v1", "loaded")
    assert await c.fetch("k", src) == ("v1", "hit")  # young: no refresh
    await asyncio.sleep(0.25)
    assert await c.fetch("k", src) == ("v1", "refresh-ahead")
    assert await c.fetch("k", src) == ("v1", "hit")  # one refresh at a time
    src.gate.set()
    await until(lambda: c.get("k") == "v2")
    assert src.calls == 2
    assert c.stats()["refresh_ahead"] == 1


@pytest.mark.asyncio
async def test_xfetch_early_refresh() -> None:
    # beta at its ceiling and a loader that took 20 ms: a read 10 s before expiry triggers with
    # probability exp(-gap / (delta * beta)), about 0.6, so one of 200 reads does.
    c = Cache(ttl=10, xfetch=True, xfetch_beta=1000, seed=7)

    async def slow() -> str:
        await asyncio.sleep(0.02)
        return "v"

    assert await c.fetch("k", slow) == ("v", "loaded")
    statuses = set()
    for _ in range(200):
        f = await c.fetch("k", slow, xfetch=False)
        statuses.add(f.status)
    assert statuses == {"hit"}  # turned off per call
    for _ in range(200):
        f = await c.fetch("k", slow)
        statuses.add(f.status)
        if f.status == "early-refresh":
            break
    assert "early-refresh" in statuses
    await until(lambda: c.stats()["loads"] == 2 and c.stats()["in_flight"] == 0)
    assert c.stats()["early_refreshes"] == 1


def test_ttl_jitter_spreads_expiries() -> None:
    c = Cache(ttl=10, ttl_jitter=0.5, max_entries=1000)
    left = []
    for i in range(300):
        c.set(f"k{i}", i)
        left.append(c.get_entry(f"k{i}")[2])  # type: ignore[index]
    assert 9 < min(left) and max(left) <= 15
    assert max(left) - min(left) > 1.0
    plain = Cache(ttl=10)
    plain.set("a", 1)
    plain.set("b", 1)
    a, b = plain.get_entry("a")[2], plain.get_entry("b")[2]  # type: ignore[index]
    assert abs(a - b) < 1.0


# -- fencing, stats, Prometheus ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fenced_rebuild_keeps_a_newer_set() -> None:
    c = Cache()
    src = Source(free=0, value=lambda n: "rebuilt")
    task = asyncio.ensure_future(c.get_or_load("k", src))
    await until(lambda: src.calls == 1)
    c.set("k", "fresh")  # written while the slow rebuild runs
    src.gate.set()
    assert await task == "rebuilt"  # the waiter gets its load's result...
    assert c.get("k") == "fresh"  # ...but the newer write is kept
    assert c.stats()["fenced_writes"] == 1


@pytest.mark.asyncio
async def test_stats_fields_and_prometheus() -> None:
    c = Cache()
    await c.fetch("k", lambda: "v")
    await c.fetch("k", lambda: "v")
    s = c.stats()
    for field in [
        "stale_served_swr",
        "stale_served_fail_safe",
        "stale_served_soft_timeout",
        "early_refreshes",
        "refresh_ahead",
        "negative_hits",
        "negative_entries",
        "negative_refused",
        "fenced_writes",
        "oversize_rejections",
    ]:
        assert s[field] == 0, field  # type: ignore[literal-required]
    lat = s["load_latency"]
    assert len(lat["counts"]) == 14 and sum(lat["counts"]) == 1 and lat["sum_nanos"] >= 0
    text = c.prometheus('users"svc')
    assert 'healcache_loader_calls_total{cache="users\\"svc"} 1' in text
    assert 'healcache_hits_total{cache="users\\"svc"} 1' in text
    assert "# TYPE healcache_load_duration_seconds histogram" in text


def test_the_expositions_of_several_caches_join_into_one_a_strict_parser_accepts() -> None:
    a: Cache[str] = Cache()
    b: Cache[str] = Cache()
    a["k"] = "v"
    assert a.get("k") == "v"
    ta, tb = a.prometheus("a"), b.prometheus("b")

    def check(text: str) -> str:
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        return r.stdout + r.stderr

    # concatenated, every HELP line comes twice: promtool (Go's parser) refuses the text
    assert "second HELP line" in check(ta + tb)
    joined = healcache.prometheus_join([ta, tb])
    assert "parsing error" not in check(joined)
    samples = lambda t: sorted(line for line in t.splitlines() if line and not line.startswith("#"))  # noqa: E731
    assert samples(joined) == samples(ta + tb)
    assert 'healcache_hits_total{cache="a"} 1\nhealcache_hits_total{cache="b"} 0\n' in joined
    # two caches with one name: one of the two values would be lost
    with pytest.raises(healcache.InvalidConfig) as e:
        healcache.prometheus_join([ta, a.prometheus("a")])
    assert e.value.field == "texts"
    with pytest.raises(TypeError):
        healcache.prometheus_join(ta)  # type: ignore[arg-type]


def test_oversize_loaded_value_is_counted() -> None:
    c = Cache(max_bytes=100, max_entry_bytes=10)
    assert c.get_or_load_sync("k", lambda: "x" * 50) == "x" * 50
    assert "k" not in c
    assert c.stats()["oversize_rejections"] == 1


def test_invalid_key_is_a_value_error() -> None:
    # Raised for keys a source cannot use, and for keys with no UTF-8 form (test_input_edges.py).
    assert issubclass(healcache.InvalidKey, ValueError)
    assert issubclass(healcache.InvalidKey, healcache.HealcacheError)
    assert healcache.InvalidKey.code == "InvalidKey"


# -- cancellation and interpreter exit -----------------------------------------------------------


@pytest.mark.asyncio
async def test_cancelled_caller_does_not_stop_the_background_refresh() -> None:
    c = Cache(ttl=0.03, grace=30, load_soft_timeout=0.3)
    c.set("k", "old")
    await asyncio.sleep(0.06)
    src = Source(free=0)
    task = asyncio.ensure_future(c.fetch("k", src))
    await until(lambda: src.calls == 1)
    task.cancel()  # the only waiter goes before the soft timeout
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: c.stats()["in_flight"] == 0)  # its load stops with it once no waiter is left
    assert src.finished == 0
    # a soft-timed-out load lives on without its caller
    f = await c.fetch("k", src)
    assert f == ("old", "stale-soft-timeout")
    src.gate.set()
    await until(lambda: c.get("k") == "v2")


EXIT_SCRIPT = r"""
import asyncio, healcache

cache = healcache.Cache(ttl=0.01, grace=60, stale_while_revalidate=True, refresh_after=0.005,
                        load_soft_timeout=0.005, load_timeout=5)
hang = asyncio.Event()

async def load(i):
    await asyncio.sleep(0.002)
    return i

async def stuck():
    await hang.wait()
    return "never"

async def main():
    for i in range(50):
        cache.set(f"k{i}", i)
    cache.set("stuck", 0)
    await asyncio.sleep(0.02)
    for round in range(5):
        got = await asyncio.gather(*[cache.fetch(f"k{i % 50}", lambda i=i: load(i)) for i in range(200)])
        assert len(got) == 200
        await cache.fetch("stuck", stuck)  # stale at once; a refresh that never ends
        await asyncio.sleep(0.003)
    # leave with refreshes still running
    await asyncio.gather(*[cache.fetch(f"k{i}", stuck) for i in range(50)])

asyncio.run(main())
"""


def test_exit_with_background_refreshes_running_never_aborts() -> None:
    for _ in range(10):
        r = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
        assert "Traceback" not in r.stderr, r.stderr[-2000:]
