"""The microservice patterns from Python: write-through (the writer first, the cache only on
success), batch reads with one loader call for the keys no layer answered, and warming with a
readiness check, in one process and across two caches on a real redis-server.

Promises checked: bad input gets a typed error and changes nothing; nothing is lost or hidden
silently (a writer's exception reaches the caller, a failed batch keeps the cache not ready)."""

from __future__ import annotations

import asyncio
import time

import pytest

import healcache
from rediskit import redis_server  # noqa: F401 (fixture)


def run(call):
    """Runs ``call()`` (an asyncio call of the cache, made inside the loop) to its end."""

    async def go():
        return await call()

    return asyncio.run(go())


def test_write_through_calls_the_writer_first_and_caches_only_on_success():
    c = healcache.Cache()
    c.set("stock", 1)
    seen = []

    async def save(key, value):
        seen.append((key, value, c.get("stock")))

    v = run(lambda: c.write_through("stock", 2, save))
    assert seen == [("stock", 2, 1)], "the writer ran before the cache changed"
    assert (c.get("stock"), c.version("stock")) == (2, v)

    def failing(key, value):
        raise ConnectionError("database down")

    with pytest.raises(ConnectionError, match="database down"):
        run(lambda: c.write_through("stock", 3, failing))
    assert (c.get("stock"), c.version("stock")) == (2, v), "a failed writer changes nothing"
    assert run(lambda: c.write_through("stock", 4, lambda k, v: None, invalidate=True)) == 0
    assert c.get("stock") is None


def test_write_through_refuses_bad_input_before_the_writer():
    c = healcache.Cache(max_key_len=4)
    calls = []
    with pytest.raises(healcache.KeyTooLong):
        run(lambda: c.write_through("12345", 1, lambda k, v: calls.append(k)))
    with pytest.raises(healcache.InvalidConfig):
        run(lambda: c.write_through("k", 1, lambda k, v: calls.append(k), ttl=0))
    with pytest.raises(TypeError):
        run(lambda: c.write_through("k", 1, "not callable"))
    assert calls == [] and len(c) == 0


def test_get_many_loads_the_missing_keys_in_one_call():
    c = healcache.Cache()
    c.set("a", "cached")
    calls = []

    async def load(keys):
        calls.append(sorted(keys))
        return {k: k.upper() for k in keys if not k.startswith("no:")}

    got = run(lambda: c.get_many(["a", "b", "no:1", "b", "c"], load))
    assert calls == [["b", "c", "no:1"]]
    assert got == {"a": "cached", "b": "B", "c": "C"}
    assert run(lambda: c.get_many(["a", "b", "c"], load)) == {"a": "cached", "b": "B", "c": "C"}
    assert len(calls) == 1, "everything was cached"
    # a sync loader too; a loader returning something else than a mapping is a TypeError
    assert run(lambda: c.get_many(["d"], lambda keys: {"d": 4})) == {"d": 4}
    with pytest.raises(TypeError, match="mapping"):
        run(lambda: c.get_many(["e"], lambda keys: ["e"]))
    assert "e" not in c


def test_get_many_reads_not_found_in_the_mapping_as_a_key_left_out():
    """NOT_FOUND means "absent" wherever a loader answers: a batch loader's mapping that gives it
    for a key makes that key not found (absent from the result, and not cached as a value)."""
    c = healcache.Cache()
    got = run(lambda: c.get_many(["s", "t"], lambda keys: {"s": healcache.NOT_FOUND, "t": 1}))
    assert got == {"t": 1}
    assert "s" not in c and c.get("s") is None


def test_get_many_bound_is_max_in_flight():
    c = healcache.Cache(max_in_flight=3)
    load = lambda keys: {k: 1 for k in keys}  # noqa: E731
    assert len(run(lambda: c.get_many(["a", "b", "c"], load))) == 3
    with pytest.raises(healcache.InvalidConfig):
        run(lambda: c.get_many(["a", "b", "c", "d"], load))
    assert "d" not in c


