"""Writes the shared tier cannot take, from Python: a value whose encoded payload is over
``max_entry_bytes`` is refused by ``set`` (``ValueTooLarge``) before anything changes, though
L1 weighs it lighter; and a cache whose Redis never answered is not ready.

Promises checked: bad input gets a clear, typed error and changes nothing; nothing is hidden
silently (a value L2 refuses is not left in L1 while L2 keeps the one it replaced)."""

from __future__ import annotations

import socket
import time

import pytest

import healcache
from rediskit import redis_server, wait_for  # noqa: F401 (fixture)




def test_a_value_l2_would_refuse_is_refused_by_set_and_changes_nothing(redis_server):
    a = healcache.Cache(redis=redis_server.url, ttl=60, max_entry_bytes=1000)
    v1 = a.set("k", "small")
    wait_for(lambda: a.stats()["l2_writes"] == 1)
    big = {"a": "x" * 5000}  # L1 weighs the dict at its sys.getsizeof, well under 1,000
    with pytest.raises(healcache.ValueTooLarge) as ei:
        a.set("k", big)
    assert ei.value.max == 1000 and ei.value.weight > 5000
    assert a.get_entry("k")[:2] == ("small", v1), "L1 is as it was"
    time.sleep(0.2)
    s = a.stats()
    assert (s["l2_writes"], s["l2_codec_errors"]) == (1, 0), "nothing reached the tier"
    b = healcache.Cache(redis=redis_server.url, ttl=60, max_entry_bytes=1000)
    assert b.get_or_load_sync("k", lambda: "source") == "small", "L2 is as it was"


def test_a_cache_whose_redis_never_answered_is_not_ready(redis_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bad = healcache.Cache(redis=f"redis://127.0.0.1:{port}", ttl=60)
    good = healcache.Cache(redis=redis_server.url, ttl=60)
    wait_for(good.ready)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        assert not bad.ready()
        time.sleep(0.05)
