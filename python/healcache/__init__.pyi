"""Type stubs of healcache (checked against the module by mypy.stubtest in tests/python)."""

from datetime import timedelta
from typing import (
    Any,
    Awaitable,
    Callable,
    Generic,
    Iterator,
    Literal,
    Mapping,
    NamedTuple,
    Optional,
    Protocol,
    Sequence,
    TypedDict,
    Union,
    final,
    overload,
)

from typing_extensions import ParamSpec, TypeVar

from healcache._fetch import NOT_FOUND as NOT_FOUND
from healcache._fetch import NotFoundType as NotFoundType
from healcache._fetch import Status as Status

__version__: str

# What a cache holds; a plain `Cache()` holds anything (`Cache[User]` narrows it).
_V = TypeVar("_V", default=Any)
# What a loader returns: a call's result has the loader's type.
_T = TypeVar("_T")
_D = TypeVar("_D")
_P = ParamSpec("_P")
_R = TypeVar("_R", covariant=True)
_Seconds = Union[float, timedelta]

_FV = TypeVar("_FV", default=Any)

class Fetched(NamedTuple, Generic[_FV]):
    """``value, status = await cache.fetch(key, loader)``: the value (``None`` when not found)
    and what the call did (a ``Status`` string)."""

    value: Optional[_FV]
    status: Status

class CacheInfo(NamedTuple):
    """``cache_info()`` of a decorated function, as ``functools.lru_cache`` gives it: the
    counters of the cache the function stores in (shared with its other users)."""

    hits: int
    misses: int
    maxsize: int
    currsize: int

class CachedFunction(Protocol[_P, _R]):
    """What ``@cache.cached`` returns: the function itself plus ``cache``, ``cache_info()``
    and ``cache_clear()``."""

    cache: Cache[Any]

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...

_Loader = Callable[[], Awaitable[Union[_T, NotFoundType]]]

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
    healing: HealingStats


class WarmReport(TypedDict):
    """What ``Cache.warm`` did."""

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

def prometheus_join(texts: Sequence[str], /) -> str:
    """Joins the Prometheus expositions of several caches (each ``prometheus(name)``'s text) into
    one that strict parsers accept: each family's ``HELP`` and ``TYPE`` lines once, then all its
    samples (concatenated texts repeat them). Raises ``InvalidConfig`` (``field`` ``"texts"``) when
    two texts hold the same series: two caches given the same name."""

@final
class ManualClock:
    """A clock moved only by hand, for deterministic tests: ``Cache(clock=clock)`` reads its time
    from it. ``clock()`` is its time in seconds (as ``time.monotonic()``), so the same object is a
    ``timer=`` for cachetools. Load timeouts still sleep on the host's timer (wall time)."""

    def __new__(cls) -> ManualClock: ...
    def advance(self, seconds: _Seconds, /) -> None:
        """Moves the clock forward by ``seconds`` (a number or a ``timedelta``, not negative)."""
    def __call__(self, *args: Any, **kwargs: Any) -> float:
        """The clock's time in seconds (it starts near 0); takes no argument."""

