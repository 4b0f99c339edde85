"""What Python users expect of a cache (functools.lru_cache, cachetools): `cache_info()` and
`cache_clear()` on decorated functions, `timedelta` for every duration, `ttl=math.inf`,
iteration over keys, `peek`, `async with`, and a clear refusal to pickle."""

from __future__ import annotations

import asyncio
import copy
import math
import pickle
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

import healcache
from healcache import NOT_FOUND, Cache, CacheInfo, InvalidConfig


# --- the decorator: cache_info() and cache_clear() -------------------------------------------------


def test_cache_info_counts_the_caches_hits_and_misses() -> None:
    c = Cache(max_entries=50)

    @c.cached
    def square(x: int) -> int:
        return x * x

    assert square.cache_info() == CacheInfo(hits=0, misses=0, maxsize=50, currsize=0)
    square(2)
    square(2)
    square(3)
    info = square.cache_info()
    assert info == (1, 2, 50, 2) and (info.hits, info.misses, info.maxsize, info.currsize) == (1, 2, 50, 2)
    stats = c.stats()
    assert info == (stats["hits"], stats["misses"], c.max_entries, len(c)), "the cache's own counters"


def test_cache_clear_empties_the_cache_and_the_function_loads_again() -> None:
    c = Cache()
    calls: list[int] = []

    @c.cached()
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    f(1)
    c["other"] = "entry"
    f.cache_clear()
    assert len(c) == 0 and f.cache_info().currsize == 0
    f(1)
    assert calls == [1, 1]


@pytest.mark.asyncio
async def test_async_functions_have_cache_info_and_cache_clear() -> None:
    c = Cache()

    @c.cached(ttl=timedelta(seconds=30))
    async def double(x: int) -> int:
        return 2 * x

    assert await double(2) == 4 and await double(2) == 4
    assert double.cache_info()[:2] == (1, 1) and double.cache is c
    double.cache_clear()
    assert double.cache_info().currsize == 0 and list(c) == []
    await double(5)
    (key,) = c.keys()
    left = c.get_entry(key)
    assert left is not None and left[2] is not None and 29 < left[2] <= 30, "ttl=timedelta(seconds=30)"


# --- durations: timedelta everywhere, math.inf as the ttl -----------------------------------------


def seconds_left(c: Cache, key: str) -> Any:
    e = c.get_entry(key)
    assert e is not None
    return e[2]


@pytest.mark.asyncio
async def test_every_duration_takes_a_timedelta() -> None:
    td = timedelta(seconds=90)
    c = Cache(
        ttl=td,
        load_timeout=td,
        grace=td,
        load_soft_timeout=timedelta(seconds=1),
        refresh_after=td,
        negative_ttl=timedelta(seconds=30),
        max_negative_ttl=td,
        healing_verify_interval=td,
        healing_source_timeout=timedelta(seconds=3),
    )
    c.set("a", 1)
    assert 89 < seconds_left(c, "a") <= 90
    c.set("b", 1, ttl=timedelta(milliseconds=2500))
    assert 2 < seconds_left(c, "b") <= 2.5
    assert await c.get_or_load("c", lambda: 1, ttl=timedelta(hours=1)) == 1
    assert 3590 < seconds_left(c, "c") <= 3600
    assert c.get_or_load_sync("d", lambda: 1, ttl=timedelta(minutes=2)) == 1
    assert 110 < seconds_left(c, "d") <= 120
    f = await c.fetch("e", lambda: 1, ttl=timedelta(seconds=10), soft_timeout=timedelta(milliseconds=500))
    assert f == (1, "loaded") and 9 < seconds_left(c, "e") <= 10
    await c.fetch("nf", lambda: NOT_FOUND, negative_ttl=timedelta(seconds=5))
    assert c.version("nf") > 0
    c.set_healing(verify_interval=timedelta(seconds=7), source_timeout=timedelta(milliseconds=250))
    assert c.healing_config()["verify_interval"] == 7 and c.healing_config()["source_timeout"] == 0.25
    c.config_set("verify_interval", timedelta(seconds=8))
    assert c.config_get("verify_interval") == "8"
    assert c.healing_config()["verify_interval"] == 8


def test_ttl_inf_is_no_expiry() -> None:
    c = Cache(ttl=math.inf)
    c.set("a", 1)
    assert seconds_left(c, "a") is None
    plain = Cache()
    plain.set("a", 1)
    assert seconds_left(plain, "a") is None, "the same as no ttl at all"
    short = Cache(ttl=60)
    short.set("forever", 1, ttl=math.inf)
    assert seconds_left(short, "forever") is None


@pytest.mark.parametrize("bad", [-math.inf, math.nan, 0, -1, timedelta(0), timedelta(seconds=-1)])
def test_ttl_that_is_no_duration_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidConfig) as e:
        Cache(ttl=bad)
    assert e.value.field == "ttl"


def test_inf_elsewhere_is_refused_by_name() -> None:
    # Only `ttl` has "forever" as a meaning; an infinite timeout is a mistake, named.
    with pytest.raises(InvalidConfig) as e:
        Cache(load_timeout=math.inf)
    assert e.value.field == "load_timeout"
    with pytest.raises(InvalidConfig):
        Cache(ttl=timedelta.max)  # past the 100-year bound of durations


