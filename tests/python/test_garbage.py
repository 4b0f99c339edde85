"""Reference cycles through a cache are collected, as they are through a dict: the collector sees
the values a cache holds, its weigher, and a write-behind queue's writer. A cache that is still
reachable keeps every value."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from healcache import Cache, WriteBehind


class Marker:
    pass


def collected(ref: weakref.ref[Any]) -> bool:
    gc.collect()
    return ref() is None


def test_the_collector_sees_the_values_a_cache_holds() -> None:
    c: Cache[Any] = Cache()
    a, b = Marker(), Marker()
    c["a"] = a
    c["b"] = b
    c.set("short", Marker(), ttl=0.01)
    referents = gc.get_referents(c)
    assert any(r is a for r in referents)
    assert any(r is b for r in referents)


def test_a_value_referring_to_its_owner_is_collected() -> None:
    class Service:
        def __init__(self) -> None:
            self.cache: Cache[Any] = Cache()
            self.cache["me"] = self

    ref = weakref.ref(Service())
    assert collected(ref)


def test_a_cycle_through_a_tuple_value_is_collected() -> None:
    # a tuple cannot be cleared, so only the cache's own clear breaks this cycle
    c: Cache[Any] = Cache()
    m = Marker()
    c["k"] = (c, m)
    ref = weakref.ref(m)
    del c, m
    assert collected(ref)


def test_a_weigher_bound_to_the_owner_is_collected() -> None:
    class Service:
        def __init__(self) -> None:
            self.cache: Cache[Any] = Cache(weigher=self.weigh, max_bytes=1_000)
            self.cache["k"] = "v"

        def weigh(self, value: Any) -> int:
            return 1

    ref = weakref.ref(Service())
    assert collected(ref)


def test_a_write_behind_writer_bound_to_the_owner_is_collected() -> None:
    class Service:
        def __init__(self) -> None:
            self.cache: Cache[Any] = Cache()
            self.queue = WriteBehind(self.cache, self.write)

        def write(self, batch: list[Any]) -> None:
            pass

    s = Service()
    s.queue.set("k", "v")
    s.queue.close(5.0)
    ref = weakref.ref(s)
    del s
    assert collected(ref)


def test_a_reachable_cache_keeps_its_values_and_its_cycles() -> None:
    c: Cache[Any] = Cache()
    m = Marker()
    c["self"] = (c, m)
    c["m"] = m
    ref = weakref.ref(m)
    del m
    gc.collect()
    assert ref() is not None
    assert c["self"][0] is c
    assert c["m"] is ref()
    assert c.stats()["entries"] == 2


def test_a_cache_can_be_weakly_referenced() -> None:
    c: Cache[Any] = Cache()
    ref = weakref.ref(c)
    assert ref() is c
    del c
    assert ref() is None


def test_an_open_write_behind_queue_keeps_its_owner_and_still_writes() -> None:
    written: list[Any] = []

    class Service:
        def __init__(self) -> None:
            self.cache: Cache[Any] = Cache()
            self.queue = WriteBehind(self.cache, self.write, flush_interval=0.01)

        def write(self, batch: list[Any]) -> None:
            written.extend(batch)

    ref = weakref.ref(Service())
    gc.collect()
    s = ref()
    assert s is not None, "an open queue is live work: it keeps its writer's owner"
    s.queue.set("k", "v")
    assert s.queue.close(5.0) == 0
    assert written == [("put", "k", "v")]
    del s
    assert collected(ref)


def test_collections_while_other_threads_write_keep_every_live_value() -> None:
    # writers hold shard locks without the GIL (`get_or_load_sync` waits with it released);
    # the collector's walk waits for them and sees each live value
    import threading

    c: Cache[Any] = Cache(max_entries=10_000)
    kept = [Marker() for _ in range(100)]
    for i, m in enumerate(kept):
        c[f"kept:{i}"] = m
    stop = threading.Event()

    def churn(t: int) -> None:
        n = 0
        while not stop.is_set():
            c.get_or_load_sync(f"churn:{t}:{n % 300}", lambda: (c, Marker()))
            c[f"set:{t}:{n % 300}"] = [c]
            n += 1

    threads = [threading.Thread(target=churn, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(50):
            gc.collect()
    finally:
        stop.set()
        for t in threads:
            t.join()
    for i, m in enumerate(kept):
        assert c.peek(f"kept:{i}") is m
    ref = weakref.ref(c)
    del c
    assert collected(ref)
