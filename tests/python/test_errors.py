"""The exception tree: one class per core error code, subclassing builtins where they fit."""

from __future__ import annotations

import asyncio
import math

import pytest

import healcache
from healcache import Cache

CODES = {
    "InvalidConfig": (ValueError,),
    "KeyTooLong": (ValueError,),
    "ValueTooLarge": (ValueError,),
    "VersionMismatch": (),
    "LoaderError": (),
    "LoaderPanicked": (),
    "LoadTimeout": (TimeoutError,),
    "RecursiveLoad": (RuntimeError,),
    "TooManyLoads": (),
    "InvalidKey": (ValueError,),
    "NotFound": (LookupError,),
    "Cancelled": (),
    "ValueNotEncodable": (TypeError,),
    "L2Unavailable": (ConnectionError,),
    "QueueFull": (),
    "Closed": (),
}


@pytest.mark.parametrize("code", sorted(CODES))
def test_one_class_per_core_code(code: str) -> None:
    cls = getattr(healcache, code)
    assert issubclass(cls, healcache.HealcacheError)
    assert issubclass(healcache.HealcacheError, Exception)
    for base in CODES[code]:
        assert issubclass(cls, base)
    assert cls.code == code and cls.__module__ == "healcache"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": -5}, "max_entries"),
        ({"max_entries": 1.5}, "max_entries"),
        ({"max_entries": math.nan}, "max_entries"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": -math.inf}, "ttl"),  # (+inf is "no expiry": tests/python/test_conventions.py)
        ({"load_timeout": math.inf}, "load_timeout"),
        ({"max_key_len": 0}, "max_key_len"),
        ({"max_entry_bytes": 10, "max_bytes": 5}, "max_entry_bytes"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"load_timeout": -0.5}, "load_timeout"),
        ({"shards": 3}, "shards"),
        ({"seed": -1}, "seed"),
        ({"seed": "x"}, "seed"),
        ({"weigher": 42}, "weigher"),
    ],
)
def test_invalid_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError) as ei:
        Cache(**kwargs)
    assert isinstance(ei.value, healcache.InvalidConfig)
    assert ei.value.field == field
    assert f"`{field}`" in str(ei.value)


def test_every_core_code_has_a_class() -> None:
    import healcache._errors as errors

    assert sorted(errors.__all__) == sorted(["HealcacheError", *CODES])


def test_wrong_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        Cache(max_entries="many")  # type: ignore[arg-type]


def test_key_too_long() -> None:
    c = Cache(max_key_len=8)
    c["12345678"] = 1
    with pytest.raises(healcache.KeyTooLong) as ei:
        c["123456789"] = 1
    assert isinstance(ei.value, ValueError) and ei.value.len == 9 and ei.value.max == 8
    assert "123456789" not in str(ei.value)  # keys are data, never in messages
    with pytest.raises(healcache.KeyTooLong):
        c.get_or_load_sync("x" * 9, lambda: 1)


def test_load_timeout_is_a_timeout_error() -> None:
    c = Cache(load_timeout=0.05)

    async def main() -> None:
        async def slow() -> int:
            await asyncio.sleep(10)
            return 1

        with pytest.raises(TimeoutError) as ei:
            await c.get_or_load("k", slow)
        assert isinstance(ei.value, healcache.LoadTimeout) and ei.value.after_ms == 50

    asyncio.run(main())
    assert c.stats()["load_timeouts"] == 1
    assert "k" not in c


def test_load_timeout_in_threads() -> None:
    import threading

    c = Cache(load_timeout=0.05)
    started, release = threading.Event(), threading.Event()

    def slow() -> int:
        started.set()
        release.wait(5)
        return 1

    loader_thread: list[BaseException] = []

    def load() -> None:
        try:
            c.get_or_load_sync("k", slow)
        except BaseException as e:
            loader_thread.append(e)

    t = threading.Thread(target=load)
    t.start()
    try:
        assert started.wait(5)
        with pytest.raises(healcache.LoadTimeout):  # joins the thread's flight, waits at most 50 ms
            c.get_or_load_sync("k", lambda: 2)
    finally:
        release.set()
        t.join()
    # the thread that ran the loader gets the flight's outcome too, once its loader returns
    assert [type(e) for e in loader_thread] == [healcache.LoadTimeout]
    assert "k" not in c


