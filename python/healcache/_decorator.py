"""``Cache.cached``: memoize a sync or async function through the cache's coalesced loads."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional


def default_key(func: Callable[..., Any]) -> Callable[..., str]:
    """The key of a call: ``"module.qualname:" + repr(args)`` (+ ``repr`` of sorted kwargs).

    Arguments must have a stable, distinct ``repr`` (str, int, tuples of them...). Pass
    ``key=`` for anything else, or to share entries with other code.
    """
    prefix = f"{func.__module__}.{func.__qualname__}:"

    def make_key(*args: Any, **kwargs: Any) -> str:
        if kwargs:
            return prefix + repr(args) + repr(sorted(kwargs.items()))
        return prefix + repr(args)

    return make_key


def cached(
    cache: Any,
    func: Optional[Callable[..., Any]] = None,
    key: Optional[Callable[..., str]] = None,
    ttl: Optional[float] = None,
) -> Any:
    """Implements ``cache.cached``: ``@cache.cached`` or ``@cache.cached(key=..., ttl=...)``.

    ``key(*args, **kwargs) -> str`` builds the cache key from the call's arguments (default:
    :func:`default_key`). Sync functions go through ``get_or_load_sync`` (concurrent threads
    share one call), async functions through ``await get_or_load`` (concurrent tasks share one
    call). ``ttl``: seconds each result lives (default: the cache's ``ttl``).
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        make_key = key if key is not None else default_key(fn)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await cache.get_or_load(make_key(*args, **kwargs), lambda: fn(*args, **kwargs), ttl=ttl)

            async_wrapper.cache = cache  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return cache.get_or_load_sync(make_key(*args, **kwargs), lambda: fn(*args, **kwargs), ttl=ttl)

        wrapper.cache = cache  # type: ignore[attr-defined]
        return wrapper

    if func is not None:
        return decorate(func)
    return decorate
