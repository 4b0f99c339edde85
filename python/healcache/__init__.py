"""healcache: one caching engine (Rust) for Rust, Python, Node and edge workers.

``Cache`` stores Python objects under ``str`` keys, bounded by count and bytes, with TTLs,
versions (compare-and-set) and coalesced loads: concurrent ``get_or_load`` calls for a missing
key share one loader call, from asyncio tasks and threads alike. ``fetch`` adds the stampede
layers (stale-while-revalidate, fail-safe, soft timeout, XFetch, refresh-ahead, negative caching)
and says what it did.
"""

from __future__ import annotations

from typing import TypedDict

from . import _errors
from ._errors import (
    Cancelled,
    HealcacheError,
    InvalidConfig,
    InvalidKey,
    KeyTooLong,
    LoaderError,
    LoaderPanicked,
    LoadTimeout,
    NotFound,
    RecursiveLoad,
    TooManyLoads,
    ValueTooLarge,
    VersionMismatch,
)
from ._fetch import NOT_FOUND, Fetched, Status
from ._healcache import Cache, __version__


class LoadLatency(TypedDict):
    """Loader latency histogram: ``counts[i]`` loads fell in bucket i (not cumulative; the last
    bucket is +Inf); ``sum_nanos`` is the total time."""

    counts: list[int]
    sum_nanos: int


class Stats(TypedDict):
    """What ``Cache.stats()`` returns: every counter of the cache."""

    hits: int
    misses: int
    inserts: int
    updates: int
    evictions: int
    expirations: int
    entries: int
    weight: int
    loads: int
    coalesced: int
    load_errors: int
    load_panics: int
    load_timeouts: int
    fenced_writes: int
    oversize_rejections: int
    in_flight: int
    stale_served_swr: int
    stale_served_fail_safe: int
    stale_served_soft_timeout: int
    early_refreshes: int
    refresh_ahead: int
    negative_hits: int
    negative_entries: int
    negative_refused: int
    load_latency: LoadLatency


__all__ = [
    "Cache",
    "Fetched",
    "Status",
    "NOT_FOUND",
    "Stats",
    "LoadLatency",
    *_errors.__all__,
    "__version__",
]