def test_load_timeout_of_an_async_caller_joining_a_thread_s_load() -> None:
    import threading

    c = Cache(load_timeout=0.05)
    started, release, returned = threading.Event(), threading.Event(), threading.Event()

    def slow() -> int:
        started.set()
        release.wait(5)
        returned.set()
        return 1

    t = threading.Thread(target=lambda: pytest.raises(healcache.LoadTimeout, c.get_or_load_sync, "k", slow))
    t.start()
    try:
        assert started.wait(5)

        async def join() -> bool:
            with pytest.raises(healcache.LoadTimeout):  # at its own deadline: the loader still runs
                await c.get_or_load("k", lambda: 2)
            return returned.is_set()

        assert asyncio.run(join()) is False, "the await ended before the thread's loader returned"
    finally:
        release.set()
        t.join()
    assert "k" not in c


def test_recursive_load_is_refused() -> None:
    c = Cache()

    def loader() -> int:
        return c.get_or_load_sync("k", lambda: 1)

    with pytest.raises(healcache.RecursiveLoad) as ei:
        c.get_or_load_sync("k", loader)
    assert isinstance(ei.value, RuntimeError)
    assert c.get_or_load_sync("k", lambda: 5) == 5  # the key is not stuck


def test_async_recursive_load_is_refused() -> None:
    """An async loader awaiting its own key, directly or through another key, would wait for
    itself forever: the call is refused with RecursiveLoad, the key is not stuck, and loaders
    that read other keys are unaffected."""
    c = Cache()

    async def main() -> None:
        async def self_loader() -> int:
            return await c.get_or_load("a", self_loader)

        with pytest.raises(healcache.RecursiveLoad):
            await asyncio.wait_for(c.get_or_load("a", self_loader), 5)

        async def load_x() -> int:
            return await c.get_or_load("y", load_y)

        async def load_y() -> int:
            return await c.get_or_load("x", load_x)

        with pytest.raises(healcache.RecursiveLoad):
            await asyncio.wait_for(c.get_or_load("x", load_x), 5)
        assert await c.get_or_load("a", lambda: 7) == 7
        assert await c.get_or_load("x", lambda: 8) == 8

        async def load_sum() -> int:
            parts = await asyncio.gather(c.get_or_load("p1", lambda: 1), c.get_or_load("p2", lambda: 2))
            return sum(parts)

        assert await c.get_or_load("sum", load_sum) == 3

    asyncio.run(main())


def test_too_many_loads() -> None:
    c = Cache(max_in_flight=1)

    async def main() -> None:
        gate = asyncio.Event()

        async def wait() -> int:
            await gate.wait()
            return 1

        first = asyncio.ensure_future(c.get_or_load("a", wait))
        await asyncio.sleep(0)
        with pytest.raises(healcache.TooManyLoads) as ei:
            await c.get_or_load("b", wait)
        assert ei.value.max == 1
        gate.set()
        assert await first == 1

    asyncio.run(main())


def test_loader_exception_is_not_wrapped() -> None:
    c = Cache()

    class MyError(Exception):
        pass

    err = MyError("boom")

    def fail() -> int:
        raise err

    with pytest.raises(MyError) as ei:
        c.get_or_load_sync("k", fail)
    assert ei.value is err
    assert c.stats()["load_errors"] == 1
    assert c.get_or_load_sync("k", lambda: 3) == 3  # errors are not cached


def test_a_seed_is_taken_up_to_2_64_minus_1_and_refused_past_it() -> None:
    Cache(seed=2**64 - 1)
    for seed in (2**64, -1):
        with pytest.raises(healcache.InvalidConfig) as e:
            Cache(seed=seed)
        assert e.value.field == "seed"
