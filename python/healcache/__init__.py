"""healcache: one caching engine (Rust) for Rust, Python, Node and edge workers.

``Cache`` stores Python objects under ``str`` keys, bounded by count and bytes, with TTLs,
versions (compare-and-set) and coalesced loads: concurrent ``get_or_load`` calls for a missing
key share one loader call, from asyncio tasks and threads alike. ``fetch`` adds the stampede
layers (stale-while-revalidate, fail-safe, soft timeout, XFetch, refresh-ahead, negative caching)
and says what it did. Self-healing checks sampled entries against a source of truth per key
prefix (``register_source``), repairs drift and scores every prefix (``verify_now``, ``scores``).
"""

from __future__ import annotations

from typing import Optional, TypedDict

from . import _errors
from ._errors import (
    Cancelled,
    HealcacheError,
    L2Unavailable,
    QueueFull,
    Closed,
    InvalidConfig,
    InvalidKey,
    InvalidKeyType,
    KeyTooLong,
    LoaderError,
    LoaderPanicked,
    LoadTimeout,
    NotFound,
    RecursiveLoad,
    TooManyLoads,
    ValueNotEncodable,
    ValueTooLarge,
    VersionMismatch,
)
from ._decorator import CachedFunction, CacheInfo
from ._fetch import NOT_FOUND, Fetched, NotFoundType, Status
from ._healcache import Cache, ManualClock, WriteBehind, __version__, prometheus_join
from . import _closing  # noqa: F401 (the shared tier's exit hook)


class LoadLatency(TypedDict):
    """Loader latency histogram: ``counts[i]`` loads fell in bucket i (not cumulative; the last
    bucket is +Inf); ``sum_nanos`` is the total time. ``Stats`` has three more of this shape:
    ``l2_lock_wait`` (misses waiting for another instance's rebuild), ``l2_latency`` (L2
    operations) and ``l2_bus_latency`` (an invalidation's publish to its receipt here)."""

    counts: list[int]
    sum_nanos: int


class Stats(TypedDict):
    """What ``Cache.stats()`` returns: every counter of the cache, and the healer's totals."""

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
    l2_hits: int
    l2_misses: int
    l2_errors: int
    l2_timeouts: int
    l2_skipped: int
    l2_writes: int
    l2_fenced_out: int
    l2_codec_errors: int
    l2_breaker_state: int
    l2_breaker_opens: int
    l2_recovery_depth: int
    l2_recovery_dropped: int
    l2_lock_acquired: int
    l2_lock_contended: int
    l2_lock_skipped: int
    l2_lock_timeouts: int
    l2_lock_lease_lost: int
    l2_bus_sent: int
    l2_bus_publish_failed: int
    l2_bus_received: int
    l2_bus_invalidated: int
    l2_bus_gaps: int
    l2_bus_malformed: int
    l2_suspect_rereads: int
    l2_revalidated: int
    l2_tag_invalidations: int
    l2_tag_received: int
    l2_tag_outdated: int
    l2_verifier_acquired: int
    l2_verifier_lost: int
    l2_verifier_held: int
    l2_verifier_sampled: int
    l2_verifier_repaired: int
    load_latency: LoadLatency
    l2_lock_wait: LoadLatency
    l2_latency: LoadLatency
    l2_bus_latency: LoadLatency
    healing: "HealingStats"


class WarmReport(TypedDict):
    """What ``Cache.warm`` did: keys asked for, found, absent at the source, in failed batches,
    and the first failure's message."""

    total: int
    found: int
    not_found: int
    failed: int
    error: Optional[str]


class IntervalReport(TypedDict):
    """What one healing interval did (``verify_now()``, ``verify_now_sync()``)."""

    drawn: int
    verified: int
    consistent: int
    drift: int
    repaired: int
    skipped: int
    failures: int
    duration_ms: int
    overlapped: bool


class PrefixScore(TypedDict):
    """A prefix's score report: ``score`` is consistent / verified over its last ``score_window``
    samples (1.0 before any); ``sampled`` and ``repaired`` count since registration."""

    prefix: str
    score: float
    sampled: int
    repaired: int


class IntervalDuration(TypedDict):
    """Healing interval durations: ``counts[i]`` intervals fell in bucket i (the buckets of
    ``LoadLatency``); ``sum_nanos`` is the total time."""

    counts: list[int]
    sum_nanos: int


class HealingStats(TypedDict):
    """What ``Cache.healing_stats()`` returns: the healer's totals."""

    total_sampled: int
    total_repaired: int
    avg_score: float
    source_failures: int
    last_interval_ms: float
    total_drift: int
    interval_duration: IntervalDuration


class DriftEvent(TypedDict):
    """One drift found: the cache held something else than the source. Digests are 8 hex digits
    of the value's content (``"absent"`` for no value); ``at_ms`` is on the cache's monotonic clock."""

    key: str
    prefix: str
    at_ms: int
    old_digest: str
    new_digest: str
    repaired: bool


class HealingConfig(TypedDict):
    """``Cache.healing_config()``: the healing settings under ``set_healing``'s keywords
    (durations in seconds)."""

    enabled: bool
    sample_rate: float
    verify_interval: float
    auto_repair: bool
    score_window: int
    source_timeout: float
    source_concurrency: int
    max_prefixes: int
    max_drift_events: int
    max_samples: int
    fleet_verify: bool
    fleet_verify_lease: float
    fleet_verify_scan_budget: int


__all__ = [
    "Cache",
    "ManualClock",
    "WriteBehind",
    "prometheus_join",
    "Fetched",
    "Status",
    "NOT_FOUND",
    "NotFoundType",
    "CacheInfo",
    "CachedFunction",
    "Stats",
    "LoadLatency",
    "IntervalReport",
    "WarmReport",
    "PrefixScore",
    "HealingStats",
    "IntervalDuration",
    "DriftEvent",
    "HealingConfig",
    *_errors.__all__,
    "InvalidKeyType",
    "__version__",
]