@final
class Cache(Generic[_V]):
    """A bounded, concurrent in-memory cache from ``str`` keys to Python objects.

    Every argument is optional and keyword-only; durations are seconds (a ``float``) or a
    ``datetime.timedelta``. Invalid values raise
    ``InvalidConfig`` (a ``ValueError``) naming the argument.

    - ``max_entries``: most entries (default 10,000).
    - ``max_bytes``: most total weight in bytes, key lengths included (default: no byte bound).
    - ``ttl``: default time-to-live of entries in seconds (default: no expiry).
    - ``max_key_len``: longest key in UTF-8 bytes (default 4,096).
    - ``max_entry_bytes``: heaviest single entry (default: ``max_bytes``, else 64 MiB).
    - ``max_in_flight``: most keys loading at once (default 10,000).
    - ``load_timeout``: seconds a load may take before every waiter gets ``LoadTimeout`` (default: none).
    - ``shards``: lock shards, a power of two up to 256 (default: from ``max_entries``).
    - ``seed``: seed of the eviction sampler (default: random).
    - ``weigher``: ``weigher(value) -> int`` bytes of a value (default, when a byte bound is
      set: ``len()`` of str/bytes/bytearray, ``sys.getsizeof`` otherwise).

    Stampede protection (``fetch`` reports which layer answered; refreshes run in the
    background on the event loop of the call that started them):

    - ``grace``: seconds after the TTL during which a stale value may still be served (default: none).
    - ``stale_while_revalidate``: within ``grace``, serve the stale value at once and refresh it
      in the background (needs ``grace``; default False).
    - ``load_soft_timeout``: seconds after which a load with a stale value to fall back on
      returns it and finishes in the background (below ``load_timeout``; default: none).
    - ``xfetch``: XFetch probabilistic early refresh of hot keys (default False);
      ``xfetch_beta``: above 1 refreshes earlier (default 1.0).
    - ``refresh_after``: reads of a value older than this many seconds refresh it in the
      background (default: none).
    - ``ttl_jitter``: each TTL is stretched by a random fraction in ``[0, ttl_jitter)`` (0 to 1; default 0).
    - ``negative_ttl``: seconds a loader's ``NOT_FOUND`` answer is cached (default: not cached).
    - ``max_negative_share``: largest share of ``max_entries`` for cached ``NOT_FOUND`` answers (default 0.1).
    - ``max_negative_ttl``: longest ``negative_ttl`` accepted, here and per call, in seconds (default 60).

    Shared tier (an L2 on Redis that every process of a fleet reads, whatever its language):

    - ``redis``: ``"redis://[user:password@]host:port[/db]"`` (default: none, no shared tier).
      Values cross as MessagePack: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``,
      ``list``/``tuple`` (read back as ``list``) and ``dict`` with ``str`` keys; anything else
      raises ``ValueNotEncodable``. Never pickle.
    - ``l2_prefix``: first part of every Redis key (default ``"hc1"``).
    - ``l2_timeout``: deadline of each Redis operation in seconds (default 0.1); a breaker skips
      Redis while it is unhealthy, and the local cache and loaders serve.
    - ``l2_recovery_max``: invalidations kept while Redis is away, replayed when it returns (default 10,000).
    - ``l2_compress_min_bytes``: payloads at least this long are lz4-compressed (default 1,024).
    - ``l2_tombstone_ttl``: seconds a delete's tombstone fences out older rebuilds (default 10).
    - ``fleet_lock``: which loads take the fleet rebuild lock, so one instance of the fleet
      rebuilds a key: ``"refresh"`` (default: background refreshes try it and skip when another
      instance refreshes), ``"all"`` (misses too; they wait for the holder's value, status
      ``"fleet-coalesced"``) or ``"off"``. A holder that loses its lease is fenced out
      (``"fenced-out"``): a newer value always wins.
    - ``fleet_lock_lease``: seconds a lock lives without renewal (default 5); renewed every third
      of it while the loader runs, for ``fleet_lock_max_hold`` seconds at most (default 30).
    - ``allow_degraded``: ``ready()`` stays True while the shared tier is unreachable (L1 and the
      loader serve; default False).

    Self-healing (``register_source`` a source of truth per key prefix; every interval a sample of
    keys is checked against it, drift is repaired and each prefix scored; see ``verify_now``):

    - ``healing_enabled``: run intervals in the background (default False); a daemon thread that
      stops on ``close()``, when the cache is garbage collected, and at interpreter exit.
    - ``healing_sample_rate``: share of the live keys sampled per interval, 0 to 1 (default 0.01).
    - ``healing_verify_interval``: seconds between intervals (default 5).
    - ``healing_auto_repair``: write the source's value over drift (default True); else only report.
    - ``healing_score_window``: samples per prefix in the rolling score (default 1,000).
    - ``healing_source_timeout``: seconds a source may take per key (default 2); later answers are
      source failures.
    - ``healing_source_concurrency``: most keys asked of one source at once (default 16).
    - ``healing_max_prefixes``: most registered prefixes (default 1,024).
    - ``healing_max_drift_events``: drift events kept for ``drift_events()`` (default 1,000).
    - ``healing_max_samples``: most keys sampled in one interval (default 100,000).
    - ``healing_fleet_verify``: with ``redis=``, L2 is verified once per fleet, by the instance
      holding a renewable lease per prefix (default True); off, each instance verifies its own L1.
    - ``healing_fleet_verify_lease``: seconds a fleet verifier's lease lives without renewal, at
      least 0.001 (default 5); a verifier that dies is replaced about this long after.
    - ``healing_fleet_verify_scan_budget``: keys of L2 a fleet verifier walks per interval and
      prefix, 1 to 10,000,000 (default 10,000).
    - ``healing_comparator``: ``comparator(cached, fresh) -> bool``, True when consistent (default
      ``cached == fresh``: bytes compare byte for byte, parsed JSON structurally).

    ``Cache[User]`` is a cache of ``User`` values for type checkers (``get`` returns
    ``User | None``); a plain ``Cache()`` holds anything. A cache cannot be pickled or copied
    into another process (``TypeError``).

    Keys are ``str``: another type raises ``InvalidKeyType``, an ``InvalidKey`` that is also a
    ``TypeError`` (``key in cache`` answers False, as for a dict); a ``str`` with no UTF-8 form (a
    lone surrogate) raises ``InvalidKey``. Where a
    list of ``str`` is asked for (``tags``, the keys of ``get_many``), a ``str`` itself raises
    ``TypeError``. A whole-number argument out of its range, and a ``bool`` given where a number
    is expected, raise ``InvalidConfig`` naming it; an argument of another wrong type raises a
    ``TypeError`` naming it. Nothing changes in the cache on any of these.

    Tests: ``clock``, a ``ManualClock``, is the time TTLs, grace windows, refresh-ahead and XFetch
    read (default: the host's monotonic clock); with ``seed`` every random draw repeats.
    """

    def __new__(
        cls,
        *,
        max_entries: Optional[float] = None,
        max_bytes: Optional[float] = None,
        ttl: Optional[_Seconds] = None,
        max_key_len: Optional[float] = None,
        max_entry_bytes: Optional[float] = None,
        max_in_flight: Optional[float] = None,
        load_timeout: Optional[_Seconds] = None,
        shards: Optional[float] = None,
        seed: Optional[int] = None,
        weigher: Optional[Callable[[Any], int]] = None,
        grace: Optional[_Seconds] = None,
        stale_while_revalidate: Optional[bool] = None,
        load_soft_timeout: Optional[_Seconds] = None,
        xfetch: Optional[bool] = None,
        xfetch_beta: Optional[float] = None,
        refresh_after: Optional[_Seconds] = None,
        ttl_jitter: Optional[float] = None,
        negative_ttl: Optional[_Seconds] = None,
        max_negative_share: Optional[float] = None,
        max_negative_ttl: Optional[_Seconds] = None,
        l2_timeout: Optional[_Seconds] = None,
        l2_recovery_max: Optional[float] = None,
        l2_compress_min_bytes: Optional[float] = None,
        l2_tombstone_ttl: Optional[_Seconds] = None,
        fleet_lock_lease: Optional[_Seconds] = None,
        fleet_lock_max_hold: Optional[_Seconds] = None,
        allow_degraded: Optional[bool] = None,
        redis: Optional[str] = None,
        l2_prefix: Optional[str] = None,
        fleet_lock: Optional[Literal["off", "refresh", "all"]] = None,
        healing_enabled: Optional[bool] = None,
        healing_sample_rate: Optional[float] = None,
        healing_verify_interval: Optional[_Seconds] = None,
        healing_auto_repair: Optional[bool] = None,
        healing_score_window: Optional[float] = None,
        healing_source_timeout: Optional[_Seconds] = None,
        healing_source_concurrency: Optional[float] = None,
        healing_max_prefixes: Optional[float] = None,
        healing_max_drift_events: Optional[float] = None,
        healing_max_samples: Optional[float] = None,
        healing_fleet_verify: Optional[bool] = None,
        healing_fleet_verify_lease: Optional[_Seconds] = None,
        healing_fleet_verify_scan_budget: Optional[float] = None,
        healing_comparator: Optional[Callable[[Any, Any], bool]] = None,
        clock: Optional[ManualClock] = None,
    ) -> Cache[_V]: ...
    @overload
    def get(self, key: str, /) -> Optional[_V]: ...
    @overload
    def get(self, key: str, default: _D, /) -> Union[_V, _D]: ...
    @overload
    def peek(self, key: str, /) -> Optional[_V]:
        """The live value of ``key``, else ``default`` (``None``), counting no read: the hit and
        miss counters and what is evicted next stay as they were."""
    @overload
    def peek(self, key: str, default: _D, /) -> Union[_V, _D]: ...
    def keys(self) -> list[str]:
        """Every key holding a value, in no particular order: a snapshot, so writing while
        iterating over it is safe. ``for key in cache`` iterates over it."""
    def values(self) -> list[_V]:
        """Every fresh value, in no particular order (a snapshot, as ``keys()``); counts no read."""
    def items(self) -> list[tuple[str, _V]]:
        """Every ``(key, value)`` holding a fresh value (a snapshot, as ``keys()``); counts no read."""
    @overload
    def pop(self, key: str, /) -> _V:
        """Removes ``key`` and returns its fresh value, as ``dict.pop``: ``KeyError`` when it has none."""
    @overload
    def pop(self, key: str, default: _D, /) -> Union[_V, _D]:
        """Removes ``key`` and returns its fresh value, or ``default`` when it has none."""
    def __iter__(self) -> Iterator[str]: ...
    @property
    def max_entries(self) -> int:
        """The entry bound the cache was built with."""
    def __getitem__(self, key: str, /) -> _V: ...
    def set(
        self,
        key: str,
        value: _V,
        /,
        *,
        ttl: Optional[_Seconds] = None,
        if_version: Optional[int] = None,
        tags: Optional[Sequence[str]] = None,
    ) -> int:
        """Stores ``value``; returns the entry's new version. ``ttl`` in seconds (``None``: the
        cache's TTL, ``math.inf``: never expires). ``if_version``: write only if the live version
        is this one (0: only if the key has no entry; a cached "not found" is one, with its own
        version), else raise ``VersionMismatch``. ``tags``: up to 16 names
        of 1 to 128 bytes, for ``invalidate_tag``."""
    def invalidate_tag(self, tag: str, /, *, hard: bool = False) -> int:
        """Invalidates every entry written with ``tag``: made stale (a fallback within its grace
        window; one that never expires, for ``grace`` from now) or, ``hard``, removed, stale ones
        too; with a shared tier, in every instance and in L2 (raises ``L2Unavailable`` when L2
        cannot be reached). Returns how many fresh entries of this process it invalidated (a
        stale one that ``hard`` removes is not counted)."""
    def __setitem__(self, key: str, value: _V, /) -> None: ...
    def delete(self, key: str, /, *, if_version: Optional[int] = None) -> bool:
        """Removes ``key``; returns whether a live entry was removed. ``if_version``: only if the
        live version is this one (0: only if absent, which removes nothing), else raise
        ``VersionMismatch``. A load of ``key`` under way is not cached after it."""
    def __delitem__(self, key: str, /) -> None: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __len__(self) -> int:
        """The entries held (``stats()["entries"]``): stale values within their grace window,
        cached "not found" answers and expired entries not yet removed included."""
    def version(self, key: str, /) -> int:
        """The version of ``key``'s live entry (a cached "not found" included), 0 if it has none."""
    def get_entry(self, key: str, /) -> Optional[tuple[_V, int, Optional[float]]]:
        """``(value, version, seconds_left)`` of ``key``'s live entry, or ``None``."""
    def clear(self) -> None: ...
    def purge_expired(self) -> int: ...
    def sample_keys(self, k: int, /) -> list[str]: ...
    def stats(self) -> Stats: ...
    def prometheus(self, name: str, /) -> str:
        """Every counter in the Prometheus text format, labelled ``cache="<name>"``, healing
        metrics included."""
    @overload
    def get_or_load(
        self,
        key: str,
        loader: _Loader[_T],
        /,
        *,
        ttl: Optional[_Seconds] = None,
        negative_ttl: Optional[_Seconds] = None,
        stale_while_revalidate: Optional[bool] = None,
        xfetch: Optional[bool] = None,
        soft_timeout: Optional[_Seconds] = None,
        tags: Optional[Sequence[str]] = None,
    ) -> Awaitable[_T]:
        """``await cache.get_or_load(key, loader)``: the live value of ``key``, or the result of
        one ``loader()`` call shared by every concurrent caller. ``loader`` may be an async
        function, a function returning an awaitable, or a plain function (called directly).
        Takes ``fetch``'s per-call options with the same meaning: ``ttl`` (seconds the loaded
        value lives; ``None``: the cache's TTL), ``negative_ttl``, ``soft_timeout``,
        ``stale_while_revalidate``, ``xfetch``, ``tags``. A ``NOT_FOUND`` answer, loaded or
        cached (see ``negative_ttl``), raises ``NotFound``. The result has the loader's type."""
    @overload
    def get_or_load(
        self,
        key: str,
        loader: Callable[[], Union[_T, NotFoundType]],
        /,
        *,
        ttl: Optional[_Seconds] = None,
        negative_ttl: Optional[_Seconds] = None,
        stale_while_revalidate: Optional[bool] = None,
        xfetch: Optional[bool] = None,
        soft_timeout: Optional[_Seconds] = None,
        tags: Optional[Sequence[str]] = None,
    ) -> Awaitable[_T]: ...
    @overload
    def fetch(
        self,
        key: str,
        loader: _Loader[_T],
        /,
        *,
        ttl: Optional[_Seconds] = None,
        negative_ttl: Optional[_Seconds] = None,
        stale_while_revalidate: Optional[bool] = None,
        xfetch: Optional[bool] = None,
        soft_timeout: Optional[_Seconds] = None,
        tags: Optional[Sequence[str]] = None,
    ) -> Awaitable[Fetched[_T]]:
        """``value, status = await cache.fetch(key, loader)``: like ``get_or_load`` with every
        stampede layer of the cache, and the ``Status`` of what happened. A loader returning
        ``NOT_FOUND`` gives ``value`` None (``"negative-loaded"``, then ``"negative-hit"`` while
        cached). Per-call overrides: ``ttl``, ``negative_ttl``, ``soft_timeout`` (seconds),
        ``stale_while_revalidate``, ``xfetch``. ``tags``: the loaded value's tags (as ``set``'s),
        recorded from before the load."""
    @overload
    def fetch(
        self,
        key: str,
        loader: Callable[[], Union[_T, NotFoundType]],
        /,
        *,
        ttl: Optional[_Seconds] = None,
        negative_ttl: Optional[_Seconds] = None,
        stale_while_revalidate: Optional[bool] = None,
        xfetch: Optional[bool] = None,
        soft_timeout: Optional[_Seconds] = None,
        tags: Optional[Sequence[str]] = None,
    ) -> Awaitable[Fetched[_T]]: ...
    def write_through(
        self,
        key: str,
        value: _V,
        writer: Callable[[str, _V], Any],
        /,
        *,
        ttl: Optional[_Seconds] = None,
        invalidate: bool = False,
    ) -> Awaitable[int]:
        """``await cache.write_through(key, value, writer)``: ``writer(key, value)`` (sync or
        async) first, then the cache (L1, and with a shared tier L2 and the bus); the new
        version. A writer's exception is raised as it is and the cache is left as it was.
        ``invalidate=True`` removes the key instead of caching the value."""
    def get_many(
        self,
        keys: Sequence[str],
        loader: Callable[[list[str]], Union[Mapping[str, _V], Awaitable[Mapping[str, _V]]]],
        /,
        *,
        ttl: Optional[_Seconds] = None,
    ) -> Awaitable[dict[str, _V]]:
        """``await cache.get_many(keys, loader)``: the keys found; the keys no layer answered
        are loaded by one ``loader(keys)`` call returning the values it found."""
    def warm(
        self,
        keys: Union[Sequence[str], str],
        loader: Callable[[list[str]], Union[Mapping[str, _V], Awaitable[Mapping[str, _V]]]],
        /,
        *,
        concurrency: int = 8,
        batch: Optional[int] = None,
        min_share: float = 1.0,
        max_keys: int = 100_000,
    ) -> Awaitable[WarmReport]:
        """``await cache.warm(keys, loader)``: loads ``keys`` in batches before traffic (``batch``
        keys per loader call: 100 by default, or ``max_in_flight`` when lower); given a ``str``,
        the keys the shared tier holds that match it as a glob (``max_keys`` at most)."""
    def ready(self) -> bool:
        """For a readiness probe: no warm-up running, enough keys answered, L2 answering (unless
        the ``allow_degraded`` setting)."""
    def warm_progress(self) -> tuple[int, int, int]:
        """``(answered, failed, total)`` keys of the warm-ups so far."""
    def get_or_load_sync(
        self,
        key: str,
        loader: Callable[[], Union[_T, NotFoundType]],
        /,
        *,
        ttl: Optional[_Seconds] = None,
        negative_ttl: Optional[_Seconds] = None,
        stale_while_revalidate: Optional[Literal[False]] = None,
        xfetch: Optional[Literal[False]] = None,
        soft_timeout: None = None,
        tags: None = None,
    ) -> _T:
        """The threaded twin of ``get_or_load``; waits with the GIL released. A ``NOT_FOUND``
        answer raises ``NotFound`` and is cached for ``negative_ttl`` (the call's, else the
        cache's), as ``get_or_load`` does. Of ``fetch``'s other options it honours ``ttl`` (and
        ``False`` for ``stale_while_revalidate`` and ``xfetch``): it loads on the calling thread,
        without background work or tags, so ``soft_timeout``, ``tags`` and ``True`` for the other
        two raise ``InvalidConfig`` naming the option (use ``await cache.get_or_load``)."""
    def register_source(
        self,
        prefix: str,
        source: Union[Callable[[str], Any], str],
        /,
        *,
        decode: Optional[Literal["bytes", "text", "json"]] = None,
        allow_private: Union[bool, Sequence[str], None] = None,
        max_body_bytes: Optional[int] = None,
    ) -> None:
        """Registers (or replaces) the source of truth of keys starting with ``prefix``; the
        longest registered prefix of a key wins. ``source(key)`` (the whole key, prefix
        included) returns the value or ``NOT_FOUND`` (the entry is then removed); raising is a
        source failure (skipped, never drift), raising ``InvalidKey`` skips the key without a
        failure.

        - A sync callable runs on a pool of healcache worker threads.
        - An async callable (or one returning an awaitable) runs on the event loop running when
          it was registered while that loop runs, else on healcache's own event loop thread.
        - A ``str`` is a URL template such as ``"https://api.internal/users/{key}"``: a GET over
          HTTP(S), ``{key}`` percent-encoded as one path segment or query value. A 2xx answer
          is the value: the body as ``bytes``, or as ``str`` or parsed JSON with ``decode="text"``
          / ``"json"``; 404/410 is ``NOT_FOUND``; anything else (redirects included) a failure.
          A template breaking the rules raises ``InvalidConfig``; keys such as ``".."`` are
          skipped. The request timeout is ``healing_source_timeout`` at registration.
          Loopback, private, link-local and other non-public destinations are refused (a
          source failure) unless ``allow_private`` is ``True`` or lists the template's host.
          A body longer than ``max_body_bytes`` (an int from 1, default 1 MiB) is a failure,
          read no further; ``max_body_bytes=0`` raises ``InvalidConfig``.
        """
    def unregister_source(self, prefix: str, /) -> bool:
        """Removes a prefix's source and its score; returns whether it was registered."""
    def verify_now(self) -> Awaitable[IntervalReport]:
        """``await cache.verify_now()``: one healing interval now (sample, verify, repair, score);
        concurrent intervals do not overlap (the later one reports ``overlapped``)."""
    def verify_now_sync(self) -> IntervalReport:
        """One healing interval on this thread, waiting with the GIL released. Raises
        ``RuntimeError`` inside a running event loop (it would block it; async sources of that
        loop could not run): ``await verify_now()`` there."""
    def score(self, prefix: str, /) -> Optional[PrefixScore]:
        """The score report of one registered prefix, else ``None``."""
    def scores(self) -> list[PrefixScore]:
        """The score reports of every registered prefix, sorted by prefix."""
    def healing_stats(self) -> HealingStats:
        """The healer's totals."""
    def drift_events(self) -> list[DriftEvent]:
        """The most recent drift events, newest last (at most ``healing.max_drift_events``)."""
    def set_healing(
        self,
        *,
        enabled: Optional[bool] = None,
        sample_rate: Optional[float] = None,
        verify_interval: Optional[_Seconds] = None,
        auto_repair: Optional[bool] = None,
        score_window: Optional[float] = None,
        source_timeout: Optional[_Seconds] = None,
        source_concurrency: Optional[float] = None,
        max_prefixes: Optional[float] = None,
        max_drift_events: Optional[float] = None,
        max_samples: Optional[float] = None,
        fleet_verify: Optional[bool] = None,
        fleet_verify_lease: Optional[_Seconds] = None,
        fleet_verify_scan_budget: Optional[float] = None,
    ) -> None:
        """Changes the given healing settings (the ``healing_*`` options of ``Cache``), all
        validated first: on ``InvalidConfig`` nothing changes. A new interval or timeout applies
        from the next interval."""
    def healing_config(self) -> HealingConfig:
        """The healing settings under ``set_healing``'s keywords."""
    def config_set(self, name: str, value: Union[str, bool, int, float, timedelta], /) -> None:
        """Sets a healing setting by its name, the keyword of ``set_healing`` (``sample_rate``,
        ``verify_interval``: durations in seconds), or its former name (``healing.sample_rate``,
        ``healing.verify_interval_ms``: durations in milliseconds). An unknown name or a bad value
        raises ``InvalidConfig`` naming the setting as asked, and changes nothing."""
    def config_get(self, name: str, /) -> str:
        """A setting by its name, as text, in the unit ``config_set`` takes under that name."""
    def close(self, timeout: Optional[_Seconds] = None) -> int:
        """Ends the background healing for good and waits for its thread; with a shared tier,
        also waits (the GIL released) until the L2 writes under way, with the bus messages
        announcing them, are sent, for at most ``timeout`` seconds (``None``: 5; 0: none), then closes the Redis
        connections. Returns the writes still under way at the deadline (0 without a shared
        tier). The cache stays usable (``verify_now`` included), from L1 alone when it had a
        shared tier: later L2 reads, writes and deletes are skipped (``l2_skipped``).
        Afterwards ``healing_config()["enabled"]`` is False, and turning healing on again raises
        ``Closed``. At interpreter exit every cache still open is closed this way (2 s)."""
    def __enter__(self) -> Cache[_V]: ...
    def __exit__(self, *_exc: object) -> bool: ...
    def __aenter__(self) -> Awaitable[Cache[_V]]:
        """``async with Cache(...) as cache:``; leaving the block awaits ``close()`` without
        blocking the event loop."""
    def __aexit__(self, *_exc: object) -> Awaitable[bool]: ...
    @overload
    def cached(self, func: Callable[_P, _T], /) -> CachedFunction[_P, _T]: ...
    @overload
    def cached(
        self, func: None = None, /, *, key: Optional[Callable[..., str]] = None, ttl: Optional[_Seconds] = None
    ) -> Callable[[Callable[_P, _T]], CachedFunction[_P, _T]]: ...

