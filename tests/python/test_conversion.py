"""Conversion of every core store operation: arguments in, results out."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta

import pytest

import healcache
from healcache import Cache


def test_get_set_default_and_mapping_protocol() -> None:
    c = Cache(max_entries=100)
    assert c.get("missing") is None
    assert c.get("missing", 7) == 7
    with pytest.raises(KeyError):
        c["missing"]
    c["a"] = 1
    assert c["a"] == 1 and c.get("a") == 1 and c.get("a", 2) == 1
    assert "a" in c and "b" not in c
    assert len(c) == 1
    del c["a"]
    assert "a" not in c
    with pytest.raises(KeyError):
        del c["a"]


def test_a_missing_key_is_a_key_error_that_does_not_show_the_key() -> None:
    """P8, keys are data: a KeyError is logged with its traceback, so it never carries the key
    (which may be an email address or a token)."""
    c = Cache()
    for op in [lambda: c["user:ada@example.com"], lambda: c.__delitem__("user:ada@example.com")]:
        with pytest.raises(KeyError) as e:
            op()
        assert "ada@example.com" not in repr(e.value) and "ada@example.com" not in str(e.value)
        assert "not in the cache" in str(e.value)


def test_values_of_any_type_roundtrip() -> None:
    c = Cache()
    values = [None, 0, -1, 2**80, 1.5, "text", "ünïcødé ✓", b"\x00bytes", [1, 2], {"k": (1, 2)}, object()]
    for i, v in enumerate(values):
        c.set(f"k{i}", v)
    for i, v in enumerate(values):
        assert c.get(f"k{i}") == v


def test_unicode_keys_are_distinct_and_exact() -> None:
    c = Cache()
    c["é"] = 1
    c["e\u0301"] = 2  # another string, another key
    c["🔑"] = 3
    assert (c["é"], c["e\u0301"], c["🔑"]) == (1, 2, 3)
    assert "E" not in c


def test_keys_must_be_str() -> None:
    c = Cache()
    for bad in (1, b"bytes", None, ("t",)):
        with pytest.raises(TypeError, match="keys must be str"):
            c.get(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            c[bad] = 1  # type: ignore[index]
    with pytest.raises(healcache.InvalidKey):
        c.get("\ud800")  # a lone surrogate has no UTF-8 form (test_input_edges.py: every call)


def test_delete_and_len_and_clear() -> None:
    c = Cache()
    for i in range(10):
        c[str(i)] = i
    assert len(c) == 10
    assert c.delete("3") is True
    assert c.delete("3") is False
    assert len(c) == 9
    c.clear()
    assert len(c) == 0 and c.get("1") is None


def test_versions_and_compare_and_set() -> None:
    c = Cache()
    assert c.version("k") == 0
    v1 = c.set("k", "one")
    assert v1 > 0 and c.version("k") == v1
    v2 = c.set("k", "two", if_version=v1)
    assert v2 > v1 and c["k"] == "two"
    with pytest.raises(healcache.VersionMismatch) as ei:
        c.set("k", "three", if_version=v1)
    assert ei.value.expected == v1 and ei.value.current == v2 and c["k"] == "two"
    # 0 means "only if absent"
    with pytest.raises(healcache.VersionMismatch):
        c.set("k", "x", if_version=0)
    assert c.set("new", "x", if_version=0) > 0
    with pytest.raises(healcache.VersionMismatch):
        c.delete("k", if_version=v1)
    assert c.delete("k", if_version=v2) is True
    assert "k" not in c


def test_get_entry() -> None:
    c = Cache()
    assert c.get_entry("k") is None
    v = c.set("k", "val", ttl=30)
    value, version, left = c.get_entry("k")  # type: ignore[misc]
    assert value == "val" and version == v and left is not None and 29 < left <= 30
    c.set("forever", 1, ttl=math.inf)
    assert c.get_entry("forever")[2] is None  # type: ignore[index]


def test_ttl_expiry_per_write_and_default() -> None:
    c = Cache(ttl=0.05)
    c.set("default", 1)
    c.set("short", 2, ttl=0.05)
    c.set("long", 3, ttl=60)
    c.set("never", 4, ttl=math.inf)
    time.sleep(0.12)
    assert c.get("default") is None and c.get("short") is None
    assert c["long"] == 3 and c["never"] == 4
    assert c.purge_expired() >= 0


@pytest.mark.parametrize("bad", [0, -1, math.nan, -math.inf])
def test_bad_write_ttl_is_a_value_error(bad: float) -> None:
    with pytest.raises(healcache.InvalidConfig) as ei:
        Cache().set("k", 1, ttl=bad)
    assert ei.value.field == "ttl" and "ttl" in str(ei.value)


def test_every_duration_accepts_a_timedelta() -> None:
    c = Cache(
        ttl=timedelta(minutes=1),
        grace=timedelta(seconds=1),
        load_soft_timeout=timedelta(milliseconds=500),
        load_timeout=timedelta(seconds=5),
        refresh_after=timedelta(seconds=30),
        negative_ttl=timedelta(seconds=2),
        healing_verify_interval=timedelta(milliseconds=1500),
        healing_source_timeout=timedelta(milliseconds=250),
    )
    c.set("default", 1)
    assert 59 < c.get_entry("default")[2] <= 60  # type: ignore[index,operator]
    c.set("short", 1, ttl=timedelta(seconds=5))
    assert 4 < c.get_entry("short")[2] <= 5  # type: ignore[index,operator]
    assert c.get_or_load_sync("sync", lambda: 1, ttl=timedelta(seconds=7)) == 1
    assert 6 < c.get_entry("sync")[2] <= 7  # type: ignore[index,operator]
    assert c.config_get("healing.verify_interval_ms") == "1500"
    assert c.config_get("healing.source_timeout_ms") == "250"
    c.set_healing(verify_interval=timedelta(seconds=2), source_timeout=timedelta(milliseconds=100))
    assert c.healing_config()["verify_interval"] == 2.0 and c.healing_config()["source_timeout"] == 0.1

    async def main() -> None:
        assert await c.get_or_load("async", lambda: 1, ttl=timedelta(seconds=8)) == 1
        assert 7 < c.get_entry("async")[2] <= 8  # type: ignore[index,operator]
        f = await c.fetch(
            "fetched",
            lambda: healcache.NOT_FOUND,
            ttl=timedelta(seconds=9),
            negative_ttl=timedelta(seconds=3),
            soft_timeout=timedelta(milliseconds=100),
        )
        assert f == (None, "negative-loaded")

    asyncio.run(main())
    with pytest.raises(healcache.InvalidConfig) as ei:
        Cache(ttl=timedelta(0))
    assert ei.value.field == "ttl"
    with pytest.raises(healcache.InvalidConfig) as ei:
        c.set("k", 1, ttl=timedelta(seconds=-1))
    assert ei.value.field == "ttl"
    with pytest.raises(healcache.InvalidConfig) as ei:
        c.set_healing(verify_interval=timedelta(0))
    assert ei.value.field == "verify_interval"
    with pytest.raises(TypeError):
        Cache(ttl="1s")  # type: ignore[arg-type]


def test_a_timedelta_load_timeout_fires() -> None:
    c = Cache(load_timeout=timedelta(milliseconds=50))

    async def main() -> None:
        async def slow() -> int:
            await asyncio.sleep(10)
            return 1

        with pytest.raises(healcache.LoadTimeout) as ei:
            await c.get_or_load("k", slow)
        assert ei.value.after_ms == 50

    asyncio.run(main())


def test_eviction_keeps_the_bound() -> None:
    c = Cache(max_entries=100)
    for i in range(1000):
        c[str(i)] = i
    assert len(c) <= 100
    assert c.stats()["evictions"] >= 900


def test_byte_bound_and_weigher() -> None:
    c = Cache(max_bytes=1000)
    c["s"] = "x" * 500
    with pytest.raises(healcache.ValueTooLarge) as ei:
        c["big"] = "x" * 2000
    assert ei.value.max == 1000 and ei.value.weight > 1000
    w = Cache(max_bytes=100, weigher=lambda v: v["size"])
    w["a"] = {"size": 10}
    with pytest.raises(healcache.ValueTooLarge):
        w["b"] = {"size": 1000}
    with pytest.raises(ZeroDivisionError):
        Cache(max_bytes=100, weigher=lambda v: 1 // 0).set("k", 1)


def test_stats_is_a_plain_dict_of_ints() -> None:
    c = Cache()
    c["a"] = 1
    c.get("a")
    c.get("b")
    s = c.stats()
    assert type(s) is dict
    assert s["hits"] == 1 and s["misses"] == 1 and s["inserts"] == 1 and s["entries"] == 1
    assert set(healcache.Stats.__annotations__) <= set(s)
    histograms = ("load_latency", "l2_lock_wait", "l2_latency", "l2_bus_latency")
    assert all(type(s[k]) is int for k in healcache.Stats.__annotations__ if k not in (*histograms, "healing"))
    for h in histograms:
        assert type(s[h]["counts"]) is list and type(s[h]["sum_nanos"]) is int


def test_sample_keys_and_repr() -> None:
    c = Cache()
    for i in range(50):
        c[f"k{i}"] = i
    sample = c.sample_keys(10)
    assert len(sample) == 10 and len(set(sample)) == 10 and all(k in c for k in sample)
    assert "Cache(" in repr(c)


def test_config_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Cache(100)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Cache(no_such_option=1)  # type: ignore[call-arg]
    Cache(max_entries=10, max_bytes=1 << 20, ttl=1.5, max_key_len=64, max_entry_bytes=1024,
          max_in_flight=5, load_timeout=2, shards=2, seed=42, weigher=len)
