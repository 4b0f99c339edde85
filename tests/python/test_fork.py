"""A cache made before a fork keeps working in the child (gunicorn `preload_app`, `multiprocessing`
with the fork start method): the child reads and writes the shared tier, and parent and child see
each other's writes and deletes through the invalidation bus (P9: a forked child works)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import healcache
from healcache import WriteBehind
from rediskit import redis_server  # noqa: F401 (fixture)

# docs/shared-tier.md: a copy another instance changed is dropped when the message arrives, or
# distrusted once a lost message or a silent bus is noticed; either way within this bound.
INVALIDATION_BOUND = 1.1


class Unloadable(Exception):
    pass


def unloadable():
    raise Unloadable("the origin must not be called")


def read(cache, key):
    """`(value, status)` of a fetch whose loader fails: `(None, "miss")` when neither L1 nor L2 had it."""

    async def go():
        return await cache.fetch(key, unloadable)

    try:
        f = asyncio.run(go())
    except Unloadable:
        return None, "miss"
    return f.value, f.status


def read_until(cache, key, want):
    """Fetches until the value is `want`; `(value, status, seconds taken)` of the last fetch."""
    start = time.monotonic()
    while True:
        value, status = read(cache, key)
        took = time.monotonic() - start
        if value == want or took > 2 * INVALIDATION_BOUND:
            return value, status, took
        time.sleep(0.002)


def wait_writes(cache, n):
    end = time.monotonic() + 5
    while cache.stats()["l2_writes"] < n:
        assert time.monotonic() < end, "the L2 write did not land"
        time.sleep(0.005)


def child_main(cache, conn, url):
    """Runs in the forked child: every step answers one message on `conn`."""
    try:
        steps = []
        # the L1 copy came with the fork; a cache made here reads the parent's value from L2
        steps.append(read(cache, "a"))
        steps.append(read(healcache.Cache(redis=url), "a"))
        writes = cache.stats()["l2_writes"]
        cache.set("c", "c0")
        wait_writes(cache, writes + 1)
        # the first use of the tier here subscribed again and made the inherited copies suspect:
        # this one is checked against L2 by its token before it is served fresh again
        steps.append(read(cache, "a"))
        # subscribed: the parent writes until a message arrives
        end = time.monotonic() + 10
        while cache.stats()["l2_bus_received"] == 0 and time.monotonic() < end:
            time.sleep(0.005)
        steps.append(cache.stats()["l2_bus_received"] > 0)
        # counted before the parent writes: its message may arrive before its word on the pipe
        before = cache.stats()["l2_bus_invalidated"]
        conn.send(steps)
        assert conn.recv() == "parent set a"
        value, status, took = read_until(cache, "a", "p1")
        conn.send((value, status, took, cache.stats()["l2_bus_invalidated"] - before))
        assert conn.recv() == "your turn"
        cache.set("c", "c1")
        wait_writes(cache, writes + 2)
        conn.send("child set c")
        assert conn.recv() == "delete a"
        cache.delete("a")
        conn.send("child deleted a")
        conn.recv()
    except BaseException as e:  # the parent reports it
        conn.send(("child failed", repr(e)))


def test_a_forked_child_and_its_parent_see_each_others_writes(redis_server):
    cache = healcache.Cache(redis=redis_server.url, ttl=60)
    cache.set("a", "p0")
    wait_writes(cache, 1)
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    child = ctx.Process(target=child_main, args=(cache, there, redis_server.url), daemon=True)
    child.start()
    try:
        n = 0
        while not here.poll(0.02):
            n += 1
            assert n < 1500, "the child never answered"
            cache.set("hello", n)
        assert here.recv() == [("p0", "hit"), ("p0", "l2-hit"), ("p0", "revalidated"), True]
        # what the child wrote is in L2
        assert read(cache, "c") == ("c0", "l2-hit")

        # the parent writes: the child's inherited L1 copy is dropped by the bus message
        cache.set("a", "p1")
        here.send("parent set a")
        assert here.poll(30)
        value, status, took, dropped = here.recv()
        assert (value, status) == ("p1", "l2-hit")
        assert took <= INVALIDATION_BOUND
        assert dropped == 1

        # the child writes, then deletes: the parent's copies follow
        before = cache.stats()["l2_bus_invalidated"]
        here.send("your turn")
        assert here.poll(30) and here.recv() == "child set c"
        value, status, took = read_until(cache, "c", "c1")
        assert (value, status) == ("c1", "l2-hit") and took <= INVALIDATION_BOUND
        assert read(cache, "a") == ("p1", "hit")
        here.send("delete a")
        assert here.poll(30) and here.recv() == "child deleted a"
        value, status, took = read_until(cache, "a", None)
        assert (value, status) == (None, "miss") and took <= INVALIDATION_BOUND
        assert cache.stats()["l2_bus_invalidated"] - before == 2
        here.send("bye")
        child.join(30)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()  # by its pid
            child.join()


async def _hanging() -> str:
    await asyncio.sleep(30)
    return "late"


def _load_outcome(cache) -> str:
    """What a read-through whose loader hangs for 30 s ends in: the error's name, or the value."""

    async def go():
        return await cache.get_or_load("hangs", _hanging)

    try:
        return asyncio.run(go())
    except healcache.HealcacheError as e:
        return type(e).__name__


