"""WriteBehind from Python: conversion, error types, sync and async writers, close. The queue's
algorithms are tested in Rust (core/tests/write_behind.rs); these are the same behaviours, smaller."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

import healcache
from healcache import Cache, WriteBehind


def _wait(cond, what: str) -> None:
    deadline = time.monotonic() + 20
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


class Gate:
    """A sync writer that records batches and waits while closed."""

    def __init__(self, open_: bool = True) -> None:
        self.open = threading.Event()
        if open_:
            self.open.set()
        self.batches: list[list[tuple]] = []

    def __call__(self, batch: list[tuple]) -> None:
        self.open.wait(30)
        self.batches.append(batch)


def test_set_and_delete_reach_the_cache_at_once_and_the_writer_in_batches() -> None:
    cache = Cache()
    # closed: the first full batch ("a", "z") stays with the writer, and the drainer sends one
    # batch at a time, so what follows queues and coalesces behind it however soon the
    # drainer's thread runs
    w = Gate(open_=False)
    wb = WriteBehind(cache, w, batch=2, flush_interval=3600)
    assert wb.set("a", {"n": 1}) > 0
    assert cache.get("a") == {"n": 1}
    wb.set("z", 0)
    for i in range(3):
        wb.set("k", i)  # coalesces, last wins
    wb.set("b", 2)
    assert wb.delete("b") is True
    assert cache.get("b") is None
    assert wb.stats()["queue_depth"] == 4  # the batch being written, "k" and "b"
    w.open.set()
    assert wb.close(20) == 0
    assert w.batches == [[("put", "a", {"n": 1}), ("put", "z", 0)], [("put", "k", 2), ("delete", "b", None)]]
    s = wb.stats()
    assert (s["batches"], s["flushed_items"], s["failed"], s["closed"]) == (2, 4, 0, True)
    assert "healcache_write_behind_flushes_total{cache=\"x\"} 2" in wb.prometheus("x")


def test_reject_at_the_bound_changes_nothing() -> None:
    cache = Cache()
    w = Gate(open_=False)
    wb = WriteBehind(cache, w, max_queue=3, batch=1, flush_interval=0.001)
    for i in range(3):
        wb.set(f"k{i}", i)
    with pytest.raises(healcache.QueueFull) as e:
        wb.set("k3", 3)
    assert e.value.code == "QueueFull" and e.value.max == 3
    assert cache.get("k3") is None
    wb.set("k2", 20)  # still queued: updated in place
    w.open.set()
    assert wb.close(20) == 0
    assert [b[0] for b in w.batches] == [("put", "k0", 0), ("put", "k1", 1), ("put", "k2", 20)]


def test_a_max_queue_below_the_default_batch_is_its_own_batch() -> None:
    # only max_queue given: the default batch (100) gives way to it, as warm's gives way to
    # max_in_flight; batch given above it is still refused, naming it
    cache = Cache()
    w = Gate(open_=False)
    wb = WriteBehind(cache, w, max_queue=3, flush_interval=3600)
    for i in range(3):
        wb.set(f"k{i}", i)
    w.open.set()
    assert wb.close(20) == 0
    assert w.batches == [[("put", "k0", 0), ("put", "k1", 1), ("put", "k2", 2)]]
    with pytest.raises(healcache.InvalidConfig) as e:
        WriteBehind(cache, w, max_queue=3, batch=4)
    assert e.value.field == "batch"


def test_block_waits_for_room_then_times_out() -> None:
    cache = Cache()
    w = Gate(open_=False)
    wb = WriteBehind(cache, w, max_queue=1, batch=1, flush_interval=0.001, on_full=("block", 0.05))
    wb.set("a", 1)
    with pytest.raises(healcache.QueueFull):
        wb.set("b", 2)
    assert cache.get("b") is None
    threading.Timer(0.05, w.open.set).start()
    wb2 = WriteBehind(cache, w, max_queue=1, batch=1, flush_interval=0.001, on_full=("block", 30))
    wb2.set("c", 3)
    wb2.set("d", 4)  # waits until the writer lets the first one through
    assert cache.get("d") == 4
    assert wb.close(20) == 0 and wb2.close(20) == 0


def test_a_failing_writer_retries_then_gives_up_with_the_error() -> None:
    calls = []

    def flaky(batch: list[tuple]) -> None:
        calls.append(batch)
        if len(calls) <= 2:
            raise ConnectionError("db down")

    wb = WriteBehind(Cache(), flaky, flush_interval=0.001, retry_min=0.001, retry_max=0.005)
    wb.set("a", 1)
    assert wb.close(20) == 0
    assert len(calls) == 3 and wb.stats()["failures"] == 2 and wb.failed() == []

    def broken(batch: list[tuple]) -> None:
        raise ValueError("bad row")

    wb = WriteBehind(Cache(), broken, flush_interval=0.001, retry_min=0.001, retry_max=0.005, attempts=2)
    wb.set("a", 1)
    assert wb.close(20) == 0
    assert wb.failed() == [{"op": "put", "key": "a", "value": 1, "attempts": 2, "error": "ValueError: bad row"}]
    assert wb.stats()["failed"] == 1
    assert len(wb.failed(take=True)) == 1 and wb.failed() == []


def test_close_returns_what_it_could_not_flush_and_later_writes_raise_closed() -> None:
    cache = Cache()
    w = Gate(open_=False)
    wb = WriteBehind(cache, w, flush_interval=0.001)
    wb.set("a", 1)
    wb.set("b", 2)
    assert wb.close(0.05) == 2
    assert {f["key"] for f in wb.failed()} == {"a", "b"}
    assert wb.closed
    with pytest.raises(healcache.Closed):
        wb.set("c", 3)
    assert cache.get("c") is None
    w.open.set()


def test_an_async_writer_runs_on_the_loop_captured_at_construction() -> None:
    async def main() -> None:
        seen: list[tuple[list[tuple], threading.Thread]] = []

        async def writer(batch: list[tuple]) -> None:
            await asyncio.sleep(0)
            seen.append((batch, threading.current_thread()))

        wb = WriteBehind(Cache(), writer, flush_interval=0.001)
        wb.set("a", 1)
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, wb.close, 20) == 0
        assert seen == [([("put", "a", 1)], threading.current_thread())]

    asyncio.run(main())


def test_bad_settings_raise_invalid_config() -> None:
    with pytest.raises(healcache.InvalidConfig):
        WriteBehind(Cache(), Gate(), max_queue=0)
    with pytest.raises(healcache.InvalidConfig):
        WriteBehind(Cache(), Gate(), batch=11, max_queue=10)
    with pytest.raises(healcache.InvalidConfig):
        WriteBehind(Cache(), Gate(), on_full="drop")
    with pytest.raises(healcache.InvalidConfig):
        WriteBehind(Cache(), "not callable")  # type: ignore[arg-type]


def test_settings_are_accepted_at_their_bounds_and_refused_one_step_past() -> None:
    """P5: max_queue 10,000,000, batch up to max_queue, attempts 1,000, and a day (86,400 s) for
    flush_interval, retry_min, retry_max and the block timeout; one step past each is
    InvalidConfig naming the setting."""
    day = 86_400.0
    top: dict[str, Any] = dict(max_queue=10_000_000, batch=10_000_000, flush_interval=day, retry_min=day, retry_max=day, attempts=1000, on_full=("block", day))
    cache = Cache()
    gate = Gate()
    wb = WriteBehind(cache, gate, **top)
    wb.set("a", 1)
    assert wb.close(5) == 0  # the partial batch went at close, not after a day
    assert gate.batches == [[("put", "a", 1)]]

    over = day + 0.001
    past: list[tuple[dict[str, Any], str]] = [
        ({"max_queue": 10_000_001}, "max_queue"),
        ({"batch": 10_000_001}, "batch"),
        ({"flush_interval": over}, "flush_interval"),
        ({"retry_max": over}, "retry_max"),
        ({"retry_min": over, "retry_max": over}, "retry_min"),
        ({"attempts": 1001}, "attempts"),
        ({"on_full": ("block", over)}, "on_full"),
    ]
    for change, field in past:
        with pytest.raises(healcache.InvalidConfig) as e:
            WriteBehind(cache, gate, **{**top, **change})
        assert e.value.field == field, (change, e.value)


def test_every_write_behind_duration_takes_a_timedelta() -> None:
    """As every duration of the API: `flush_interval`, `retry_min`, `retry_max`, the block timeout
    of `on_full` and `close`'s `timeout` take seconds or a `timedelta`, and a timedelta out of
    bounds is refused as the same number of seconds is, naming the argument."""
    cache = Cache()
    gate = Gate()
    wb = WriteBehind(
        cache,
        gate,
        flush_interval=timedelta(milliseconds=10),
        retry_min=timedelta(milliseconds=10),
        retry_max=timedelta(seconds=1),
        on_full=("block", timedelta(seconds=1)),
    )
    wb.set("a", 1)
    _wait(lambda: gate.batches == [[("put", "a", 1)]], "the batch flushed after 10 ms")
    assert wb.close(timedelta(seconds=5)) == 0
    day = timedelta(days=1, milliseconds=1)
    for change, field in [
        ({"flush_interval": day}, "flush_interval"),
        ({"retry_max": day}, "retry_max"),
        ({"retry_min": timedelta(seconds=-1)}, "retry_min"),
        ({"on_full": ("block", day)}, "on_full"),
    ]:
        with pytest.raises(healcache.InvalidConfig) as e:
            WriteBehind(cache, gate, **change)
        assert e.value.field == field, (change, e.value)
    with pytest.raises(healcache.InvalidConfig) as e:
        WriteBehind(cache, gate).close(timedelta(seconds=-1))
    assert e.value.field == "timeout"


def test_close_on_the_async_writer_s_loop_is_refused_and_aclose_flushes() -> None:
    """close() on the thread of the loop an async writer runs on would block that loop until its
    deadline, with the writer unable to run: refused at once; aclose() flushes there."""
    written: list[list[tuple]] = []

    async def writer(batch: list[tuple]) -> None:
        await asyncio.sleep(0)
        written.append(batch)

    async def main() -> tuple[int, bool]:
        wb = WriteBehind(Cache(), writer, flush_interval=3600)
        wb.set("a", 1)
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="aclose"):
            wb.close(2)
        refused_at_once = time.monotonic() - started < 1.0
        return await wb.aclose(5), refused_at_once

    left, refused_at_once = asyncio.run(main())
    assert (left, refused_at_once) == (0, True)
    assert written == [[("put", "a", 1)]]


_EXIT_SCRIPT = """
import sys, time, healcache
def writer(batch):
    if sys.argv[1] == "stuck":
        time.sleep(30)
    print("wrote", sorted(op[1] for op in batch), flush=True)
wb = healcache.WriteBehind(healcache.Cache(), writer, flush_interval=3600)
wb.set("a", 1)
wb.set("b", 2)
"""


@pytest.mark.parametrize("writer", ["ok", "stuck"])
def test_at_exit_queued_items_are_written_or_reported_never_dropped_silently(writer: str) -> None:
    """P-nothing-lost: an interpreter exit without `close()` sends what the queue holds, as
    `close()` does within the exit timeout; what it could not send is reported on stderr."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, writer], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    if writer == "ok":
        assert "wrote ['a', 'b']" in r.stdout
        assert "not written" not in r.stderr
    else:
        assert "wrote" not in r.stdout
        assert "healcache: 2 write-behind item(s) were not written before exit" in r.stderr