class HealcacheError(Exception):
    code: str

class InvalidConfig(HealcacheError, ValueError):
    field: str
    reason: str

class KeyTooLong(HealcacheError, ValueError):
    len: int
    max: int

class ValueTooLarge(HealcacheError, ValueError):
    weight: int
    max: int

class VersionMismatch(HealcacheError):
    expected: int
    current: int

class LoaderError(HealcacheError): ...
class LoaderPanicked(HealcacheError): ...

class LoadTimeout(HealcacheError, TimeoutError):
    after_ms: int

class RecursiveLoad(HealcacheError, RuntimeError): ...

class TooManyLoads(HealcacheError):
    max: int

class InvalidKey(HealcacheError, ValueError):
    reason: str

class InvalidKeyType(InvalidKey, TypeError):
    """``InvalidKey`` for a key that is not a ``str`` (also a ``TypeError``)."""

class NotFound(HealcacheError, LookupError): ...
class Cancelled(HealcacheError): ...

class ValueNotEncodable(HealcacheError, TypeError):
    reason: str

class L2Unavailable(HealcacheError, ConnectionError):
    reason: str

class QueueFull(HealcacheError):
    max: int

class Closed(HealcacheError): ...

class _WriteBehindFailure(TypedDict):
    """An item ``WriteBehind`` gave up: its operation, the writer calls it took part in, the last error."""

    op: Literal["put", "delete"]
    key: str
    value: Any
    attempts: int
    error: str

