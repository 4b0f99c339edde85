"""The default bounds on keys and loads (P5, "Everything is bounded") with ``Cache()`` at its
defaults: ``max_key_len`` 4,096 bytes and ``max_in_flight`` 10,000 keys, each checked exactly at
the bound and one past it (other tests check them at small configured values only)."""

from __future__ import annotations

import asyncio

import pytest

import healcache
from healcache import Cache

MAX_KEY_LEN = 4096
MAX_IN_FLIGHT = 10_000


def default_cache() -> Cache:
    # no max_key_len / max_in_flight: the defaults are under test (the errors carry the bound)
    return Cache()


def check_key_bound(at: str, past: str) -> None:
    """A key of exactly 4,096 bytes (``at``) works with every call; one a byte longer (``past``)
    is ``KeyTooLong`` from every call, changing nothing."""
    assert (len(at.encode()), len(past.encode())) == (MAX_KEY_LEN, MAX_KEY_LEN + 1)
    c = default_cache()
    calls: list[str] = []

    def loader() -> int:
        calls.append("loader")
        return 0

    def batch(keys: list[str]) -> dict[str, int]:
        calls.append("batch")
        return {}

    async def main() -> None:
        # at the bound: written, read, answered from the cache, and loaded when absent
        assert c.set(at, 7) > 0
        assert c.get(at) == 7 and at in c
        assert await c.get_or_load(at, loader) == 7
        assert calls == [], "a cached key at the bound is not loaded"
        assert c.delete(at)
        value, status = await c.fetch(at, lambda: 8)
        assert (value, status) == (8, "loaded")
        assert c.get(at) == 8
        assert await c.get_many([at], lambda keys: {k: 9 for k in keys}) == {at: 8}

        # one byte past it: refused by writes, loads and batch reads alike, before any work
        before = (len(c), c.stats(), c.version(at))
        refusals = [
            lambda: c.set(past, 1),
            lambda: c.set(past, 1, if_version=0),
            lambda: c.get_or_load_sync(past, loader),
        ]
        for call in refusals:
            with pytest.raises(healcache.KeyTooLong) as ei:
                call()
            assert (ei.value.len, ei.value.max) == (MAX_KEY_LEN + 1, MAX_KEY_LEN)
        for awaitable in [
            lambda: c.get_or_load(past, loader),
            lambda: c.fetch(past, loader),
            # one key over the bound refuses the whole batch: the key at the bound is not read either
            lambda: c.get_many([at, past], batch),
        ]:
            with pytest.raises(healcache.KeyTooLong) as ei:
                await awaitable()
            assert (ei.value.len, ei.value.max) == (MAX_KEY_LEN + 1, MAX_KEY_LEN)
            assert isinstance(ei.value, ValueError) and ei.value.code == "KeyTooLong"
        assert calls == [], "no loader ran for a refused key"
        assert past not in c
        assert (len(c), c.stats(), c.version(at)) == before, "refused calls changed nothing"

    asyncio.run(main())


def test_p5_default_max_key_len_is_4096_bytes() -> None:
    """P5: a key is at most ``max_key_len`` bytes, 4,096 by default: 4,096 bytes work, 4,097 are
    ``KeyTooLong`` (``len`` 4097, ``max`` 4096) and change nothing."""
    check_key_bound("k" * MAX_KEY_LEN, "k" * (MAX_KEY_LEN + 1))


