"""``Cache.fetch``'s answer and the ``NOT_FOUND`` sentinel a loader returns for a missing key."""

from __future__ import annotations

import enum
from typing import Any, Literal, NamedTuple, Union

# A union of one-value Literals rather than one Literal of many: the same type for checkers, and a
# `Union` at runtime, as mypy.stubtest expects of a union alias.
Status = Union[
    Literal["hit"],
    Literal["loaded"],
    Literal["coalesced"],
    Literal["stale"],
    Literal["stale-fail-safe"],
    Literal["stale-soft-timeout"],
    Literal["early-refresh"],
    Literal["refresh-ahead"],
    Literal["negative-hit"],
    Literal["negative-loaded"],
    Literal["l2-hit"],
    Literal["l2-skipped"],
]
"""What a ``fetch`` did: the core's ``Status::as_str()``."""


class _NotFound(enum.Enum):
    NOT_FOUND = "NOT_FOUND"

    def __repr__(self) -> str:
        return "healcache.NOT_FOUND"


NOT_FOUND = _NotFound.NOT_FOUND
"""Returned by a loader: the key does not exist at the source (cached for ``negative_ttl``)."""


class Fetched(NamedTuple):
    """``value, status = await cache.fetch(key, loader)``: the value (``None`` when not found)
    and what the call did (a ``Status`` string)."""

    value: Any
    status: Status


Fetched.__module__ = "healcache"

__all__ = ["NOT_FOUND", "Fetched", "Status"]
