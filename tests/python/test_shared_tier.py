"""The shared tier (Redis L2) from Python, against a real redis-server started by the test kit
as a restricted ACL user (no KEYS, FLUSHALL, DEBUG): values cross processes with their types,
freshness follows Redis, bad stored bytes are misses (never code run), and an unreachable Redis
degrades to the local cache and the loader."""

from __future__ import annotations

import asyncio
import math
import os
import pickle
import select
import subprocess
import sys
import time
from datetime import timedelta

import pytest

import healcache
from rediskit import Resp, free_port, redis_server, fault_proxy, wait_for  # noqa: F401 (fixtures)




def fetch(cache, key, loader):
    async def go():
        return await cache.fetch(key, loader)

    return asyncio.run(go())


def unloadable():
    raise RuntimeError("the origin must not be called")


DOC = {"name": "Ada", "langs": ["en", "fr"], "n": 36, "big": 2**63, "neg": -(2**63), "pi": 3.5,
       "ok": True, "none": None, "raw": b"\x00\xff", "nested": {"a": [1, {"b": "c"}]}}


def test_what_one_process_loads_another_reads(redis_server):
    a = healcache.Cache(redis=redis_server.url, ttl=60)
    b = healcache.Cache(redis=redis_server.url, ttl=60)
    assert a.get_or_load_sync("user:1", lambda: DOC) == DOC
    wait_for(lambda: a.stats()["l2_writes"] == 1)
    f = fetch(b, "user:1", unloadable)
    assert (f.value, f.status) == (DOC, "l2-hit")
    assert b.stats()["l2_hits"] == 1 and b.stats()["l2_codec_errors"] == 0
    # tuples come back as lists: the payload model has one sequence type
    a.set("t", (1, "two"))
    wait_for(lambda: a.stats()["l2_writes"] == 2)
    assert b.get_or_load_sync("t", unloadable) == [1, "two"]


def test_values_the_model_lacks_are_refused_and_change_nothing(redis_server):
    c = healcache.Cache(redis=redis_server.url)
    for bad in [{1, 2}, object(), {1: "int key"}, 2**64, lambda: 1]:
        with pytest.raises(healcache.ValueNotEncodable) as e:
            c.set("k", bad)
        assert isinstance(e.value, TypeError)
        # the structured field says what could not be encoded, as the message does
        assert e.value.reason and e.value.reason in str(e.value)
        assert "k" not in c
    deep = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(healcache.ValueNotEncodable):
        c.set("deep", deep)
    # without a shared tier, any object is fine
    plain = healcache.Cache()
    plain.set("k", {1, 2})
    assert plain.get("k") == {1, 2}


def test_a_pickle_planted_in_redis_never_runs(redis_server, tmp_path):
    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    # the key layout: <prefix>:{<slot>}:v:<key>; find it as a writer would
    c = healcache.Cache(redis=redis_server.url)
    c.set("victim", "placeholder")
    wait_for(lambda: c.stats()["l2_writes"] == 1)
    with redis_server.connect(admin=True) as r:
        cursor, keys = r.command("SCAN", "0", "MATCH", "hc1:*:v:victim")
        (vkey,) = keys
        r.command("SET", vkey, pickle.dumps(Evil()))
    reader = healcache.Cache(redis=redis_server.url)
    f = fetch(reader, "victim", lambda: "from origin")
    assert (f.value, f.status) == ("from origin", "loaded")
    assert reader.stats()["l2_codec_errors"] == 1
    assert not marker.exists()


def test_an_unreachable_redis_degrades_to_the_loader():
    c = healcache.Cache(redis=f"redis://127.0.0.1:{free_port()}", l2_timeout=0.05)
    for i in range(10):
        assert c.get_or_load_sync(f"k{i}", lambda i=i: i) == i
    s = c.stats()
    assert s["l2_breaker_state"] == 1
    assert s["l2_skipped"] >= 7


