"""`get_or_load_sync` from threads: one loader call, the GIL released while waiting."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import healcache
from healcache import Cache


def test_threads_share_one_sync_loader_call() -> None:
    c = Cache()
    calls = 0
    lock = threading.Lock()
    value = object()

    def loader() -> object:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.2)  # the other threads wait meanwhile, without the GIL
        return value

    barrier = threading.Barrier(32)

    def call() -> object:
        barrier.wait()
        return c.get_or_load_sync("hot", loader)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: call(), range(32)))
    assert calls == 1
    assert all(r is value for r in results)
    assert c.stats()["coalesced"] >= 1


def test_waiting_releases_the_gil() -> None:
    c = Cache()
    entered = threading.Event()
    ticks = 0

    def loader() -> str:
        entered.set()
        time.sleep(0.3)
        return "v"

    leader = threading.Thread(target=lambda: c.get_or_load_sync("k", loader))
    leader.start()
    entered.wait(5)
    waiter = threading.Thread(target=lambda: c.get_or_load_sync("k", lambda: "other"))
    waiter.start()
    # Python code keeps running on this thread while both others are inside the cache.
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        ticks += 1
    leader.join()
    waiter.join()
    assert ticks > 1000 and c["k"] == "v"


def test_loader_error_reaches_every_thread() -> None:
    c = Cache()
    err = ValueError("bad origin")

    def loader() -> str:
        time.sleep(0.1)
        raise err

    barrier = threading.Barrier(8)

    def call() -> BaseException:
        barrier.wait()
        try:
            c.get_or_load_sync("k", loader)
        except BaseException as e:  # noqa: BLE001
            return e
        raise AssertionError("no error")

    with ThreadPoolExecutor(8) as pool:
        errors = list(pool.map(lambda _: call(), range(8)))
    assert all(e is err for e in errors)


def test_async_loader_is_refused_in_sync_call() -> None:
    c = Cache()

    async def loader() -> int:
        return 1

    with pytest.raises(TypeError, match="get_or_load"):
        c.get_or_load_sync("k", loader)


def test_a_value_whose_getattr_answers_every_name_is_no_awaitable() -> None:
    # records and proxies answer any attribute: `__await__` on the instance is not the protocol
    # (inspect.isawaitable looks at the type), so the value is stored as the async path does
    class Row:
        def __init__(self, **fields: object) -> None:
            self._f = fields

        def __getattr__(self, name: str) -> object:
            return self._f.get(name)

    c = Cache()
    row = c.get_or_load_sync("k", lambda: Row(name="Ada"))
    assert row.name == "Ada"
    assert c.get("k") is row


def test_async_and_threaded_callers_share_one_flight() -> None:
    c = Cache()
    calls = 0
    release = threading.Event()

    async def loader() -> str:
        nonlocal calls
        calls += 1
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        return "shared"

    results: list = []

    async def main() -> None:
        task = asyncio.ensure_future(c.get_or_load("k", loader))
        await asyncio.sleep(0.01)
        threads = [threading.Thread(target=lambda: results.append(c.get_or_load_sync("k", lambda: "own"))) for _ in range(4)]
        for t in threads:
            t.start()
        await asyncio.sleep(0.05)
        release.set()
        results.append(await task)
        await asyncio.get_running_loop().run_in_executor(None, lambda: [t.join() for t in threads])

    asyncio.run(main())
    assert calls == 1 and results == ["shared"] * 5


def test_a_thread_waiting_on_a_loader_whose_loop_stopped_gets_cancelled_not_cancelled_error() -> None:
    """A waiter that never cancelled anything gets a typed error (``healcache.Cancelled``, an
    ``Exception``) when the loader's task is cancelled under it, as when its event loop stops;
    never asyncio's ``CancelledError``, a ``BaseException`` that ``except Exception`` misses."""
    c = Cache()
    started = threading.Event()
    got: list = []

    def waiter() -> None:
        started.wait(5)
        try:
            got.append(c.get_or_load_sync("k", lambda: "own"))
        except BaseException as e:  # noqa: BLE001 - what it is, is the point
            got.append(e)

    t = threading.Thread(target=waiter)
    t.start()

    async def main() -> None:
        async def slow() -> str:
            started.set()
            await asyncio.sleep(30)
            return "late"

        task = asyncio.ensure_future(c.get_or_load("k", slow))
        await asyncio.sleep(0.2)  # the thread joins the flight meanwhile
        task.cancel()  # the only async waiter goes: the loader's task is cancelled with it

    asyncio.run(main())
    t.join(10)
    assert len(got) == 1
    assert isinstance(got[0], healcache.Cancelled) or got[0] == "own", repr(got[0])


def test_recursive_sync_loader_from_async_call() -> None:
    c = Cache()

    async def main() -> None:
        def loader() -> int:
            return c.get_or_load_sync("k", lambda: 1)

        with pytest.raises(healcache.RecursiveLoad):
            await c.get_or_load("k", loader)

    asyncio.run(main())


def test_ctrl_c_ends_a_sync_wait_on_another_threads_load() -> None:
    """P9: a thread waiting in get_or_load_sync on another thread's load takes Ctrl-C (SIGINT)
    while it waits, not only once the load ends; the load goes on for its owner."""
    import os
    import signal

    c = Cache()
    started, finished = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        time.sleep(3)
        finished.set()
        return "owner's"

    owner = threading.Thread(target=lambda: c.get_or_load_sync("k", slow))
    owner.start()
    assert started.wait(5)
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        c.get_or_load_sync("k", lambda: "mine")
    assert not finished.is_set(), "interrupted while the load was still under way"
    owner.join(10)
    assert c.get("k") == "owner's"


def test_a_sync_wait_on_the_event_loops_own_thread_is_refused_not_a_deadlock() -> None:
    """P1: get_or_load_sync on a thread running an event loop, for a key that loop is loading
    (an async loader needing the loop), raises RuntimeError instead of blocking the loop for good."""
    import subprocess
    import sys

    code = """
import asyncio, healcache
c = healcache.Cache()
async def slow():
    await asyncio.sleep(0.2)
    return 1
async def main():
    t = asyncio.ensure_future(c.get_or_load("k", slow))
    await asyncio.sleep(0.05)
    try:
        c.get_or_load_sync("k", lambda: 2)
        print("no error")
    except RuntimeError as e:
        print("refused:", e)
    print("loaded", await t)
    print("own", c.get_or_load_sync("other", lambda: 3))
asyncio.run(main())
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 3, (r.stdout, r.stderr)
    assert lines[0].startswith("refused: get_or_load_sync would block the running event loop")
    assert lines[1:] == ["loaded 1", "own 3"]