def test_p5_default_max_key_len_counts_utf8_bytes() -> None:
    """P5: the key bound is in UTF-8 bytes, not characters: 2,048 two-byte characters (4,096
    bytes) work; 1,024 four-byte characters and one letter (1,025 characters, 4,097 bytes) are
    ``KeyTooLong``."""
    at, past = "é" * (MAX_KEY_LEN // 2), "😀" * (MAX_KEY_LEN // 4) + "a"
    assert (len(at), len(past)) == (2048, 1025)
    check_key_bound(at, past)


def test_p5_default_max_in_flight_is_10000_loads() -> None:
    """P5: at most ``max_in_flight`` distinct keys load at once, 10,000 by default. With 10,000
    asyncio loaders waiting on an Event, the 10,001st distinct key is ``TooManyLoads`` (``max``
    10000) and its loader never runs; once the Event is set, all 10,000 complete with their own
    values, and the 10,001st key loads."""
    c = default_cache()
    keys = [f"k{i}" for i in range(MAX_IN_FLIGHT + 1)]

    async def main() -> None:
        gate = asyncio.Event()
        started = 0

        def waiting(i: int):
            async def load() -> int:
                nonlocal started
                started += 1
                await gate.wait()
                return i

            return load

        loads = [asyncio.ensure_future(c.get_or_load(k, waiting(i))) for i, k in enumerate(keys[:MAX_IN_FLIGHT])]
        # every loader runs and waits at the gate: all 10,000 loads are under way at once
        for _ in range(10_000):
            if started == MAX_IN_FLIGHT:
                break
            await asyncio.sleep(0)
        assert started == MAX_IN_FLIGHT
        assert c.stats()["in_flight"] == MAX_IN_FLIGHT
        assert not any(t.done() for t in loads)

        refused: list[str] = []

        def must_not_run() -> int:
            refused.append("called")
            return -1

        with pytest.raises(healcache.TooManyLoads) as ei:
            await c.get_or_load(keys[MAX_IN_FLIGHT], must_not_run)
        assert ei.value.max == MAX_IN_FLIGHT and ei.value.code == "TooManyLoads"
        assert refused == [] and keys[MAX_IN_FLIGHT] not in c

        gate.set()
        assert await asyncio.gather(*loads) == list(range(MAX_IN_FLIGHT))
        s = c.stats()
        assert (s["loads"], s["load_errors"], s["in_flight"]) == (MAX_IN_FLIGHT, 0, 0)
        # the default max_entries is 10,000 too: every loaded value is kept
        assert len(c) == MAX_IN_FLIGHT
        assert all(c.peek(k) == i for i, k in enumerate(keys[:MAX_IN_FLIGHT]))
        # with the flights ended there is room again
        assert await c.get_or_load(keys[MAX_IN_FLIGHT], lambda: 42) == 42
        assert refused == []

    asyncio.run(main())


def test_p5_default_batch_read_takes_10000_distinct_keys() -> None:
    """P5: a batch read takes at most ``max_in_flight`` distinct keys, 10,000 by default: 10,001
    distinct keys are ``InvalidConfig`` with ``field`` ``keys`` before anything is loaded; 10,000
    distinct keys (given 10,001 times, one twice) are loaded by one loader call."""
    c = default_cache()
    keys = [f"k{i}" for i in range(MAX_IN_FLIGHT + 1)]
    batches: list[int] = []

    def load(ks: list[str]) -> dict[str, int]:
        batches.append(len(ks))
        return {k: int(k[1:]) for k in ks}

    async def main() -> None:
        before = (len(c), c.stats())
        with pytest.raises(healcache.InvalidConfig) as ei:
            await c.get_many(keys, load)
        assert ei.value.field == "keys"
        assert ei.value.reason == f"must not exceed `max_in_flight`, got {MAX_IN_FLIGHT + 1}"
        assert batches == [], "a refused batch loads nothing"
        assert (len(c), c.stats()) == before, "a refused batch changes nothing"

        # the bound counts distinct keys: 10,001 keys of which 10,000 differ are accepted
        got = await c.get_many(keys[:MAX_IN_FLIGHT] + keys[:1], load)
        assert batches == [MAX_IN_FLIGHT], "one loader call with every distinct key"
        assert got == {k: i for i, k in enumerate(keys[:MAX_IN_FLIGHT])}
        assert len(c) == MAX_IN_FLIGHT and c.stats()["in_flight"] == 0

    asyncio.run(main())


MAX_ENTRY_BYTES = 64 << 20


@pytest.mark.parametrize("kind", [bytes, bytearray, str])
def test_p5_default_max_entry_bytes_is_64_mib_key_included(kind: type) -> None:
    """With no byte bound set, a str or bytes-like still weighs its length: an entry of exactly
    64 MiB (key included) is stored, one byte more is ``ValueTooLarge`` and changes nothing (as
    in Node and the WebAssembly package)."""
    c = default_cache()
    key = "k"
    at = MAX_ENTRY_BYTES - len(key)
    value = kind("x" * at) if kind is str else kind(b"x" * at)
    assert c.set(key, value) == 1
    over = kind("y" * (at + 1)) if kind is str else kind(b"y" * (at + 1))
    with pytest.raises(healcache.ValueTooLarge):
        c.set(key, over)
    assert c.get(key) == value and c.version(key) == 1
    del value, over


def test_without_a_byte_bound_values_weigh_as_in_node() -> None:
    """The `weight` counter without a byte bound: a str weighs its length and its key's, as the
    Node package counts it (three 1-byte keys with 3-character values: 12)."""
    c = default_cache()
    for k in "abc":
        c.set(k, k * 3)
    assert c.stats()["weight"] == 12