def test_credentials_never_show(redis_server):
    url = redis_server.url
    assert "@" in url
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    with pytest.raises(healcache.InvalidConfig) as e:
        healcache.Cache(redis=f"nonsense://hc:{password}@x")
    assert password not in str(e.value)
    c = healcache.Cache(redis=url)
    assert password not in repr(c)


def test_settings_are_checked(redis_server):
    with pytest.raises(healcache.InvalidConfig) as e:
        healcache.Cache(redis=redis_server.url, l2_timeout=-1)
    assert e.value.field == "l2_timeout"
    with pytest.raises(healcache.InvalidConfig):
        healcache.Cache(redis=redis_server.url, l2_prefix="")
    # P5: with a shared tier a key's bus message must fit in 64 KiB
    with pytest.raises(healcache.InvalidConfig) as e:
        healcache.Cache(redis=redis_server.url, max_key_len=65_483)
    assert e.value.field == "max_key_len"
    assert healcache.Cache(redis=redis_server.url, max_key_len=65_482) is not None
    assert healcache.Cache(max_key_len=65_483) is not None  # no bus without a shared tier


CHILD = r"""
import sys, healcache
c = healcache.Cache(redis=sys.argv[1])
print(c.get_or_load_sync("forked", lambda: "child-loaded"))
s = c.stats()
print(s["l2_hits"], s["l2_errors"])
"""