def test_warm_reports_progress_and_readiness():
    c = healcache.Cache(max_entries=10_000)
    keys = [f"k:{i}" for i in range(1000)]
    ready_during = []

    async def load(batch):
        ready_during.append(c.ready())
        await asyncio.sleep(0)
        return {k: int(k[2:]) for k in batch}

    report = run(lambda: c.warm(keys, load, batch=100, concurrency=4))
    assert report == {"total": 1000, "found": 1000, "not_found": 0, "failed": 0, "error": None}
    assert ready_during == [False] * 10
    assert c.ready() and c.warm_progress() == (1000, 0, 1000)
    assert c.get("k:999") == 999

    def failing(batch):
        raise RuntimeError("origin down")

    cold = healcache.Cache()
    report = run(lambda: cold.warm(["x", "y"], failing, batch=1))
    assert (report["failed"], report["error"]) == (2, "loader failed: RuntimeError: origin down")
    assert not cold.ready()
    assert 'healcache_warm_keys_total{cache="cold",outcome="failed"} 2\n' in cold.prometheus("cold")
    with pytest.raises(healcache.InvalidConfig):
        run(lambda: cold.warm(["x"], failing, batch=0))
    # a key pattern is listed from the shared tier: refused without one
    with pytest.raises(healcache.InvalidConfig, match="pattern"):
        run(lambda: cold.warm("x*", failing))


def test_write_through_reaches_another_instance_when_it_returns(redis_server):  # noqa: F811
    a = healcache.Cache(redis=redis_server.url, ttl=60)
    b = healcache.Cache(redis=redis_server.url, ttl=60)
    b.set("user:1", {"name": "old"})
    # B's write lands in L2 in the background: A's write-through comes after it
    end = time.monotonic() + 5
    while b.stats()["l2_writes"] < 1:
        assert time.monotonic() < end
        time.sleep(0.005)
    run(lambda: a.write_through("user:1", {"name": "Ada"}, lambda k, v: None))
    end = time.monotonic() + 5
    while b.get("user:1") == {"name": "old"}:
        assert time.monotonic() < end, "B's copy was not dropped"
        time.sleep(0.01)

    def never(*_):
        raise AssertionError("the source must not be asked")

    value, status = run(lambda: b.fetch("user:1", never))
    assert (value, status) == ({"name": "Ada"}, "l2-hit")
    # a warm-up of B takes what L2 holds
    run(lambda: a.warm([f"w:{i}" for i in range(50)], lambda keys: {k: k for k in keys}))
    end = time.monotonic() + 5
    while True:
        try:
            run(lambda: healcache.Cache(redis=redis_server.url).fetch("w:49", never))
            break
        except AssertionError:
            assert time.monotonic() < end
            time.sleep(0.01)
    report = run(lambda: b.warm([f"w:{i}" for i in range(50)], never))
    assert (report["found"], report["failed"]) == (50, 0)
    assert b.ready()
    # a new instance warms by key pattern what L2 holds, without asking the source
    c = healcache.Cache(redis=redis_server.url, ttl=60)
    with pytest.raises(healcache.InvalidConfig, match="max_keys"):
        run(lambda: c.warm("w:*", never, max_keys=49))
    assert len(c) == 0
    report = run(lambda: c.warm("w:*", never, max_keys=50))
    assert (report["total"], report["found"], report["failed"]) == (50, 50, 0)
    assert c.get("w:7") == "w:7" and c.get("user:1") is None
    assert 'healcache_warm_keys_total{cache="c",outcome="answered"} 50\n' in c.prometheus("c")


def test_readiness_with_redis_down_follows_allow_degraded(redis_server):  # noqa: F811
    strict = healcache.Cache(redis=redis_server.url, l2_timeout=0.05)
    lenient = healcache.Cache(redis=redis_server.url, l2_timeout=0.05, allow_degraded=True)
    assert strict.ready() and lenient.ready()
    redis_server.kill()
    end = time.monotonic() + 10
    for c in (strict, lenient):
        while c.stats()["l2_breaker_state"] == 0:
            assert time.monotonic() < end, "the breaker did not open"
            run(lambda: c.fetch("other", lambda: 1))  # noqa: B023
            c.delete("other")
    assert not strict.ready()
    assert lenient.ready()


def test_the_default_warm_batch_fits_a_small_max_in_flight():
    """Below 100 loads in flight, the default batch is `max_in_flight` keys (not a default the
    cache's own bound refuses); a batch given over the bound is still refused."""
    c = healcache.Cache(max_in_flight=5)
    sizes: list[int] = []

    def load(keys: list[str]) -> dict[str, int]:
        sizes.append(len(keys))
        return {k: 1 for k in keys}

    keys = [f"k:{i}" for i in range(12)]

    async def main() -> None:
        report = await c.warm(keys, load)
        assert report["found"] == 12 and sorted(sizes) == [2, 5, 5]
        with pytest.raises(healcache.InvalidConfig) as ei:
            await c.warm(keys, load, batch=6)
        assert ei.value.field == "batch"

    asyncio.run(main())
