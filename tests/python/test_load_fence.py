"""Newer writes win, removals included: a delete or a clear during a load keeps the loaded value
out of the cache (its callers still get it). And `delete` answers whether it removed a live entry,
with `if_version` too."""

from __future__ import annotations

import asyncio
from typing import Callable

import pytest

import healcache
from healcache import Cache


def held(value: Callable[[], str]) -> tuple[Callable[[], "asyncio.Future[str]"], asyncio.Event, asyncio.Event]:
    """A loader held open until `release` is set; `started` is set once the load is under way."""
    started, release = asyncio.Event(), asyncio.Event()

    async def loader() -> str:
        v = value()
        started.set()
        await release.wait()
        return v

    return loader, started, release  # type: ignore[return-value]


@pytest.mark.asyncio
async def test_newer_writes_win_a_set_then_delete_during_a_load_keep_its_value_out() -> None:
    c = Cache()
    db = {"user:1": "v1"}
    loader, started, release = held(lambda: db["user:1"])
    p = asyncio.ensure_future(c.get_or_load("user:1", loader))
    await started.wait()
    db["user:1"] = "v2"
    c.set("user:1", "v2")
    assert c.delete("user:1") is True
    release.set()
    assert await p == "v1", "the caller gets what it loaded"
    assert c.get("user:1") is None, "not the stale v1"
    assert c.stats()["fenced_writes"] == 1
    assert await c.get_or_load("user:1", lambda: db["user:1"]) == "v2", "the next read loads again"


@pytest.mark.asyncio
async def test_newer_writes_win_a_clear_or_a_delete_of_an_absent_key_during_a_load() -> None:
    c = Cache()

    def set_then_clear() -> None:
        c.set("user:1", "v2")
        c.clear()

    def delete_absent() -> None:
        assert c.delete("user:1") is False

    for during in (set_then_clear, delete_absent):
        loader, started, release = held(lambda: "v1")
        p = asyncio.ensure_future(c.get_or_load("user:1", loader))
        await started.wait()
        during()
        release.set()
        assert await p == "v1"
        assert "user:1" not in c
    assert c.stats()["fenced_writes"] == 2


def test_delete_if_version_answers_whether_it_removed_a_live_entry() -> None:
    c = Cache()
    c["other"] = 1
    assert c.delete("never", if_version=0) is False, "absent: nothing removed"
    assert "never" not in c and len(c) == 1
    v = c.set("k", "x")
    with pytest.raises(healcache.VersionMismatch):
        c.delete("k", if_version=v + 1)
    with pytest.raises(healcache.VersionMismatch):
        c.delete("k", if_version=0)
    assert c["k"] == "x", "a mismatch changes nothing"
    assert c.delete("k", if_version=v) is True
    assert "k" not in c
