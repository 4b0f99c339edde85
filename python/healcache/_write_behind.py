"""Glue of ``WriteBehind``, called by the compiled module (not public API).

A sync writer runs on a daemon thread of its own (``healcache-writer``), an async writer on the
event loop running when the ``WriteBehind`` was made (else healcache's own loop thread). Each
call answers through its ``_WriteReply`` (``ok`` or ``fail(text)``), whose methods only send on a
channel. The drainer's thread is started and, at exit, stopped by ``_healing``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from typing import Any, Callable, Optional

from . import _healing

prepare = _healing.prepare


def start(drainer: Any) -> None:
    _healing.start_healer(drainer, "healcache-write-behind")


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def submit(writer: Callable[[list], Any], batch: list, loop: Optional[asyncio.AbstractEventLoop], is_async: bool, reply: Any) -> None:
    """Calls ``writer(batch)``; the outcome goes to ``reply``."""
    if is_async:
        try:
            aw = writer(batch)
        except BaseException as e:  # noqa: BLE001 - every failure is the writer's answer
            reply.fail(_text(e))
            return
        _schedule(aw, loop, reply)
        return
    threading.Thread(target=_call, args=(writer, batch, loop, reply), name="healcache-writer", daemon=True).start()


def _call(writer: Callable[[list], Any], batch: list, loop: Optional[asyncio.AbstractEventLoop], reply: Any) -> None:
    try:
        result = writer(batch)
    except BaseException as e:  # noqa: BLE001
        reply.fail(_text(e))
        return
    if inspect.isawaitable(result):
        _schedule(result, loop, reply)
    else:
        reply.ok()


async def _await(aw: Any) -> Any:
    return await aw


def _schedule(aw: Any, loop: Optional[asyncio.AbstractEventLoop], reply: Any) -> None:
    if loop is None or not loop.is_running():
        loop = _healing._private_loop()
    coro = aw if asyncio.iscoroutine(aw) else _await(aw)
    try:
        task = asyncio.run_coroutine_threadsafe(coro, loop)
    except BaseException:  # noqa: BLE001 - the loop closed meanwhile
        coro.close()
        reply.fail("the writer's event loop is closed")
        return
    task.add_done_callback(functools.partial(_settle, reply))


def _settle(reply: Any, task: Any) -> None:
    if task.cancelled():
        reply.fail("the writer's task was cancelled")
        return
    exc = task.exception()
    if exc is None:
        reply.ok()
    else:
        reply.fail(_text(exc))
