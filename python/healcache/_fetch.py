"""``Cache.fetch``'s answer and the ``NOT_FOUND`` sentinel a loader returns for a missing key."""

from __future__ import annotations

import enum
import types
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
    Literal["fleet-coalesced"],
    Literal["fenced-out"],
    Literal["revalidated"],
]
"""What a ``fetch`` did: the core's ``Status::as_str()``."""


class NotFoundType(enum.Enum):
    """The type of ``NOT_FOUND``, its only value, for annotations:
    ``async def load_user() -> User | NotFoundType``."""

    NOT_FOUND = "NOT_FOUND"

    def __repr__(self) -> str:
        return "healcache.NOT_FOUND"


NOT_FOUND = NotFoundType.NOT_FOUND
"""Returned by a loader: the key does not exist at the source (cached for ``negative_ttl``)."""


class Fetched(NamedTuple):
    """``value, status = await cache.fetch(key, loader)``: the value (``None`` when not found)
    and what the call did (a ``Status`` string). Generic for type checkers: ``Fetched[User]``."""

    value: Any
    status: Status


Fetched.__module__ = "healcache"
# `Fetched[User]` in annotations evaluated at runtime (a generic NamedTuple needs Python 3.11).
setattr(Fetched, "__class_getitem__", classmethod(types.GenericAlias))

__all__ = ["NOT_FOUND", "NotFoundType", "Fetched", "Status"]
