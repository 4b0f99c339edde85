"""Self-healing repairs from Python: a repair keeps the entry's expiry (in L1 and, for the fleet
verifier, in L2), the drift history holds ``max_drift_events`` from the moment it is set, a write
while the source is asked makes the sample moot, ``healing_max_samples`` bounds a fleet verifier's
whole interval, and ``close()`` releases the verifier's leases.

The algorithms are the core's (core/tests/healing_repairs.rs, redis/tests/fleet_verify_repairs.rs);
these check that every one reaches Python. Time is a ``ManualClock``; waits are bounded polls.
"""

from __future__ import annotations

import math

import pytest

import healcache
from healcache import Cache
from rediskit import Resp, redis_available, redis_server, wait_for  # noqa: F401 (fixtures)

needs_redis = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")


def test_a_repair_keeps_the_entry_expiry() -> None:
    """P6: an entry set for 0.5 s stays a 0.5 s entry once repaired, one set with ``ttl=inf``
    never expires, and without a default TTL a repair does not make a short entry immortal."""
    clock = healcache.ManualClock()
    c = Cache(healing_sample_rate=1.0, ttl=60, clock=clock)
    c.set("s:short", "old", ttl=0.5)
    c.set("s:never", "old", ttl=math.inf)
    clock.advance(0.1)
    c.register_source("s:", lambda k: "new")
    assert c.verify_now_sync()["repaired"] == 2
    assert c.get_entry("s:short")[0] == "new"
    assert c.get_entry("s:short")[2] == pytest.approx(0.4)
    assert c.get_entry("s:never")[2] is None
    clock.advance(0.4)
    assert c.get("s:short") is None, "its 0.5 s are over"

    clock = healcache.ManualClock()
    c = Cache(healing_sample_rate=1.0, clock=clock)
    c.set("s:short", "old", ttl=0.5)
    c.register_source("s:", lambda k: "new")
    assert c.verify_now_sync()["repaired"] == 1
    clock.advance(0.5)
    assert c.get("s:short") is None, "no default TTL: still 0.5 s, not forever"


def test_lowering_max_drift_events_trims_the_history() -> None:
    """P5: at most ``max_drift_events`` events are returned at all times; 0 keeps none."""
    c = Cache(healing_sample_rate=1.0)
    c.register_source("u:", lambda k: "source")

    def drift_all() -> None:
        for i in range(20):
            c.set(f"u:{i}", "cached")
        assert c.verify_now_sync()["drift"] == 20

    drift_all()
    assert len(c.drift_events()) == 20
    c.config_set("max_drift_events", 5)
    assert len(c.drift_events()) == 5
    c.set_healing(max_drift_events=0)
    assert c.drift_events() == []
    drift_all()
    assert c.drift_events() == []
    assert c.healing_stats()["total_drift"] == 40


def test_a_write_while_the_source_is_asked_is_skipped_not_drift() -> None:
    """P7 and ``IntervalReport.skipped``: a key written or deleted while its source is asked is
    skipped: no drift, no event, the score is not lowered, and the write stays."""
    c = Cache(healing_sample_rate=1.0)
    c.set("u:1", "old")
    c.set("u:2", "old")

    def source(k: str) -> str:
        if k == "u:1":
            c.set("u:1", "user-write")
        else:
            c.delete("u:2")
        return "source"

    c.register_source("u:", source)
    r = c.verify_now_sync()
    assert (r["verified"], r["drift"], r["repaired"], r["skipped"]) == (0, 0, 0, 2), r
    assert (c.get("u:1"), c.get("u:2")) == ("user-write", None)
    assert c.drift_events() == []
    assert c.score("u:")["score"] == 1.0 and c.score("u:")["sampled"] == 0


def _lease_keys(server) -> list[bytes]:
    with Resp(server.port) as r:
        r.command("AUTH", *server.acl_user)
        cursor, found = b"0", []
        while True:
            cursor, keys = r.command("SCAN", cursor, "MATCH", "hp:*:hl:*", "COUNT", 1000)
            found += keys
            if cursor == b"0":
                return sorted(found)


def _pttl(server, key: bytes) -> int:
    with Resp(server.port) as r:
        r.command("AUTH", *server.acl_user)
        return r.command("PTTL", key)


@needs_redis
def test_close_releases_the_fleet_verifier_lease(redis_server) -> None:
    """P7: ``close()`` gives the verifier's lease back at once (compare-and-delete), so another
    instance can verify the prefix without waiting for it to expire."""
    c = Cache(redis=redis_server.url, l2_prefix="hp", healing_sample_rate=1.0, healing_fleet_verify_lease=10)
    c.register_source("user:", lambda k: "x")
    c.set("user:1", "x")

    def held() -> bool:
        c.verify_now_sync()
        return c.stats()["l2_verifier_held"] == 1

    wait_for(held)
    assert len(_lease_keys(redis_server)) == 1
    assert c.close() == 0
    assert _lease_keys(redis_server) == [], "the lease outlived close()"


@needs_redis
def test_a_fleet_repair_keeps_the_l2_remaining_time(redis_server) -> None:
    """P6: an entry set with ``ttl=5`` and repaired by the fleet verifier keeps at most its 5 s in
    L2, not the cache's default 60 s."""
    c = Cache(redis=redis_server.url, l2_prefix="hp", healing_sample_rate=1.0, ttl=60)
    c.register_source("s:", lambda k: "new")
    c.set("s:1", "old", ttl=5)
    wait_for(lambda: c.stats()["l2_writes"] == 1)

    def repaired() -> bool:
        c.verify_now_sync()
        return c.stats()["l2_verifier_repaired"] == 1

    wait_for(repaired)
    with Resp(redis_server.port) as r:
        r.command("AUTH", *redis_server.acl_user)
        _, keys = r.command("SCAN", 0, "MATCH", "hp:*:v:s:1", "COUNT", 1000)
        assert len(keys) == 1
        pttl = r.command("PTTL", keys[0])
    assert 0 < pttl <= 5000, pttl
    c.close()


@needs_redis
def test_max_samples_bounds_a_fleet_verifier_interval(redis_server) -> None:
    """P5: ``healing_max_samples`` bounds the keys one interval asks the sources about, over every
    prefix the instance verifies and its own L1 sample together."""
    c = Cache(redis=redis_server.url, l2_prefix="hp", healing_sample_rate=1.0, healing_max_samples=3)
    calls: list[str] = []
    for p in ("a:", "b:", "c:"):
        c.register_source(p, lambda k: calls.append(k) or "v")
        for i in range(20):
            c.set(f"{p}{i}", "v")
    wait_for(lambda: c.stats()["l2_writes"] == 60)

    def held() -> bool:
        c.verify_now_sync()
        return c.stats()["l2_verifier_held"] == 3

    wait_for(held)
    for _ in range(5):
        calls.clear()
        r = c.verify_now_sync()
        assert r["drawn"] <= 3 and len(calls) <= 3, (r, calls)
    c.close()