def test_a_forked_child_gets_a_working_tier(redis_server):
    # the parent uses the tier first, so its runtime and connection exist before the fork
    parent = healcache.Cache(redis=redis_server.url)
    parent.set("forked", "parent-wrote")
    wait_for(lambda: parent.stats()["l2_writes"] == 1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        try:
            child = healcache.Cache(redis=redis_server.url)
            ok = child.get_or_load_sync("forked", unloadable) == "parent-wrote"
            # and the parent's cache object works in the child too
            parent.set("from-child", "x")
            ok = ok and parent.stats()["l2_errors"] == 0
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_python_reads_what_another_interpreter_wrote(redis_server):
    w = healcache.Cache(redis=redis_server.url)
    w.set("forked", "written-by-parent")
    wait_for(lambda: w.stats()["l2_writes"] == 1)
    out = subprocess.run([sys.executable, "-c", CHILD, redis_server.url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    value, counts = out.stdout.splitlines()
    assert value == "written-by-parent"
    assert counts == "1 0"


def l2_get_binary() -> str:
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "target")
    path = os.path.join(target, "release", "examples", "l2_get")
    assert os.path.exists(path), f"{path} is built by `make build-l2-tools` (a prerequisite of make test-python)"
    return path


def test_python_and_rust_read_each_others_entries(redis_server):
    py = healcache.Cache(redis=redis_server.url)
    doc = {"name": "Ada", "langs": ["en", "fr"], "n": 36, "pi": 3.5, "ok": True, "none": None}
    py.set("from:python", doc)
    wait_for(lambda: py.stats()["l2_writes"] == 1)
    out = subprocess.run(
        [l2_get_binary(), redis_server.url, "--set", 'from:rust={"lang":"rust","n":[1,2,3]}', "from:python", "nope"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    import json

    got_py, missing = out.stdout.splitlines()
    assert json.loads(got_py) == doc
    assert missing == "error: LoaderError"
    f = fetch(healcache.Cache(redis=redis_server.url), "from:rust", unloadable)
    assert (f.value, f.status) == ({"lang": "rust", "n": [1, 2, 3]}, "l2-hit")


FLEET_CHILD = r"""
import asyncio, sys, time, healcache
url = sys.argv[1]
c = healcache.Cache(redis=url, fleet_lock="all", fleet_lock_lease=2)
end = time.time() + 10
while not c.ready() and time.time() < end:
    time.sleep(0.01)
print("ready", flush=True)
start = float(sys.stdin.readline())
async def load():
    await asyncio.sleep(0.3)
    return "built"
async def go():
    while time.time() < start:
        await asyncio.sleep(0.001)
    return await c.fetch("hot", load)
f = asyncio.run(go())
print(f.status, f.value)
"""


def test_the_fleet_lock_lets_one_process_rebuild_for_all(redis_server):
    # three interpreters miss one key at once: one rebuilds, the others wait for its value. The
    # moment is set once all three have started (a fixed head start may not cover an
    # interpreter's start on a loaded machine)
    procs = [
        subprocess.Popen([sys.executable, "-c", FLEET_CHILD, redis_server.url], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    try:
        for p in procs:
            assert select.select([p.stdout], [], [], 30)[0], "a child did not start"
            assert p.stdout.readline().strip() == "ready"
        start = time.time() + 0.5
        for p in procs:  # every child has the moment before any is waited for
            p.stdin.write(f"{start}\n")
            p.stdin.flush()
        outs = sorted(p.communicate(timeout=30)[0].strip() for p in procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()  # by its pid
                p.wait()
    assert all(p.returncode == 0 for p in procs)
    assert outs == ["fleet-coalesced built", "fleet-coalesced built", "loaded built"]


def test_a_rebuild_that_lost_its_lease_is_fenced_out(redis_server):
    # lease 0.1 s, renewed for 0.1 s at most: A's 0.8 s rebuild loses the lock to B, whose value stays
    def make():
        return healcache.Cache(redis=redis_server.url, fleet_lock="all", fleet_lock_lease=0.1, fleet_lock_max_hold=0.1)

    a, b = make(), make()

    async def slow():
        await asyncio.sleep(0.8)
        return "A"

    async def fast():
        return "B"

    async def go():
        fa = asyncio.ensure_future(a.fetch("acct", slow))
        # A holds the lock before B asks (bounded wait: taking it is a Redis round trip)
        end = asyncio.get_running_loop().time() + 10
        while a.stats()["l2_lock_acquired"] == 0 and asyncio.get_running_loop().time() < end:
            await asyncio.sleep(0.005)
        fb = await b.fetch("acct", fast)
        return await fa, fb

    fa, fb = asyncio.run(go())
    assert (fb.status, fb.value) == ("loaded", "B")
    assert (fa.status, fa.value) == ("fenced-out", "A")
    assert a.stats()["l2_fenced_out"] == 1
    assert a.get("acct") == "B" and b.get("acct") == "B"


def test_fleet_lock_settings_are_checked(redis_server):
    with pytest.raises(healcache.InvalidConfig) as e:
        healcache.Cache(redis=redis_server.url, fleet_lock="sometimes")
    assert e.value.field == "fleet_lock"
    with pytest.raises(healcache.InvalidConfig) as e:
        healcache.Cache(redis=redis_server.url, fleet_lock_lease=0)
    assert e.value.field == "fleet_lock_lease"
    for mode in ("off", "refresh", "all"):
        healcache.Cache(redis=redis_server.url, fleet_lock=mode)


def test_the_fleet_verifier_settings_reach_the_shared_tier(redis_server):
    """The fleet verifier's settings are healing settings: off, the instance takes no lease; on,
    it does; values outside their bounds are refused by name and change nothing."""
    c = healcache.Cache(redis=redis_server.url, healing_fleet_verify=False,
                        healing_fleet_verify_lease=2, healing_fleet_verify_scan_budget=250)
    cfg = c.healing_config()
    assert (cfg["fleet_verify"], cfg["fleet_verify_lease"], cfg["fleet_verify_scan_budget"]) == (False, 2.0, 250)
    c.set("k:1", 1)
    wait_for(lambda: c.stats()["l2_writes"] == 1)
    c.register_source("k:", lambda key: 1)
    for _ in range(3):
        c.verify_now_sync()
    time.sleep(0.2)
    assert c.stats()["l2_verifier_acquired"] == 0
    c.set_healing(fleet_verify=True)
    c.verify_now_sync()
    wait_for(lambda: c.stats()["l2_verifier_acquired"] >= 1)
    # at the bounds, in seconds (a timedelta too)
    c.set_healing(fleet_verify_lease=0.001, fleet_verify_scan_budget=10_000_000)
    c.config_set("fleet_verify_lease", timedelta(seconds=3))
    assert c.config_get("fleet_verify_lease") == "3"
    for kw, bad in [("fleet_verify_lease", 0.0005), ("fleet_verify_lease", 0),
                    ("fleet_verify_scan_budget", 0), ("fleet_verify_scan_budget", 10_000_001)]:
        with pytest.raises(healcache.InvalidConfig) as e:
            c.set_healing(**{kw: bad})
        assert e.value.field == kw
    cfg = c.healing_config()
    assert (cfg["fleet_verify"], cfg["fleet_verify_lease"], cfg["fleet_verify_scan_budget"]) == (True, 3.0, 10_000_000)
    c.close()


def test_a_tag_invalidated_in_one_process_is_stale_in_another(redis_server):
    a = healcache.Cache(redis=redis_server.url, ttl=60, grace=60)
    b = healcache.Cache(redis=redis_server.url, ttl=60, grace=60)
    a.set("user:1", "u1", tags=["team:7"])
    a.set("user:2", "u2", tags=["team:8"])
    # tags a did not know: each value is written, then again with the tag's version read
    wait_for(lambda: a.stats()["l2_writes"] == 4)
    wait_for(lambda: b.stats()["l2_bus_received"] >= a.stats()["l2_bus_sent"])
    assert fetch(b, "user:1", unloadable).status == "l2-hit"
    assert a.invalidate_tag("team:7") == 1
    wait_for(lambda: b.get("user:1") is None)
    assert b.get("user:2") is None and a.get("user:2") == "u2"
    # soft: the stale copy serves while the origin fails
    def down():
        raise RuntimeError("origin down")

    f = fetch(b, "user:1", down)
    assert (f.value, f.status) == ("u1", "stale-fail-safe")
    assert b.stats()["l2_tag_received"] == 1 and a.stats()["l2_tag_invalidations"] == 1
    # hard: removed
    a.set("user:3", "u3", tags=["team:9"])
    assert a.invalidate_tag("team:9", hard=True) == 1
    assert a.get_entry("user:3") is None


def test_tags_soft_keeps_an_entry_without_expiry_stale_and_hard_after_soft_removes() -> None:
    """P7: without a shared tier too, a soft invalidation keeps an entry that never expires as a
    fallback for ``grace`` from then on, and a hard one after it removes what it left stale (the
    count is of fresh entries)."""
    clock = healcache.ManualClock()
    c = healcache.Cache(clock=clock, ttl=1, grace=0.5)

    def down():
        raise RuntimeError("origin down")

    c.set("withTtl", "A", tags=["t"])
    c.set("noTtl", "D", tags=["t"], ttl=math.inf)
    assert c.invalidate_tag("t") == 2
    assert (c.get("withTtl"), c.get("noTtl"), len(c)) == (None, None, 2)
    for k, v in [("withTtl", "A"), ("noTtl", "D")]:
        f = fetch(c, k, down)
        assert (f.value, f.status) == (v, "stale-fail-safe"), k
    clock.advance(0.5)
    with pytest.raises(RuntimeError, match="origin down"):
        fetch(c, "noTtl", down)  # past its grace window

    c.set("x", "X", tags=["h"])
    assert c.invalidate_tag("h") == 1
    assert c.invalidate_tag("h", hard=True) == 0  # x was stale already: not counted, removed
    with pytest.raises(RuntimeError, match="origin down"):
        fetch(c, "x", down)
    assert c.get_entry("x") is None


def test_bad_tags_are_refused_and_change_nothing(redis_server):
    c = healcache.Cache(redis=redis_server.url)
    with pytest.raises(healcache.InvalidConfig, match="tags"):
        c.set("k", 1, tags=[f"t{i}" for i in range(17)])
    with pytest.raises(healcache.InvalidConfig, match="tags"):
        c.set("k", 1, tags=["x" * 129])
    with pytest.raises(TypeError):
        c.set("k", 1, tags="not-a-list")
    assert "k" not in c and c.stats()["l2_writes"] == 0
    c.set("k", 1, tags=["x" * 128] * 16)
    assert c.invalidate_tag("x" * 128) == 1


def test_a_fetched_value_carries_its_tags(redis_server):
    a = healcache.Cache(redis=redis_server.url, ttl=60)
    b = healcache.Cache(redis=redis_server.url, ttl=60)

    async def go():
        return await a.fetch("doc", lambda: "v", tags=["t"])

    assert asyncio.run(go()).status == "loaded"
    wait_for(lambda: a.stats()["l2_writes"] == 1)
    assert fetch(b, "doc", unloadable).status == "l2-hit"
    assert b.invalidate_tag("t", hard=True) == 1
    wait_for(lambda: a.get("doc") is None)

    async def bad():
        return await a.fetch("x", lambda: 1, tags=["y" * 129])

    with pytest.raises(healcache.InvalidConfig, match="tags"):
        asyncio.run(bad())


def test_an_unreachable_shared_tier_is_l2_unavailable_with_its_reason():
    # nothing listens on port 1 of loopback: the connection is refused at once
    c = healcache.Cache(redis="redis://127.0.0.1:1", l2_timeout=0.05)
    with pytest.raises(healcache.L2Unavailable) as e:
        c.invalidate_tag("t")
    assert isinstance(e.value, ConnectionError)
    assert e.value.reason and e.value.reason in str(e.value)
    c.close()


def test_a_unix_socket_url_reaches_a_local_redis(tmp_path):
    """docs/shared-tier.md: `redis=` takes a `redis://` URL, or `unix://` for a local socket. A
    redis-server child listening on a socket only (no TCP port), stopped by its pid."""
    import rediskit

    exe = rediskit.redis_server_path()
    assert exe is not None, "redis-server is not installed: run .ci/setup-server.sh"
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [exe, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(sock.exists, 10)
        a = healcache.Cache(redis=f"unix://{sock}", l2_prefix="ux")
        b = healcache.Cache(redis=f"unix://{sock}", l2_prefix="ux")
        wait_for(a.ready, 10)
        a.set("k", "v")
        assert a.close() == 0  # the write has landed
        got = asyncio.run(b.fetch("k", lambda: "origin"))
        assert (got.value, got.status) == ("v", "l2-hit")
        assert b.close() == 0
    finally:
        proc.kill()
        proc.wait()


def test_a_new_instance_serves_a_stale_l2_value_when_its_load_fails(redis_server):
    """Fail-safe from L2: a new instance has no stale copy of its own; when its load fails, what
    L2 holds within its grace window is served (and kept here as a fallback, never as fresh)."""
    a = healcache.Cache(redis=redis_server.url, ttl=0.3, grace=60)
    assert fetch(a, "k", lambda: "v1").status == "loaded"
    wait_for(lambda: a.stats()["l2_writes"] == 1)
    time.sleep(0.4)
    c = healcache.Cache(redis=redis_server.url, ttl=0.3, grace=60)
    f = fetch(c, "k", unloadable)
    assert (f.value, f.status) == ("v1", "stale-fail-safe")
    assert c.get("k") is None
    assert c.get_or_load_sync("k", unloadable) == "v1"
    assert c.stats()["l2_writes"] == 0
    # without a grace window of its own, a cache takes no fallback
    plain = healcache.Cache(redis=redis_server.url, ttl=60)
    with pytest.raises(RuntimeError, match="the origin must not be called"):
        fetch(plain, "k", unloadable)
