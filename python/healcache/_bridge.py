"""Glue between core flights and asyncio, called by the compiled module (not public API)."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import weakref
from typing import Any, Awaitable, Callable, FrozenSet

from ._healcache import _LoopDriver

_drivers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopDriver]" = weakref.WeakKeyDictionary()


# The keys whose loaders run in this context (the loader's task inherits it, and so do tasks it
# starts): an async loader awaiting its own key, directly or through other keys, would wait for
# itself forever, so that call is refused instead (threads have the core's own check).
_loading: "contextvars.ContextVar[FrozenSet[str]]" = contextvars.ContextVar("healcache_loading", default=frozenset())


def recursive(key: str) -> bool:
    """Whether ``key`` is being loaded by a loader this call runs inside."""
    return key in _loading.get()


def driver(loop: asyncio.AbstractEventLoop) -> _LoopDriver:
    """The driver polling this loop's waiting ``get_or_load``/``fetch`` calls and background
    refreshes (made on first use)."""
    d = _drivers.get(loop)
    if d is None:
        d = _LoopDriver()
        loop.add_reader(d.fileno(), d.run)
        _drivers[loop] = d
    return d


async def _await(aw: Awaitable[Any]) -> Any:
    return await aw


async def deferred(start: Callable[[], Awaitable[Any]]) -> Any:
    """An async method called outside a running event loop (``asyncio.run(cache.get_or_load(...))``):
    the call starts once awaited, inside the loop."""
    return await start()


def start(
    loader: Callable[[], Any], loop: asyncio.AbstractEventLoop, done: Callable[[Any], None], key: "str | None"
) -> tuple[bool, Any]:
    """Calls ``loader()`` (in the caller's copied context, with ``key``, if any, marked as
    loading). A plain value comes back as ``(False, value)``; an awaitable becomes a task on
    ``loop`` reporting to ``done``, returned as ``(True, task)``."""
    if key is not None:
        _loading.set(_loading.get() | {key})
    result = loader()
    if not inspect.isawaitable(result):
        return False, result
    try:
        on_loop = asyncio.get_running_loop() is loop
    except RuntimeError:
        on_loop = False
    if on_loop:
        task: Any = asyncio.ensure_future(result)
    else:  # the flight was first polled on another thread
        coro = result if asyncio.iscoroutine(result) else _await(result)
        task = asyncio.run_coroutine_threadsafe(coro, loop)
    task.add_done_callback(done)
    return True, task


def cancel(loop: asyncio.AbstractEventLoop, task: Any) -> None:
    """Cancels a loader's task from any thread (nobody waits for it any more)."""
    try:
        loop.call_soon_threadsafe(task.cancel)
    except RuntimeError:  # the loop is closed: the task is gone with it
        pass


def refuse_awaitable(result: Any) -> None:
    if asyncio.iscoroutine(result):
        result.close()
    raise TypeError(
        "get_or_load_sync: the loader returned an awaitable; use `await cache.get_or_load(...)` for async loaders"
    )


async def entered(cache: Any) -> Any:
    """``async with Cache(...) as cache``: the cache itself."""
    return cache


async def closed(cache: Any) -> bool:
    """The end of ``async with``: ``close()`` joins the background healer's thread, so it runs
    on a worker thread rather than blocking the event loop (an async source of this loop may be
    what the healer is waiting for)."""
    await asyncio.get_running_loop().run_in_executor(None, cache.close)
    return False
