"""A hit returns the very object stored: no copy, no serialization."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref

from healcache import Cache


class Thing:
    pass


def test_hit_returns_the_stored_object() -> None:
    c = Cache()
    obj = Thing()
    c.set("k", obj)
    assert c.get("k") is obj
    assert c["k"] is obj
    assert c.get_entry("k")[0] is obj  # type: ignore[index]


def test_loaded_value_is_the_loaders_object() -> None:
    c = Cache()
    obj = Thing()
    assert c.get_or_load_sync("k", lambda: obj) is obj
    assert c.get("k") is obj

    async def main() -> None:
        async def load() -> Thing:
            return obj

        assert await c.get_or_load("a", load) is obj
        assert await c.get_or_load("a", load) is obj

    asyncio.run(main())


def test_reference_counts_do_not_leak() -> None:
    c = Cache()
    obj = Thing()
    c.set("k", obj)
    before = sys.getrefcount(obj)
    for _ in range(1000):
        c.get("k")
        c["k"]
    assert sys.getrefcount(obj) == before


def test_values_are_released_when_removed() -> None:
    c = Cache()
    obj = Thing()
    ref = weakref.ref(obj)
    c.set("k", obj)
    del obj
    gc.collect()
    assert ref() is not None
    c.delete("k")
    gc.collect()
    assert ref() is None
