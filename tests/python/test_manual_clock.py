"""The test clock moved by hand: at most 100 years a call; beyond, InvalidConfig with the clock
unmoved (never a Rust panic surfacing as ``PanicException``)."""

from __future__ import annotations

import math

import pytest

import healcache

CENTURY = 100 * 365 * 24 * 3600.0


def test_advance_takes_at_most_100_years_a_call_and_refuses_more_moving_nothing() -> None:
    """P5."""
    clock = healcache.ManualClock()
    start = clock()
    for bad in [CENTURY * 1.000001, 1e300, 2**64, math.inf, math.nan, -1]:
        with pytest.raises(healcache.InvalidConfig) as e:
            clock.advance(bad)
        assert e.value.field == "seconds", bad
        assert clock() == start, bad
    cache = healcache.Cache(clock=clock, ttl=1)
    cache.set("k", 1)
    clock.advance(CENTURY)
    assert clock() == pytest.approx(start + CENTURY)
    assert cache.get("k") is None, "a century later the entry has expired"
