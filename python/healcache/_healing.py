"""Glue of self-healing, called by the compiled module (not public API).

Where the calls of a source run (never on a thread Rust started, never inside Rust frames):

- a sync source runs on a pool of at most 8 daemon worker threads (``healcache-source-N``), so it
  blocks neither the event loop, nor the thread that waits for the interval, nor the timer thread;
  a call that outlives its timeout keeps its worker until it returns, and calls queued beyond
  4,096 (every worker stuck in a source that hangs) fail at once instead of piling up;
- an async source (a coroutine function) runs as a task on the event loop that was running when it
  was registered, or on healcache's own event loop thread (``healcache-loop``) when none was or that
  loop is closed since; an awaitable returned by a sync callable goes the same way.

Each call answers through its ``_SourceReply`` (``ok``, ``fail``, ``refuse``), whose methods only
send on a channel. The background healing of a cache is a daemon thread (``healcache-healer``) that
polls the core's healer with the GIL held and waits in ``os.read``; at interpreter exit every such
thread is stopped and joined, so none is inside Rust code while the interpreter finalizes.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import inspect
import os
import queue
import sys
import threading
from typing import Any, Awaitable, Callable, Optional

from ._errors import InvalidKey

_MAX_WORKERS = 8
_MAX_QUEUED = 4096
_JOIN_TIMEOUT = 10.0

_lock = threading.Lock()
_jobs: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
_idle = threading.Semaphore(0)
_workers: list[threading.Thread] = []
_own_loop: Optional[asyncio.AbstractEventLoop] = None
_own_thread: Optional[threading.Thread] = None
_healers: dict[Any, threading.Thread] = {}


def prepare(source: Callable[..., Any]) -> tuple[bool, Optional[asyncio.AbstractEventLoop]]:
    """At registration: whether ``source`` is a coroutine function, and the running loop (if any)."""
    is_async = inspect.iscoroutinefunction(source) or inspect.iscoroutinefunction(getattr(source, "__call__", None))
    try:
        loop: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    return is_async, loop


def submit(source: Callable[[str], Any], key: str, loop: Optional[asyncio.AbstractEventLoop], is_async: bool, reply: Any) -> None:
    """Asks ``source`` for ``key``; the answer goes to ``reply``."""
    if is_async:
        try:
            aw = source(key)  # makes the coroutine; none of its body runs here
        except BaseException as e:  # noqa: BLE001 - every failure is the source's answer
            _fail(reply, e)
            return
        _schedule(aw, loop, reply)
        return
    if _jobs.qsize() >= _MAX_QUEUED:  # workers stuck in sources that hang: refuse, do not grow
        reply.fail()
        return
    _jobs.put((source, key, loop, reply))
    if _idle.acquire(blocking=False):
        return
    with _lock:
        if len(_workers) < _MAX_WORKERS:
            t = threading.Thread(target=_work, name=f"healcache-source-{len(_workers)}", daemon=True)
            t.start()
            _workers.append(t)


def _work() -> None:
    while True:
        source, key, loop, reply = _jobs.get()
        if not reply.cancelled():
            try:
                result = source(key)
            except BaseException as e:  # noqa: BLE001
                _fail(reply, e)
            else:
                if inspect.isawaitable(result):
                    _schedule(result, loop, reply)
                else:
                    reply.ok(result)
                del result
        del source, key, loop, reply
        _idle.release()


def _fail(reply: Any, exc: BaseException) -> None:
    if isinstance(exc, InvalidKey):
        reply.refuse()
    else:
        reply.fail()


async def _await(aw: Awaitable[Any]) -> Any:
    return await aw


def _schedule(aw: Awaitable[Any], loop: Optional[asyncio.AbstractEventLoop], reply: Any) -> None:
    if loop is None or not loop.is_running():
        loop = _private_loop()
    coro = aw if asyncio.iscoroutine(aw) else _await(aw)
    try:
        task = asyncio.run_coroutine_threadsafe(coro, loop)
    except BaseException:  # noqa: BLE001 - the loop closed meanwhile
        coro.close()
        reply.fail()
        return
    cancel = functools.partial(_cancel, task, loop)
    if not reply.set_task(cancel):
        cancel()
    task.add_done_callback(functools.partial(_settle, reply))


def _cancel(task: "concurrent.futures.Future[Any]", loop: asyncio.AbstractEventLoop) -> None:
    """Cancels a source's task (its answer is no longer wanted), unless its loop is gone."""
    if not loop.is_closed():
        task.cancel()


