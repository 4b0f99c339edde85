"""``Cache.cached``: memoize a sync or async function through the cache's coalesced loads."""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any, Callable, NamedTuple, Optional, Protocol

from ._errors import _LoopWouldBlock


class CacheInfo(NamedTuple):
    """``cache_info()`` of a decorated function, as ``functools.lru_cache`` gives it: the
    counters of the cache the function stores in (shared with its other users)."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


class CachedFunction(Protocol):
    """What ``@cache.cached`` returns: the function itself (same signature, name and
    docstring) plus ``cache``, ``cache_info()`` and ``cache_clear()``. Generic for type
    checkers: ``CachedFunction[[int], str]``."""

    cache: Any

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def cache_info(self) -> CacheInfo: ...

    def cache_clear(self) -> None: ...


# `CachedFunction[[int], str]` in annotations evaluated at runtime (Python 3.9 has no ParamSpec).
setattr(CachedFunction, "__class_getitem__", classmethod(types.GenericAlias))


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
    call). ``ttl``: seconds or a ``timedelta`` each result lives (default: the cache's ``ttl``).

    The wrapper has ``cache``, ``cache_info()`` (the cache's own hit and miss counters, its
    ``max_entries`` and entry count) and ``cache_clear()`` (empties the cache: give a function
    a cache of its own to clear only its entries).

    A sync function called on a thread running an event loop while another caller loads its key
    raises ``RuntimeError`` naming it: waiting would block the loop (``get_or_load_sync``'s rule).
    """
    # both checked at decoration, as `ttl` is, rather than at the first call
    if key is not None and not callable(key):
        raise TypeError(f"`key` must be callable, not {type(key).__name__}")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(f"`func` must be callable, not {type(fn).__name__}")
        make_key = key if key is not None else default_key(fn)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await cache.get_or_load(make_key(*args, **kwargs), lambda: fn(*args, **kwargs), ttl=ttl)

            return _with_cache(async_wrapper, cache)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ran = False

            def load() -> Any:
                nonlocal ran
                ran = True
                return fn(*args, **kwargs)

            try:
                return cache.get_or_load_sync(make_key(*args, **kwargs), load, ttl=ttl)
            except _LoopWouldBlock:
                if ran:  # refused inside `fn` (a cached function it calls): that one is named
                    raise
                # the caller called `fn`, not `get_or_load_sync`: the error names what they called
                name = getattr(fn, "__qualname__", repr(fn))
                raise _LoopWouldBlock(
                    f"{name}() would block the running event loop: it is a sync function cached by "
                    "@cache.cached and another caller is loading its key; make it an async function "
                    "(async def) to await it there, or call it outside the event loop (in a thread: "
                    f"await asyncio.to_thread({name.rsplit('.', 1)[-1]}, ...))"
                ) from None

        return _with_cache(wrapper, cache)

    if func is not None:
        return decorate(func)
    return decorate


def _with_cache(wrapper: Any, cache: Any) -> Any:
    def cache_info() -> CacheInfo:
        stats = cache.stats()
        return CacheInfo(stats["hits"], stats["misses"], cache.max_entries, len(cache))

    wrapper.cache = cache
    wrapper.cache_info = cache_info
    wrapper.cache_clear = cache.clear
    return wrapper
