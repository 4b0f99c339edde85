"""The exception tree of healcache: one class per core error code (``Error::code()``)."""

from __future__ import annotations


class HealcacheError(Exception):
    """Base class of every error healcache raises. ``code`` is the core's stable name of the error."""

    code: str = "HealcacheError"


class InvalidConfig(HealcacheError, ValueError):
    """A configuration value is out of range; ``field`` names it (Python names: ``ttl`` in seconds)."""

    code = "InvalidConfig"
    field: str = ""
    reason: str = ""


class KeyTooLong(HealcacheError, ValueError):
    """The key is longer than ``max_key_len`` bytes (UTF-8)."""

    code = "KeyTooLong"
    len: int = 0
    max: int = 0


class ValueTooLarge(HealcacheError, ValueError):
    """The entry (key length + value weight) is heavier than ``max_entry_bytes``."""

    code = "ValueTooLarge"
    weight: int = 0
    max: int = 0


class VersionMismatch(HealcacheError):
    """A compare-and-set found another version than the one expected (0 means absent)."""

    code = "VersionMismatch"
    expected: int = 0
    current: int = 0


class LoaderError(HealcacheError):
    """A loader failed without a Python exception of its own (a Python loader's exception is
    re-raised as it was, never wrapped in this)."""

    code = "LoaderError"


class LoaderPanicked(HealcacheError):
    """The loader panicked inside the engine; the key is not stuck and the next call loads again."""

    code = "LoaderPanicked"


class LoadTimeout(HealcacheError, TimeoutError):
    """The load did not finish within ``load_timeout`` seconds."""

    code = "LoadTimeout"
    after_ms: int = 0


class RecursiveLoad(HealcacheError, RuntimeError):
    """A loader asked for the very key it is loading, which could never finish."""

    code = "RecursiveLoad"


class TooManyLoads(HealcacheError):
    """More distinct keys are loading at once than ``max_in_flight`` allows."""

    code = "TooManyLoads"
    max: int = 0


class InvalidKey(HealcacheError, ValueError):
    """The key cannot be used where it was asked for (e.g. as a URL segment), or is no valid
    Unicode text (a ``str`` holding a lone surrogate has no UTF-8 form); ``reason`` says why (the
    key itself is never part of the message)."""

    code = "InvalidKey"
    reason: str = ""


class InvalidKeyType(InvalidKey, TypeError):
    """``InvalidKey`` for a key that is not a ``str``: also a ``TypeError``, as a wrong type is in
    Python, so ``except TypeError`` still catches it. Its ``code`` is ``"InvalidKey"``."""


class NotFound(HealcacheError, LookupError):
    """The loader answered ``NOT_FOUND`` for the key, or a cached "not found" answer did."""

    code = "NotFound"


class Cancelled(HealcacheError):
    """The caller stopped waiting (others waiting for the same load are unaffected), or an async
    loader's task was cancelled before it answered, as when its event loop stopped: every caller
    still waiting for it gets this."""

    code = "Cancelled"


class ValueNotEncodable(HealcacheError, TypeError):
    """The value cannot be written to the shared tier (Redis): only ``None``, ``bool``, ``int``
    (64-bit), ``float``, ``str``, ``bytes``, ``list``/``tuple`` and ``dict`` with ``str`` keys
    cross processes and languages. Nothing was written."""

    code = "ValueNotEncodable"
    reason: str = ""


class L2Unavailable(HealcacheError, ConnectionError):
    """The shared tier could not do what a call that needs it asked (unreachable, or its
    breaker open). Reads and writes never raise this: they fall back to the local cache."""

    code = "L2Unavailable"
    reason: str = ""


class QueueFull(HealcacheError):
    """A write-behind queue holds ``max_queue`` items (``on_full="reject"``, or still after the
    block timeout). Nothing was written, to the cache or the queue."""

    code = "QueueFull"
    max: int = 0


class Closed(HealcacheError):
    """The write-behind queue was closed. Nothing was written."""

    code = "Closed"


class _LoopWouldBlock(RuntimeError):
    """A blocking wait refused on a thread running an event loop, which it would block (another
    caller's load of the key may need that loop). Private: raised as the ``RuntimeError`` it is,
    and told apart from a function's own ``RuntimeError`` by ``@cache.cached``."""


__all__ = [
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
    "ValueNotEncodable",
    "L2Unavailable",
    "QueueFull",
    "Closed",
]

for _name in [*__all__, "InvalidKeyType"]:
    globals()[_name].__module__ = "healcache"
del _name
