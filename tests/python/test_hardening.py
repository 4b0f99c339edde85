"""Bounds and meanings that broke once under hostile use, checked from Python: the byte budget
with heavy entries, durations below a nanosecond, version 0 on absent keys, the cap on negative
TTLs."""

import asyncio

import pytest

import healcache
from healcache import NOT_FOUND, Cache


def test_byte_budget_holds_for_heavy_entries() -> None:
    budget = 1 << 20
    c = Cache(max_entries=10_000, max_bytes=budget)
    for i in range(64):
        c[f"k{i}"] = b"x" * (900 << 10)
        assert c.stats()["weight"] <= budget, f"after write {i}"
        assert f"k{i}" in c, "a write that returned is readable at once"
    with pytest.raises(healcache.ValueTooLarge):
        c["over"] = b"x" * budget  # the key's bytes count too


def test_durations_below_a_nanosecond_are_refused() -> None:
    for kw in ("ttl", "grace", "negative_ttl", "load_timeout", "refresh_after"):
        with pytest.raises(healcache.InvalidConfig):
            Cache(**{kw: 1e-12})  # type: ignore[arg-type]
    Cache(ttl=1e-9)  # one nanosecond is the shortest duration kept


def test_version_zero_means_absent() -> None:
    c = Cache()
    assert c.delete("never-written", if_version=0) is False  # no error, and nothing live removed
    c["live"] = 1
    with pytest.raises(healcache.VersionMismatch):
        c.delete("live", if_version=0)
    assert c["live"] == 1


def test_negative_ttl_is_capped() -> None:
    with pytest.raises(healcache.InvalidConfig) as ei:
        Cache(negative_ttl=61)
    assert "max_negative_ttl" in str(ei.value)
    Cache(negative_ttl=60)
    Cache(negative_ttl=600, max_negative_ttl=3600)
    c = Cache(negative_ttl=5)
    calls: list[str] = []

    def missing() -> object:
        calls.append("called")
        return NOT_FOUND

    async def main() -> None:
        with pytest.raises(healcache.InvalidConfig):
            await c.fetch("k", missing, negative_ttl=61)

    asyncio.run(main())
    assert calls == [], "refused before the loader ran"


def test_a_per_call_soft_timeout_must_be_shorter_than_the_load_timeout() -> None:
    """As `load_soft_timeout` must: one at or past `load_timeout` is InvalidConfig, no load."""
    c = healcache.Cache(load_timeout=1)
    calls = []

    def load() -> int:
        calls.append(1)
        return 1

    async def go(soft: float) -> object:
        return await c.fetch("k", load, soft_timeout=soft)

    for soft in [1, 5]:
        with pytest.raises(healcache.InvalidConfig) as e:
            asyncio.run(go(soft))
        assert e.value.field == "soft_timeout"
    assert calls == []
    assert asyncio.run(go(0.5)).value == 1