def test_a_duration_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Cache(ttl="60")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Cache().set("k", 1, ttl="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Cache(max_entries=timedelta(seconds=5))  # type: ignore[arg-type]


# --- iteration over keys ---------------------------------------------------------------------------


def test_iteration_gives_every_key_holding_a_value() -> None:
    c = Cache()
    assert list(c) == [] and c.keys() == []
    for i in range(100):
        c[f"k{i}"] = i
    assert sorted(c) == sorted(f"k{i}" for i in range(100))
    assert sorted(c.keys()) == sorted(c)
    assert set(dict.fromkeys(c)) == {f"k{i}" for i in range(100)}


@pytest.mark.asyncio
async def test_iteration_skips_expired_entries_and_cached_not_found() -> None:
    c = Cache(negative_ttl=60)
    c.set("live", 1)
    c.set("short", 1, ttl=0.05)
    await c.fetch("missing", lambda: NOT_FOUND)
    assert "missing" not in c
    time.sleep(0.1)
    assert list(c) == ["live"] and c.keys() == ["live"]


def test_iteration_is_a_snapshot_and_counts_no_read() -> None:
    c = Cache()
    for i in range(10):
        c[f"k{i}"] = i
    before = c.stats()
    seen = []
    for key in c:  # writing while iterating: no RuntimeError, the snapshot stays as it was
        seen.append(key)
        c[f"new-{key}"] = 0
        del c[key]
    assert sorted(seen) == sorted(f"k{i}" for i in range(10))
    assert sorted(c) == sorted(f"new-k{i}" for i in range(10))
    after = c.stats()
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])


# --- peek --------------------------------------------------------------------------------------------


def test_peek_reads_without_counting() -> None:
    c = Cache()
    obj = {"v": 1}
    c["k"] = obj
    before = c.stats()
    assert c.peek("k") is obj
    assert c.peek("absent") is None and c.peek("absent", "dflt") == "dflt"
    after = c.stats()
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])
    c.get("k")
    assert c.stats()["hits"] == before["hits"] + 1, "get counts (so the check above can fail)"


def test_peek_of_an_expired_entry_is_the_default() -> None:
    c = Cache()
    c.set("k", 1, ttl=0.05)
    time.sleep(0.1)
    assert c.peek("k") is None and c.peek("k", 0) == 0


def test_peek_with_a_bad_key_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be str"):
        Cache().peek(1)  # type: ignore[arg-type]


# --- async with ---------------------------------------------------------------------------------------


def healer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "healcache-healer"]


@pytest.mark.asyncio
async def test_async_with_gives_the_cache_and_closes_it() -> None:
    before = len(healer_threads())
    async with Cache(healing_enabled=True, healing_verify_interval=0.02, healing_sample_rate=1.0) as c:
        assert isinstance(c, Cache)
        c["k"] = 1
        c.register_source("", lambda key: 2)
        deadline = time.monotonic() + 10
        while c.healing_stats()["total_sampled"] == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert len(healer_threads()) == before + 1
    assert len(healer_threads()) == before, "the healer's thread ended with the block"
    sampled = c.healing_stats()["total_sampled"]
    await asyncio.sleep(0.1)
    assert c.healing_stats()["total_sampled"] == sampled
    assert c["k"] == 2 and c.peek("k") == 2, "the cache stays usable"


@pytest.mark.asyncio
async def test_an_exception_in_async_with_propagates_and_still_closes() -> None:
    before = len(healer_threads())
    with pytest.raises(KeyError):
        async with Cache(healing_enabled=True) as c:
            assert len(healer_threads()) == before + 1
            raise KeyError("x")
    assert len(healer_threads()) == before
    with pytest.raises(healcache.Closed):
        c.set_healing(enabled=True)  # closed for good: no loop starts again, and the call says so
    await asyncio.sleep(0.05)
    assert len(healer_threads()) == before


# --- pickling, copying, generics at runtime ------------------------------------------------------


@pytest.mark.parametrize("how", [pickle.dumps, copy.copy, copy.deepcopy])
def test_a_cache_cannot_be_pickled_or_copied(how: Any) -> None:
    c = Cache()
    c["k"] = 1
    with pytest.raises(TypeError, match="cannot be pickled or copied") as e:
        how(c)
    assert "process" in str(e.value) and "shared tier" in str(e.value)
    assert c["k"] == 1


def test_not_found_and_fetched_pickle() -> None:
    # the sentinel stays one object across pickling (it is what loaders compare with)
    assert pickle.loads(pickle.dumps(NOT_FOUND)) is NOT_FOUND
    assert isinstance(NOT_FOUND, healcache.NotFoundType)


def test_generic_aliases_work_at_runtime() -> None:
    users: healcache.Cache[int] = healcache.Cache[int](max_entries=5)
    assert type(users) is Cache and users.max_entries == 5
    assert healcache.Cache[int].__origin__ is Cache  # type: ignore[attr-defined]
    assert healcache.Fetched[int](1, "hit") == (1, "hit")
    assert healcache.CachedFunction[[int], int] is not None
