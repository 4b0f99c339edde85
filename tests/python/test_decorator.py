"""`@cache.cached`: sync and async functions, default and custom key functions."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from healcache import Cache


def test_sync_function() -> None:
    c = Cache()
    calls = []

    @c.cached
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    assert square(3) == 9 and square(3) == 9 and square(4) == 16
    assert calls == [3, 4]
    assert square.__name__ == "square" and square.cache is c  # type: ignore[attr-defined]


def test_default_key_includes_function_args_and_kwargs() -> None:
    c = Cache()

    @c.cached()
    def f(a: int, b: int = 0) -> tuple:
        return (a, b)

    @c.cached()
    def g(a: int, b: int = 0) -> str:
        return "g"

    assert f(1) == (1, 0) and f(1, b=2) == (1, 2) and g(1) == "g"
    keys = c.sample_keys(10)
    assert len(keys) == 3 and all(".f:" in k or ".g:" in k for k in keys)


def test_custom_key_function() -> None:
    c = Cache()

    @c.cached(key=lambda user_id, **_: f"user:{user_id}")
    def load_user(user_id: int, verbose: bool = False) -> dict:
        return {"id": user_id}

    u = load_user(7)
    assert load_user(7, verbose=True) is u
    assert c["user:7"] is u


def test_sync_calls_from_threads_coalesce() -> None:
    c = Cache()
    calls = 0
    lock = threading.Lock()

    @c.cached
    def slow(x: int) -> int:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.1)
        return x

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(lambda _: slow(1), range(16))) == [1] * 16
    assert calls == 1


@pytest.mark.asyncio
async def test_async_function_coalesces() -> None:
    c = Cache()
    calls = 0

    @c.cached(key=lambda city: f"weather:{city}")
    async def weather(city: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return f"sunny in {city}"

    results = await asyncio.gather(*[weather("Oslo") for _ in range(100)])
    assert results == ["sunny in Oslo"] * 100 and calls == 1
    assert asyncio.iscoroutinefunction(weather)
    assert c["weather:Oslo"] == "sunny in Oslo"


def test_exceptions_pass_through_and_are_not_cached() -> None:
    c = Cache()
    n = 0

    @c.cached
    def flaky() -> str:
        nonlocal n
        n += 1
        if n == 1:
            raise ConnectionError("first call fails")
        return "ok"

    with pytest.raises(ConnectionError):
        flaky()
    assert flaky() == "ok"


def test_ttl_per_decorated_function() -> None:
    c = Cache(ttl=60)
    n = 0

    @c.cached(ttl=0.05)
    def short() -> int:
        nonlocal n
        n += 1
        return n

    assert short() == 1 and short() == 1
    (key,) = c.sample_keys(1)
    assert c.get_entry(key)[2] <= 0.05  # type: ignore[index]
    time.sleep(0.1)
    assert short() == 2


@pytest.mark.asyncio
async def test_ttl_per_decorated_async_function() -> None:
    c = Cache()

    @c.cached(key=lambda: "k", ttl=30)
    async def f() -> str:
        return "v"

    assert await f() == "v"
    left = c.get_entry("k")[2]  # type: ignore[index]
    assert left is not None and 29 < left <= 30


def test_bad_ttl_fails_at_decoration() -> None:
    import healcache

    with pytest.raises(healcache.InvalidConfig):
        Cache().cached(ttl=-1)


def test_cached_given_no_callable_is_a_type_error_at_decoration() -> None:
    """Bad decorator arguments fail at decoration, as a bad `ttl` does, with a `TypeError` naming
    the argument: `func` (what `@cache.cached` decorates) and `key` must be callable."""
    c = Cache()
    with pytest.raises(TypeError, match="`func` must be callable, not int"):
        c.cached(5)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="`key` must be callable, not int"):
        c.cached(key=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`key` must be callable, not str"):
        c.cached(key="k")  # type: ignore[arg-type]
    assert len(c) == 0


def test_a_cached_sync_function_refused_in_a_running_loop_names_itself() -> None:
    """A sync function under `@cache.cached`, called on a thread running an event loop while
    another thread loads its key, is refused (as `get_or_load_sync` is: waiting would block the
    loop) with a `RuntimeError` that names the decorated function, not `get_or_load_sync` (a method
    the caller never called), and says what to do instead."""
    c = Cache()
    started, release = threading.Event(), threading.Event()

    @c.cached(key=lambda: "k")
    def report() -> str:
        started.set()
        release.wait(10)
        return "done"

    @c.cached(key=lambda: "own")
    def own_error() -> str:
        raise RuntimeError("its own")

    other = threading.Thread(target=report)
    other.start()
    try:
        assert started.wait(10)

        async def in_the_loop() -> None:
            with pytest.raises(RuntimeError) as ei:
                report()
            message = str(ei.value)
            assert "report()" in message and "get_or_load_sync" not in message, message
            assert "async" in message and "thread" in message, message
            with pytest.raises(RuntimeError, match="^its own$"):
                own_error()  # the function's own RuntimeError is raised as it is

        asyncio.run(in_the_loop())
    finally:
        release.set()
        other.join(10)
    assert report() == "done" and c["k"] == "done"
