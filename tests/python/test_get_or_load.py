"""`await cache.get_or_load(key, loader)`: coalescing, cancellation, errors. Every call ends; one load
per key per flight, whose result every waiter gets; a caller's cancellation never cancels the load
others wait for."""

from __future__ import annotations

import asyncio
import contextvars
import traceback

import pytest

import healcache
from healcache import Cache


@pytest.mark.asyncio
async def test_hit_needs_no_loader_call() -> None:
    c = Cache()
    c["k"] = "v"
    assert await c.get_or_load("k", lambda: pytest.fail("loader called on a hit")) == "v"


@pytest.mark.asyncio
async def test_loader_kinds_async_sync_factory_future() -> None:
    c = Cache()

    async def async_fn() -> str:
        await asyncio.sleep(0)
        return "async"

    def sync_fn() -> str:
        return "sync"

    async def coro(x: str) -> str:
        return x

    def returns_future() -> "asyncio.Future[str]":
        f = asyncio.get_running_loop().create_future()
        f.set_result("future")
        return f

    assert await c.get_or_load("a", async_fn) == "async"
    assert await c.get_or_load("s", sync_fn) == "sync"
    assert await c.get_or_load("f", lambda: coro("factory")) == "factory"
    assert await c.get_or_load("g", returns_future) == "future"
    assert (c["a"], c["s"], c["f"], c["g"]) == ("async", "sync", "factory", "future")


@pytest.mark.asyncio
async def test_one_thousand_concurrent_tasks_share_one_call() -> None:
    c = Cache()
    calls = 0
    gate = asyncio.Event()
    value = object()

    async def loader() -> object:
        nonlocal calls
        calls += 1
        await gate.wait()
        return value

    tasks = [asyncio.ensure_future(c.get_or_load("hot", loader)) for _ in range(1000)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert calls == 1
    assert all(r is value for r in results)
    s = c.stats()
    assert s["loads"] == 1 and s["coalesced"] == 999 and s["in_flight"] == 0


@pytest.mark.asyncio
async def test_cancelling_the_first_caller_does_not_fail_the_others() -> None:
    c = Cache()
    calls = 0
    gate = asyncio.Event()

    async def loader() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "v"

    first = asyncio.ensure_future(c.get_or_load("k", loader))
    await asyncio.sleep(0)
    others = [asyncio.ensure_future(c.get_or_load("k", loader)) for _ in range(100)]
    await asyncio.sleep(0.01)
    first.cancel()
    others[50].cancel()
    await asyncio.sleep(0.01)
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    done = await asyncio.wait_for(asyncio.gather(*others, return_exceptions=True), 30)
    assert calls == 1
    assert isinstance(done[50], asyncio.CancelledError)
    assert [r for i, r in enumerate(done) if i != 50] == ["v"] * 99
    assert c["k"] == "v"


@pytest.mark.asyncio
async def test_load_stops_when_every_waiter_is_gone() -> None:
    c = Cache()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def loader() -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    tasks = [asyncio.ensure_future(c.get_or_load("k", loader)) for _ in range(3)]
    await started.wait()
    for t in tasks:
        t.cancel()
    await asyncio.wait_for(cancelled.wait(), 10)
    for _ in range(100):
        if c.stats()["in_flight"] == 0:
            break
        await asyncio.sleep(0.01)
    assert c.stats()["in_flight"] == 0
    assert await c.get_or_load("k", lambda: "again") == "again"  # the key is not stuck


class LoaderFailed(Exception):
    pass


async def failing_loader_with_a_name_to_find() -> str:
    await asyncio.sleep(0.01)
    raise LoaderFailed("origin down")


@pytest.mark.asyncio
async def test_loader_exception_reaches_every_waiter_unchanged() -> None:
    c = Cache()
    results = await asyncio.gather(
        *[c.get_or_load("k", failing_loader_with_a_name_to_find) for _ in range(50)], return_exceptions=True
    )
    assert all(type(r) is LoaderFailed for r in results)
    first = results[0]
    assert all(r is first for r in results)  # the very object the loader raised
    frames = [f.name for f in traceback.extract_tb(first.__traceback__)]  # type: ignore[union-attr]
    assert "failing_loader_with_a_name_to_find" in frames
    assert "k" not in c  # errors are not cached
    assert c.stats()["load_errors"] == 1
    assert await c.get_or_load("k", lambda: "ok") == "ok"


@pytest.mark.asyncio
async def test_sync_loader_exception_in_async_call() -> None:
    c = Cache()

    def bad() -> str:
        raise KeyError("nope")

    with pytest.raises(KeyError):
        await c.get_or_load("k", bad)


@pytest.mark.asyncio
async def test_errors_before_the_load() -> None:
    c = Cache(max_key_len=4)
    with pytest.raises(healcache.KeyTooLong):
        await c.get_or_load("too long", lambda: 1)
    with pytest.raises(TypeError):
        await c.get_or_load(1, lambda: 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="loader must be callable"):
        await c.get_or_load("k", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="loader must be callable"):
        c.get_or_load_sync("k", 42)  # type: ignore[arg-type]


def test_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        Cache().get_or_load("k", lambda: 1)


@pytest.mark.asyncio
async def test_loader_sees_the_callers_contextvars() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    c = Cache()

    async def loader() -> str:
        return var.get()

    assert await c.get_or_load("k", loader) == "caller"


@pytest.mark.asyncio
async def test_two_keys_load_independently() -> None:
    c = Cache()
    order = []

    async def load(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        order.append(name)
        return name

    a, b = await asyncio.gather(c.get_or_load("a", lambda: load("a", 0.05)), c.get_or_load("b", lambda: load("b", 0)))
    assert (a, b) == ("a", "b") and order == ["b", "a"]


@pytest.mark.asyncio
async def test_per_call_ttl() -> None:
    c = Cache(ttl=60)
    assert await c.get_or_load("a", lambda: 1, ttl=0.05) == 1
    assert await c.get_or_load("b", lambda: 2) == 2
    assert c.get_or_load_sync("s", lambda: 3, ttl=0.05) == 3
    assert c.get_entry("a")[2] <= 0.05 and c.get_entry("b")[2] > 50  # type: ignore[index,operator]
    await asyncio.sleep(0.1)
    assert "a" not in c and "s" not in c and "b" in c
    with pytest.raises(healcache.InvalidConfig):
        await c.get_or_load("x", lambda: 1, ttl=0)
