"""`await cache.get_or_load(key, loader)`: coalescing, cancellation, errors. Every call ends; one load
per key per flight, whose result every waiter gets; a caller's cancellation never cancels the load
others wait for."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import traceback
from typing import Any, Awaitable, Callable

import pytest

import healcache
from healcache import NOT_FOUND, Cache
from test_stampede import Source, eventually, until


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
    await eventually(lambda: c.stats()["in_flight"] == 0)
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


def test_outside_a_running_loop_the_call_starts_once_awaited() -> None:
    later = Cache().get_or_load("k", lambda: 1)  # no loop runs: nothing starts yet
    assert asyncio.iscoroutine(later)
    assert asyncio.run(later) == 1


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


# -- per-call options: the same as fetch's ------------------------------------------------------


def _keyword_options(method: Any) -> list[str]:
    return [p.name for p in inspect.signature(method).parameters.values() if p.kind is p.KEYWORD_ONLY]


def test_get_or_load_takes_exactly_the_options_of_fetch() -> None:
    assert _keyword_options(Cache.get_or_load) == _keyword_options(Cache.fetch)
    assert _keyword_options(Cache.get_or_load_sync) == _keyword_options(Cache.fetch)


@pytest.mark.asyncio
async def test_get_or_load_refuses_an_unknown_option() -> None:
    c = Cache()
    with pytest.raises(TypeError, match="bogus"):
        await c.get_or_load("k", lambda: 1, bogus=1)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="bogus"):
        c.get_or_load_sync("k", lambda: 1, bogus=1)  # type: ignore[call-arg]
    assert "k" not in c


@pytest.mark.asyncio
async def test_get_or_load_negative_ttl_caches_a_not_found() -> None:
    c = Cache()  # no negative caching by default
    calls = 0

    async def missing() -> Any:
        nonlocal calls
        calls += 1
        return NOT_FOUND

    with pytest.raises(healcache.NotFound):
        await c.get_or_load("gone", missing)
    assert len(c) == 0
    for _ in range(2):  # loaded and cached for 5 s, then answered from the cache
        with pytest.raises(healcache.NotFound):
            await c.get_or_load("gone", missing, negative_ttl=5)
    assert calls == 2 and len(c) == 1
    s = c.stats()
    assert (s["negative_entries"], s["negative_hits"]) == (1, 1)


@pytest.mark.asyncio
async def test_get_or_load_soft_timeout_serves_the_stale_value() -> None:
    c = Cache(ttl=0.03, grace=30)
    c.set("k", "old")
    await asyncio.sleep(0.06)
    src = Source(free=0)
    assert await c.get_or_load("k", src, soft_timeout=0.02) == "old"
    assert c.stats()["stale_served_soft_timeout"] == 1 and src.finished == 0
    src.gate.set()  # the load goes on in the background and lands
    await until(lambda: c.get("k") == "v1")


@pytest.mark.asyncio
async def test_get_or_load_stale_while_revalidate_per_call() -> None:
    c = Cache(ttl=0.03, grace=30)
    c.set("k", "old")
    await asyncio.sleep(0.06)
    src = Source(free=0)
    assert await c.get_or_load("k", src, stale_while_revalidate=True) == "old"
    assert c.stats()["stale_served_swr"] == 1
    src.gate.set()
    await until(lambda: c.get("k") == "v1")
    # off per call on a cache that has it: a stale entry is a foreground load
    c2 = Cache(ttl=0.03, grace=30, stale_while_revalidate=True)
    c2.set("k", "old")
    await asyncio.sleep(0.06)
    assert await c2.get_or_load("k", Source(), stale_while_revalidate=False) == "v1"
    assert c2.stats()["stale_served_swr"] == 0


@pytest.mark.asyncio
async def test_get_or_load_xfetch_per_call() -> None:
    # as test_stampede's XFetch test: a read about 10 s before expiry refreshes early with
    # probability about 0.6 here, so 200 reads without the per-call `xfetch=False` do
    c = Cache(ttl=10, xfetch=True, xfetch_beta=1000, seed=7)

    async def slow() -> str:
        await asyncio.sleep(0.02)
        return "v"

    assert await c.get_or_load("k", slow) == "v"
    for _ in range(200):
        assert await c.get_or_load("k", slow, xfetch=False) == "v"
    assert c.stats()["early_refreshes"] == 0
    for _ in range(200):
        assert await c.get_or_load("k", slow) == "v"
        if c.stats()["early_refreshes"]:
            break
    assert c.stats()["early_refreshes"] == 1
    await until(lambda: c.stats()["in_flight"] == 0)


@pytest.mark.asyncio
async def test_get_or_load_tags_then_invalidate_tag() -> None:
    c = Cache()
    assert await c.get_or_load("k", lambda: 1, tags=["team:7"]) == 1
    assert await c.get_or_load("other", lambda: 2) == 2
    assert c.invalidate_tag("team:7", hard=True) == 1
    assert "k" not in c and "other" in c
    with pytest.raises(TypeError, match="`tags` must be a sequence of str, not str"):
        await c.get_or_load("k", lambda: 1, tags="team:7")
    assert "k" not in c


@pytest.mark.asyncio
async def test_get_or_load_options_are_checked_as_fetch_checks_them() -> None:
    c = Cache()
    for kwargs, field in [({"negative_ttl": -1}, "negative_ttl"), ({"soft_timeout": 0}, "soft_timeout"), ({"ttl": 0}, "ttl")]:
        for call in (c.fetch, c.get_or_load):
            with pytest.raises(healcache.InvalidConfig) as ei:
                await call("k", lambda: 1, **kwargs)
            assert ei.value.field == field
    assert len(c) == 0


@pytest.mark.parametrize(
    "option, value",
    [
        ("stale_while_revalidate", True),
        ("xfetch", True),
        ("soft_timeout", 0.1),
        ("tags", ["t"]),
    ],
)
def test_get_or_load_sync_refuses_what_it_cannot_honour(option: str, value: Any) -> None:
    """The threaded call loads on the caller's thread: no background work (stale-while-revalidate,
    XFetch, soft timeout) and no tags. It refuses those options by name rather than ignore them;
    None (not given) is accepted. (`negative_ttl` it honours: see
    test_a_not_found_answer_is_no_load_error_in_threads.)"""
    c = Cache()
    with pytest.raises(healcache.InvalidConfig) as ei:
        c.get_or_load_sync("k", lambda: pytest.fail("loader called"), **{option: value})
    assert ei.value.field == option and f"`{option}`" in str(ei.value) and "not supported" in str(ei.value)
    assert len(c) == 0
    assert c.get_or_load_sync("k", lambda: 1, **{option: None}) == 1


@pytest.mark.parametrize("option", ["stale_while_revalidate", "xfetch"])
def test_get_or_load_sync_takes_the_off_value_of_a_background_option(option: str) -> None:
    """Turning background work off is something a blocking load honours: taken."""
    c = Cache()
    assert c.get_or_load_sync("k", lambda: 1, **{option: False}) == 1
    assert c.get_or_load_sync("k", lambda: pytest.fail("loaded twice"), **{option: False}) == 1


# -- calls left waiting when the event loop ends --------------------------------------------------


def _run_capturing(main: Callable[[], Awaitable[None]]) -> list[str]:
    """Runs `main()` under `asyncio.run`, returns what reached the loop's exception handler
    (also what a garbage-collected future reports once the loop is closed)."""
    reported: list[str] = []

    async def wrapped() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, ctx: reported.append(f"{ctx.get('message')}: {ctx.get('exception')!r}")
        )
        await main()

    asyncio.run(wrapped())
    gc.collect()
    return reported


async def _slow() -> str:
    await asyncio.sleep(30)
    return "late"


def test_calls_left_waiting_when_asyncio_run_ends_report_nothing() -> None:
    """A call's future nobody awaits any more (`ensure_future` of a call is the future itself, not
    a task, so asyncio.run does not cancel it) whose loader's task asyncio.run cancels at its end:
    its `Cancelled` is a cancellation, which asyncio never reports, not an error left unread."""

    async def bare_get_or_load() -> None:
        c = Cache()
        asyncio.ensure_future(c.get_or_load("k", _slow))
        await asyncio.sleep(0.01)

    async def bare_fetch_and_get_many() -> None:
        c = Cache()

        async def batch(keys: list[str]) -> dict[str, Any]:
            await asyncio.sleep(30)
            return {}

        asyncio.ensure_future(c.fetch("k", _slow))
        asyncio.ensure_future(c.get_many(["a"], batch))
        await asyncio.sleep(0.01)

    async def one_waiter_cancelled_one_left() -> None:
        c = Cache()
        first = asyncio.ensure_future(c.get_or_load("k", _slow))
        asyncio.ensure_future(c.get_or_load("k", _slow))
        await asyncio.sleep(0.01)
        first.cancel()

    for main in (bare_get_or_load, bare_fetch_and_get_many, one_waiter_cancelled_one_left):
        reported = _run_capturing(main)
        assert not [r for r in reported if "never retrieved" in r], (main.__name__, reported)


@pytest.mark.asyncio
async def test_a_waiter_still_gets_cancelled_when_the_loaders_task_is_cancelled() -> None:
    c = Cache()

    async def cancelled_under_itself() -> str:
        await asyncio.sleep(0.01)
        raise asyncio.CancelledError  # as when something it awaited was cancelled

    with pytest.raises(healcache.Cancelled):
        await c.get_or_load("k", cancelled_under_itself)
    assert "k" not in c


def test_a_real_loader_error_nobody_awaited_is_still_reported() -> None:
    """Only cancellations are quiet: a loader's own exception on a call abandoned by its caller
    (`asyncio.wait` with a timeout) is reported as asyncio reports any unread error."""

    async def main() -> None:
        c = Cache()

        async def failing() -> str:
            await asyncio.sleep(0.02)
            raise LoaderFailed("origin down")

        pending = c.get_or_load("k", failing)
        await asyncio.wait({pending}, timeout=0.001)
        # the loader fails in the background: wait (bounded) until the call has its error, without
        # reading it (done() retrieves nothing)
        end = asyncio.get_running_loop().time() + 10
        while not pending.done() and asyncio.get_running_loop().time() < end:
            await asyncio.sleep(0.005)
        del pending

    reported = _run_capturing(main)
    assert [r for r in reported if "never retrieved" in r and "LoaderFailed" in r], reported


@pytest.mark.asyncio
async def test_a_not_found_answer_is_no_load_error() -> None:
    # `load_errors` counts loads that ended in the loader's error; "not found" is an answer
    c = Cache()
    with pytest.raises(healcache.NotFound):
        await c.get_or_load("u", lambda: NOT_FOUND)
    s = c.stats()
    assert (s["loads"], s["load_errors"]) == (1, 0)


def test_a_not_found_answer_is_no_load_error_in_threads() -> None:
    c = Cache()
    with pytest.raises(healcache.NotFound):
        c.get_or_load_sync("u", lambda: NOT_FOUND)
    s = c.stats()
    assert (s["loads"], s["load_errors"]) == (1, 0)
    # and it is cached for negative_ttl, as an async load's is
    n = Cache(negative_ttl=60)
    with pytest.raises(healcache.NotFound):
        n.get_or_load_sync("u", lambda: NOT_FOUND)

    def never() -> str:
        raise AssertionError("the cached answer was not used")

    with pytest.raises(healcache.NotFound):
        n.get_or_load_sync("u", never)
    assert n.stats()["loads"] == 1
    # a per-call negative_ttl caches it too, bounded by max_negative_ttl as get_or_load's is
    p = Cache()
    with pytest.raises(healcache.NotFound):
        p.get_or_load_sync("u", lambda: NOT_FOUND, negative_ttl=30)
    with pytest.raises(healcache.NotFound):
        p.get_or_load_sync("u", never)
    assert (p.stats()["loads"], p.stats()["negative_hits"]) == (1, 1)
    with pytest.raises(healcache.InvalidConfig) as ei:
        p.get_or_load_sync("v", lambda: NOT_FOUND, negative_ttl=61)
    assert ei.value.field == "negative_ttl"