def _settle(reply: Any, task: Any) -> None:
    if task.cancelled():
        reply.fail()
        return
    exc = task.exception()
    if exc is None:
        reply.ok(task.result())
    else:
        _fail(reply, exc)


def _private_loop() -> asyncio.AbstractEventLoop:
    """healcache's own event loop, on a daemon thread, for async sources registered outside a loop."""
    global _own_loop, _own_thread
    with _lock:
        if _own_loop is None or _own_loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="healcache-loop", daemon=True)
            thread.start()
            _own_loop, _own_thread = loop, thread
        return _own_loop


def start_healer(heal_loop: Any, name: str = "healcache-healer") -> None:
    """Starts the background thread of one cache's healing (or of a write-behind's drainer)."""
    t = threading.Thread(target=_heal, args=(heal_loop,), name=name, daemon=True)
    with _lock:
        _healers[heal_loop] = t
    t.start()


def _heal(heal_loop: Any) -> None:
    fd = heal_loop.fileno()
    try:
        while heal_loop.step():
            os.read(fd, 4096)
    finally:
        with _lock:
            _healers.pop(heal_loop, None)


def stop_healer(heal_loop: Any) -> None:
    """Stops one background thread and waits for it (not from that thread itself)."""
    heal_loop.stop()
    with _lock:
        t = _healers.get(heal_loop)
    if t is not None and t is not threading.current_thread():
        t.join(_JOIN_TIMEOUT)


async def _cancel_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _after_fork_in_child() -> None:
    """In a forked child only the forking thread exists: the parent's workers, its event loop
    thread and its background threads are gone, so their records are dropped (the next source
    call starts workers here), and each cache's background healing and each write-behind's
    drainer start again here (the drainer without the items the parent queued: those are the
    parent's to write). The loads the parent had under way are not joined here: no thread here
    would end them."""
    global _lock, _jobs, _idle, _workers, _own_loop, _own_thread, _healers
    from . import _healcache

    _healcache._after_fork()
    inherited = [(heal_loop, t.name) for heal_loop, t in _healers.items()]
    _lock = threading.Lock()
    _jobs = queue.SimpleQueue()
    _idle = threading.Semaphore(0)
    _workers = []
    _own_loop, _own_thread = None, None
    _healers = {}
    for heal_loop, name in inherited:
        if heal_loop.after_fork():
            start_healer(heal_loop, name)


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _shutdown() -> None:
    """At interpreter exit: every write-behind queue still running first sends what it holds to
    its writer (as ``WriteBehind.close()`` does, within the core's exit timeout; what it could
    not send is reported on stderr, never dropped without a word), then every background thread
    is stopped and joined, and healcache's own event loop ends after the source calls still on it
    are cancelled."""
    from . import _healcache

    report = _healcache._close_all_write_behind()
    if report is not None:
        sys.stderr.write(report)
    with _lock:
        running = list(_healers.items())
        loop, loop_thread = _own_loop, _own_thread
    for heal_loop, _ in running:
        heal_loop.stop()
    for _, t in running:
        if t is not threading.current_thread():
            t.join(_JOIN_TIMEOUT)
    if loop is None or loop_thread is None or not loop.is_running():
        return
    try:
        asyncio.run_coroutine_threadsafe(_cancel_tasks(), loop).result(_JOIN_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
    except (RuntimeError, concurrent.futures.TimeoutError):
        return
    loop_thread.join(_JOIN_TIMEOUT)
    if not loop.is_running():
        loop.close()
