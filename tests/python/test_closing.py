"""Closing the shared tier from Python, against a real redis-server: ``close()`` sends the L2
writes under way (and their bus messages) and closes the Redis connections, a process that
exits without calling it loses none of its writes (the exit hook), and a dropped cache leaves no
connection open."""

from __future__ import annotations

import gc
from datetime import timedelta
import subprocess
import sys
import time

import pytest

import healcache
from rediskit import redis_server, wait_for  # noqa: F401 (fixture)

N = 5000




class Watch:
    """One raw connection to the server: its clients (this one left out) and its keys."""

    def __init__(self, server):
        self.conn = server.connect()
        self.me = f"id={self.conn.command('CLIENT', 'ID')} "

    def clients(self) -> int:
        listed = self.conn.command("CLIENT", "LIST").decode().splitlines()
        return sum(1 for line in listed if not line.startswith(self.me))

    def stored(self, pattern: str) -> int:
        cursor, n = b"0", 0
        while True:
            cursor, keys = self.conn.command("SCAN", cursor, "MATCH", pattern, "COUNT", "1000")
            n += len(keys)
            if cursor == b"0":
                return n


WRITER = """
import sys, healcache
url, prefix, n, how = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = healcache.Cache(redis=url, l2_prefix=prefix, ttl=300)
for i in range(n):
    c.set(f"k{i}", "v" * 100)
if how == "close":
    print(c.close())
elif how == "del":
    del c
"""


@pytest.mark.parametrize("how", ["exit", "del", "close"])
def test_a_process_that_sets_5000_keys_and_ends_leaves_all_of_them_in_redis(redis_server, how):
    """With ``close()``, after ``del``, or with nothing at all (the exit hook), every write of a
    batch job that ends right after its last ``set`` is in Redis."""
    w = Watch(redis_server)
    prefix = f"hx{how}1"
    out = subprocess.run([sys.executable, "-c", WRITER, redis_server.url, prefix, str(N), how],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    if how == "close":
        assert out.stdout.split() == ["0"]
    assert w.stored(f"{prefix}:*:v:*") == N


def test_close_sends_every_write_and_closes_the_connections(redis_server):
    w = Watch(redis_server)
    base = w.clients()
    other = healcache.Cache(redis=redis_server.url, ttl=300)
    c = healcache.Cache(redis=redis_server.url, ttl=300)
    wait_for(lambda: w.clients() == base + 4, 5)
    other.set("k0", "old")
    wait_for(lambda: other.stats()["l2_writes"] == 1, 5)
    for i in range(N):
        c.set(f"k{i}", i)
    assert c.close() == 0
    assert c.stats()["l2_writes"] == N
    assert w.stored("hc1:*:v:k*") == N
    # the bus message of each write went out before the close: the other instance dropped its copy
    wait_for(lambda: other.get("k0") is None, 5)
    wait_for(lambda: w.clients() == base + 2, 1)
    # the cache works on from L1; L2 is skipped, counted, never an error
    skipped = c.stats()["l2_skipped"]
    c.set("after", 1)
    assert c.get("after") == 1
    assert c.get_or_load_sync("loaded", lambda: 2) == 2
    s = c.stats()
    assert s["l2_skipped"] >= skipped + 2 and s["l2_errors"] == 0
    assert w.stored("hc1:*:v:after") == 0
    assert w.clients() == base + 2
    # a second close answers at once; `with` closes too
    assert c.close(timeout=0) == 0
    with healcache.Cache(redis=redis_server.url) as d:
        d.set("in-with", 1)
    assert w.stored("hc1:*:v:in-with") == 1
    wait_for(lambda: w.clients() == base + 2, 1)


def test_dropped_caches_close_their_connections(redis_server):
    w = Watch(redis_server)
    base = w.clients()
    for i in range(10):
        c = healcache.Cache(redis=redis_server.url, ttl=60)
        c.set(f"k{i}", i)
        wait_for(lambda: c.stats()["l2_writes"] == 1 and w.clients() >= base + 2, 5)
        del c
        gc.collect()
    wait_for(lambda: w.clients() == base, 1.5)


def test_close_timeout_is_checked():
    c = healcache.Cache(ttl=60)
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(healcache.InvalidConfig):
            c.close(timeout=bad)
    # without a shared tier nothing is under way; None is the default, a timedelta is seconds
    assert c.close(timeout=0) == 0
    assert c.close(timeout=None) == 0
    assert c.close(timeout=timedelta(milliseconds=10)) == 0