class _WriteBehindStats(TypedDict):
    """What ``WriteBehind.stats()`` returns."""

    queue_depth: int
    queue_capacity: int
    lag: float
    batches: int
    flushed_items: int
    failures: int
    failed: int
    superseded: int
    failed_dropped: int
    batch_sizes: list[int]
    batch_size_buckets: list[int]
    closed: bool

@final
class WriteBehind:
    """Write-behind in front of ``writer`` (the source of truth): ``set`` / ``delete`` change the
    cache at once (L1, and L2 with the bus when it has a shared tier) and queue the change; the
    writer gets batches of ``("put", key, value)`` / ``("delete", key, None)`` tuples, at most
    ``batch`` at a time (default 100, or ``max_queue`` when lower), once a batch is full or
    ``flush_interval`` seconds after its oldest item. Durations are seconds or a ``timedelta``.

    The queue coalesces per key (last wins) and holds at most ``max_queue`` items; when full,
    ``on_full="reject"`` raises ``QueueFull`` at once and ``("block", seconds)`` waits up to that
    long first; a refused write changes nothing. A failed batch is retried with jittered
    exponential backoff (``retry_min`` to ``retry_max`` seconds) up to ``attempts`` calls; items
    given up are counted and kept (``failed()``). A sync writer runs on a daemon thread, an async
    one on the event loop running at construction. Limits: a crash loses the queue; there is no
    ordering across processes.
    """

    def __new__(
        cls,
        cache: Cache[Any],
        writer: Callable[[list[tuple[str, str, Any]]], Any],
        *,
        max_queue: int = 10_000,
        batch: Optional[int] = None,
        flush_interval: _Seconds = 0.1,
        retry_min: _Seconds = 0.1,
        retry_max: _Seconds = 5.0,
        attempts: int = 10,
        on_full: Union[Literal["reject"], tuple[Literal["block"], _Seconds], None] = None,
    ) -> WriteBehind: ...
    def set(self, key: str, value: Any, ttl: Optional[_Seconds] = None) -> int:
        """Writes the cache and queues the write; returns the entry's version. Raises ``QueueFull``
        or ``Closed`` (nothing written)."""
    def delete(self, key: str) -> bool:
        """Removes the key from the cache and queues its deletion; whether it was there."""
    def close(self, timeout: _Seconds = 5.0) -> int:
        """Stops accepting, flushes for at most ``timeout`` seconds; returns the items left
        unflushed (kept in ``failed()``). On the thread of the event loop an async writer runs
        on it raises ``RuntimeError`` (the writer could not run while it waits): use
        ``aclose`` there."""
    async def aclose(self, timeout: _Seconds = 5.0) -> int:
        """``close`` on a worker thread (``asyncio.to_thread``), so the event loop and an async
        writer on it run meanwhile."""
    @property
    def closed(self) -> bool: ...
    def failed(self, take: bool = False) -> list[_WriteBehindFailure]:
        """Items given up, oldest first (at most ``max_queue``); ``take=True`` removes them."""
    def stats(self) -> _WriteBehindStats: ...
    def prometheus(self, name: str) -> str:
        """The ``healcache_write_behind_*`` metrics in the Prometheus text format."""

__all__ = [
    "Cache",
    "ManualClock",
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
    "HealcacheError",
    "InvalidConfig",
    "KeyTooLong",
    "ValueTooLarge",
    "VersionMismatch",
    "LoaderError",
    "LoaderPanicked",
    "LoadTimeout",
    "RecursiveLoad",
    "TooManyLoads",
    "InvalidKey",
    "InvalidKeyType",
    "NotFound",
    "Cancelled",
    "ValueNotEncodable",
    "L2Unavailable",
    "QueueFull",
    "Closed",
    "WriteBehind",
    "prometheus_join",
    "__version__",
]