def _timers_and_healing_child(inherited, conn) -> None:
    try:
        fresh = healcache.Cache(load_timeout=0.2, healing_sample_rate=1.0)
        steps = [_load_outcome(inherited), _load_outcome(fresh)]
        fresh.set("u:1", 1)
        fresh.register_source("u:", lambda key: 2)
        steps.append(fresh.verify_now_sync()["drift"])
        steps.append(inherited.verify_now_sync()["drift"])
        conn.send(steps)
    except BaseException as e:  # the parent reports it
        conn.send(("child failed", repr(e)))


def test_a_forked_child_keeps_load_timeouts_and_sync_sources() -> None:
    """P9: load timeouts fire in a forked child, and healing asks sync sources there, in a cache
    made before the fork and in one made after it, though the parent had used both before."""
    cache = healcache.Cache(load_timeout=0.2, healing_sample_rate=1.0)
    assert _load_outcome(cache) == "LoadTimeout"
    cache.set("u:1", 1)
    cache.register_source("u:", lambda key: 2)
    assert cache.verify_now_sync()["drift"] == 1
    cache.set("u:1", 1)
    assert _child_answer(_timers_and_healing_child, cache) == ["LoadTimeout", "LoadTimeout", 1, 1]


def _child_answer(target, *args):
    """Runs ``target(*args, conn)`` in a forked child; its one message on ``conn``, once it has
    exited cleanly (killed by its pid when it hangs)."""
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    child = ctx.Process(target=target, args=(*args, there), daemon=True)
    child.start()
    try:
        assert here.poll(40), "the child hung"
        answer = here.recv()
        child.join(20)
        assert child.exitcode == 0
        return answer
    finally:
        if child.is_alive():
            child.kill()  # by its pid
            child.join()


def _background_child(healed, wb, batches, conn) -> None:
    try:
        # the parent's background healing goes on here: drift planted here is found and repaired
        healed.set("u:1", 1)
        end = time.monotonic() + 20
        while healed.get("u:1") != 2 and time.monotonic() < end:
            time.sleep(0.01)
        steps = [healed.get("u:1")]
        # the write-behind drains here what is written here, and only that
        wb.set("child", 2)
        steps.append(wb.close(10))
        steps.append(batches)
        conn.send(steps)
    except BaseException as e:  # the parent reports it
        conn.send(("child failed", repr(e)))


def test_a_forked_child_runs_background_healing_and_write_behind_of_its_own() -> None:
    """P9: background work made before a fork runs in the child too: a cache's background
    healing, and a write-behind's drainer, which sends what the child writes; the items the
    parent had queued stay the parent's, written once, by the parent."""
    healed = healcache.Cache(healing_enabled=True, healing_verify_interval=0.02, healing_sample_rate=1.0)
    healed.register_source("u:", lambda key: 2)
    batches: list = []
    wb = WriteBehind(healcache.Cache(), batches.append, flush_interval=3600)
    wb.set("parent", 1)  # waits in the queue for an hour, or for close
    assert _child_answer(_background_child, healed, wb, batches) == [2, 0, [[("put", "child", 2)]]]
    assert wb.close(10) == 0
    assert batches == [[("put", "parent", 1)]], "the parent's item, written once, here"
    healed.close()


def _inherited_load_child(cache, conn) -> None:
    try:
        # the parent's thread that runs the load of "k" does not exist here
        steps = [cache.stats()["in_flight"]]
        steps.append(cache.get_or_load_sync("k", lambda: "child"))
        steps.append(asyncio.run(cache.get_or_load("a", lambda: "child-async")))
        steps.append(cache.stats()["in_flight"])
        conn.send(steps)
    except BaseException as e:  # the parent reports it
        conn.send(("child failed", repr(e)))


def test_a_load_under_way_at_the_fork_does_not_hold_its_key_in_the_child() -> None:
    """P9: a key another thread of the parent was loading when it forked loads in the child: no
    thread is there to end the parent's load, so waiting on it would never end."""
    import threading

    cache = healcache.Cache()
    release = threading.Event()
    started = threading.Barrier(3)

    def slow(key):
        def load():
            started.wait(5)
            release.wait(10)
            return "parent"

        return lambda: cache.get_or_load_sync(key, load)

    threads = [threading.Thread(target=slow(k)) for k in ("k", "a")]
    for t in threads:
        t.start()
    started.wait(5)
    try:
        assert _child_answer(_inherited_load_child, cache) == [0, "child", "child-async", 0]
    finally:
        release.set()
        for t in threads:
            t.join(10)
    assert cache.get("k") == "parent"
