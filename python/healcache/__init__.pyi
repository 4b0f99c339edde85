"""Type stubs of healcache (checked against the module by mypy.stubtest in tests/python)."""

from typing import Any, Awaitable, Callable, Optional, TypedDict, TypeVar, Union, final, overload

from healcache._fetch import NOT_FOUND as NOT_FOUND
from healcache._fetch import Fetched as Fetched
from healcache._fetch import Status as Status
from healcache._fetch import _NotFound

__version__: str

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])

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

@final
class Cache:
    """A bounded, concurrent in-memory cache from ``str`` keys to Python objects.

    Every argument is optional and keyword-only; durations are seconds. Invalid values raise
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
    """

    def __new__(
        cls,
        *,
        max_entries: Optional[float] = None,
        max_bytes: Optional[float] = None,
        ttl: Optional[float] = None,
        max_key_len: Optional[float] = None,
        max_entry_bytes: Optional[float] = None,
        max_in_flight: Optional[float] = None,
        load_timeout: Optional[float] = None,
        shards: Optional[float] = None,
        seed: Optional[int] = None,
        weigher: Optional[Callable[[Any], int]] = None,
        grace: Optional[float] = None,
        stale_while_revalidate: Optional[bool] = None,
        load_soft_timeout: Optional[float] = None,
        xfetch: Optional[bool] = None,
        xfetch_beta: Optional[float] = None,
        refresh_after: Optional[float] = None,
        ttl_jitter: Optional[float] = None,
        negative_ttl: Optional[float] = None,
        max_negative_share: Optional[float] = None,
    ) -> "Cache": ...
    @overload
    def get(self, key: str, /) -> Any: ...
    @overload
    def get(self, key: str, default: Any, /) -> Any: ...
    def __getitem__(self, key: str, /) -> Any: ...
    def set(self, key: str, value: Any, /, *, ttl: Optional[float] = None, if_version: Optional[int] = None) -> int:
        """Stores ``value``; returns the entry's new version. ``ttl`` in seconds (``None``: the
        cache's TTL, ``math.inf``: never expires). ``if_version``: write only if the live version
        is this one (0: only if absent), else raise ``VersionMismatch``."""
    def __setitem__(self, key: str, value: Any, /) -> None: ...
    def delete(self, key: str, /, *, if_version: Optional[int] = None) -> bool:
        """Removes ``key``; returns whether a live entry was removed."""
    def __delitem__(self, key: str, /) -> None: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __len__(self) -> int: ...
    def version(self, key: str, /) -> int:
        """The version of ``key``'s live entry, 0 if it has none."""
    def get_entry(self, key: str, /) -> Optional[tuple[Any, int, Optional[float]]]:
        """``(value, version, seconds_left)`` of ``key``'s live entry, or ``None``."""
    def clear(self) -> None: ...
    def purge_expired(self) -> int: ...
    def sample_keys(self, k: int, /) -> list[str]: ...
    def stats(self) -> Stats: ...
    def prometheus(self, name: str, /) -> str:
        """Every counter in the Prometheus text format, labelled ``cache="<name>"``."""
    def get_or_load(
        self,
        key: str,
        loader: Callable[[], Union[Awaitable[Union[_T, _NotFound]], _T, _NotFound]],
        /,
        *,
        ttl: Optional[float] = None,
    ) -> Awaitable[_T]:
        """``await cache.get_or_load(key, loader)``: the live value of ``key``, or the result of
        one ``loader()`` call shared by every concurrent caller. ``loader`` may be an async
        function, a function returning an awaitable, or a plain function (called directly).
        ``ttl``: seconds the loaded value lives (``None``: the cache's TTL). A ``NOT_FOUND``
        answer, loaded or cached, raises ``NotFound``."""
    def fetch(
        self,
        key: str,
        loader: Callable[[], Union[Awaitable[Union[_T, _NotFound]], _T, _NotFound]],
        /,
        *,
        ttl: Optional[float] = None,
        negative_ttl: Optional[float] = None,
        stale_while_revalidate: Optional[bool] = None,
        xfetch: Optional[bool] = None,
        soft_timeout: Optional[float] = None,
    ) -> Awaitable[Fetched]:
        """``value, status = await cache.fetch(key, loader)``: like ``get_or_load`` with every
        stampede layer of the cache, and the ``Status`` of what happened. A loader returning
        ``NOT_FOUND`` gives ``value`` None (``"negative-loaded"``, then ``"negative-hit"`` while
        cached). Per-call overrides: ``ttl``, ``negative_ttl``, ``soft_timeout`` (seconds),
        ``stale_while_revalidate``, ``xfetch``."""
    def get_or_load_sync(
        self, key: str, loader: Callable[[], Union[_T, _NotFound]], /, *, ttl: Optional[float] = None
    ) -> _T:
        """The threaded twin of ``get_or_load``; waits with the GIL released. A ``NOT_FOUND``
        answer raises ``NotFound`` (cached ones too; this call does not cache it)."""
    @overload
    def cached(self, func: _F, /) -> _F: ...
    @overload
    def cached(
        self, func: None = None, /, *, key: Optional[Callable[..., str]] = None, ttl: Optional[float] = None
    ) -> Callable[[_F], _F]: ...

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

class NotFound(HealcacheError, LookupError): ...
class Cancelled(HealcacheError): ...

__all__ = [
    "Cache",
    "Fetched",
    "Status",
    "NOT_FOUND",
    "Stats",
    "LoadLatency",
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
    "NotFound",
    "Cancelled",
    "__version__",
]
