"""Self-healing from Python: sources of truth (sync, async, HTTP URL templates), verify now,
scores, stats, drift events, settings by keyword and by name, the background loop and its end.

Sampling, verification, repair, scores and backoff are the core's (core/tests/healing.rs); these
tests check the conversion, the threads and event loops the sources run on, and the errors. Real
parts only: a dict as the database, a loopback HTTP server. No timing assertions: waits are bounded
polls of a condition.
"""

from __future__ import annotations

import asyncio
import gc
import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.parse
import weakref
from typing import Any, Callable, Iterator

import pytest

import healcache
from healcache import NOT_FOUND, Cache

REPORT_FIELDS = ["drawn", "verified", "consistent", "drift", "repaired", "skipped", "failures", "duration_ms", "overlapped"]


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.005)


def settles(read: Callable[[], Any], timeout: float = 10.0) -> None:
    """Waits until `read()` stays the same for 0.2 s."""
    deadline = time.monotonic() + timeout
    last = read()
    while True:
        time.sleep(0.2)
        now = read()
        if now == last:
            return
        assert time.monotonic() < deadline, "never settled"
        last = now


def filled(n: int, **options: Any) -> tuple[Cache, dict[str, Any]]:
    """A cache and its "database", both holding user:0..n-1."""
    c = Cache(max_entries=10 * n, seed=7, **options)
    db: dict[str, Any] = {}
    for i in range(n):
        db[f"user:{i}"] = {"id": i, "name": f"user {i}"}
        c[f"user:{i}"] = {"id": i, "name": f"user {i}"}
    return c, db


def healer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "healcache-healer"]


# --- drift scored then repaired, at small size -----------------------------------------------------


def test_drift_is_scored_then_repaired_until_the_score_is_one() -> None:
    n = 2000
    c, db = filled(n, healing_sample_rate=0.5, healing_score_window=400, healing_auto_repair=False)
    c.register_source("user:", lambda k: db.get(k, NOT_FOUND))
    assert c.score("user:") == {"prefix": "user:", "score": 1.0, "sampled": 0, "repaired": 0}
    # 10% drift behind the cache's back: the database changes, nobody invalidates
    for i in range(0, n, 10):
        db[f"user:{i}"] = {"id": i, "name": f"renamed {i}"}
    report = c.verify_now_sync()
    assert list(report) == REPORT_FIELDS
    assert report["drawn"] == report["verified"] == 1000 and report["repaired"] == 0
    assert report["consistent"] + report["drift"] == 1000
    s = c.score("user:")
    assert s is not None and 0.8 < s["score"] < 0.98, s  # 0.9 within 3 sd of a 400-sample window
    assert s["sampled"] == 1000 and s["repaired"] == 0
    assert c["user:0"]["name"] == "user 0", "auto_repair off: drift reported, not repaired"

    c.set_healing(auto_repair=True)
    rounds = 0
    while c.score("user:")["score"] < 1.0:  # type: ignore[index]
        rounds += 1
        assert rounds <= 40, c.score("user:")
        r = c.verify_now_sync()
        assert r["repaired"] == r["drift"], r
    # a full pass repairs whatever drift is left, then the cache equals the database
    c.set_healing(sample_rate=1.0)
    c.verify_now_sync()
    r = c.verify_now_sync()
    assert (r["verified"], r["consistent"], r["drift"]) == (n, n, 0)
    assert all(c[k] == v for k, v in db.items())

    st = c.healing_stats()
    assert list(st)[:5] == ["total_sampled", "total_repaired", "avg_score", "source_failures", "last_interval_ms"]
    assert st["total_repaired"] >= 150 and st["source_failures"] == 0 and st["avg_score"] == 1.0
    assert st["total_sampled"] == c.score("user:")["sampled"]  # type: ignore[index]
    events = c.drift_events()
    assert {e["key"] for e in events} <= {f"user:{i}" for i in range(0, n, 10)}
    e = events[-1]
    assert list(e) == ["key", "prefix", "at_ms", "old_digest", "new_digest", "repaired"]
    assert e["prefix"] == "user:" and e["repaired"] is True
    assert len(e["old_digest"]) == len(e["new_digest"]) == 8 and e["old_digest"] != e["new_digest"]


def test_digests_are_content_digests_and_never_raise() -> None:
    class NoRepr:
        def __init__(self, n: int) -> None:
            self.n = n

        def __eq__(self, other: object) -> bool:
            return isinstance(other, NoRepr) and other.n == self.n

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    c = Cache()
    truth = {"a": {"x": [1, 2]}, "b": {"x": [1, 2]}, "c": NoRepr(2), "d": b"new"}
    c["a"] = {"x": [1]}  # unhashable values
    c["b"] = {"x": [1]}
    c["c"] = NoRepr(1)
    c["d"] = b"old"
    c.register_source("", truth.__getitem__)
    c.set_healing(sample_rate=1.0)
    r = c.verify_now_sync()
    assert (r["drift"], r["repaired"], r["failures"]) == (4, 4, 0)
    ev = {e["key"]: e for e in c.drift_events()}
    assert ev["a"]["old_digest"] == ev["b"]["old_digest"] and ev["a"]["new_digest"] == ev["b"]["new_digest"]
    assert ev["a"]["old_digest"] != ev["a"]["new_digest"]
    assert all(len(e["old_digest"]) == 8 for e in ev.values())


# --- source kinds ---------------------------------------------------------------------------------


def test_sync_source_runs_on_a_worker_thread_with_the_key() -> None:
    c = Cache()
    c["k:1"] = "v1"
    c["other"] = "x"
    seen: list[tuple[str, str]] = []

    def source(key: str) -> str:
        seen.append((key, threading.current_thread().name))
        return "v1"

    c.register_source("k:", source)
    c.set_healing(sample_rate=1.0)
    r = c.verify_now_sync()
    assert (r["drawn"], r["verified"], r["consistent"], r["skipped"]) == (2, 1, 1, 1)  # "other" has no source
    assert seen[0][0] == "k:1" and seen[0][1].startswith("healcache-source")


@pytest.mark.asyncio
async def test_async_source_runs_on_the_loop_it_was_registered_from() -> None:
    c, db = filled(50, healing_sample_rate=1.0)
    loops: set[int] = set()

    async def source(key: str) -> Any:
        loops.add(id(asyncio.get_running_loop()))
        await asyncio.sleep(0.001)
        return db.get(key, NOT_FOUND)

    db["user:3"] = "changed"
    c.register_source("user:", source)
    r = await c.verify_now()
    assert (r["verified"], r["drift"], r["repaired"]) == (50, 1, 1)
    assert c["user:3"] == "changed"
    assert loops == {id(asyncio.get_running_loop())}
    # from a thread, while this loop awaits: the source still runs here, nothing blocks
    r = await asyncio.get_running_loop().run_in_executor(None, c.verify_now_sync)
    assert (r["verified"], r["consistent"]) == (50, 50)
    assert loops == {id(asyncio.get_running_loop())}


@pytest.mark.asyncio
async def test_callable_returning_an_awaitable_and_async_callable_objects() -> None:
    c = Cache(healing_sample_rate=1.0)
    c["a:1"] = 1
    c["b:1"] = 1

    async def lookup(key: str) -> int:
        await asyncio.sleep(0)
        return 2

    class Api:
        async def __call__(self, key: str) -> int:
            return 1

    c.register_source("a:", lambda k: lookup(k))
    c.register_source("b:", Api())
    r = await c.verify_now()
    assert (r["verified"], r["drift"], r["failures"]) == (2, 1, 0)
    assert (c["a:1"], c["b:1"]) == (2, 1)


def test_async_source_registered_outside_a_loop_runs_on_healcaches_loop() -> None:
    c = Cache(healing_sample_rate=1.0)
    c["k"] = 1
    threads: list[str] = []

    async def source(key: str) -> int:
        threads.append(threading.current_thread().name)
        await asyncio.sleep(0.001)
        return 5

    c.register_source("", source)
    r = c.verify_now_sync()
    assert (r["drift"], r["repaired"]) == (1, 1) and c["k"] == 5
    assert threads == ["healcache-loop"]


def test_async_source_whose_loop_is_closed_runs_on_healcaches_loop() -> None:
    c = Cache(healing_sample_rate=1.0)
    c["k"] = 1

    async def source(key: str) -> int:
        return 2

    async def setup() -> None:
        c.register_source("", source)
        r = await c.verify_now()
        assert r["repaired"] == 1

    asyncio.run(setup())  # the loop the source was registered from is closed now
    c["k"] = 1
    assert c.verify_now_sync()["repaired"] == 1 and c["k"] == 2


@pytest.mark.asyncio
async def test_verify_now_sync_refuses_to_block_a_running_loop() -> None:
    c = Cache()
    with pytest.raises(RuntimeError, match="verify_now"):
        c.verify_now_sync()


def test_verify_now_outside_a_loop_starts_once_awaited() -> None:
    # no loop runs yet: the call is a coroutine, as an `async def` method's is
    assert asyncio.run(Cache().verify_now())["failures"] == 0


# --- answers ----------------------------------------------------------------------------------------


def test_not_found_removes_the_entry() -> None:
    c = Cache(healing_sample_rate=1.0)
    c["gone"] = "x"
    c["here"] = "y"
    db = {"here": "y"}
    c.register_source("", lambda k: db.get(k, NOT_FOUND))
    r = c.verify_now_sync()
    assert (r["consistent"], r["drift"], r["repaired"]) == (1, 1, 1)
    assert "gone" not in c and c["here"] == "y"
    (e,) = c.drift_events()
    assert e["key"] == "gone" and e["new_digest"] == "absent" and len(e["old_digest"]) == 8


def test_a_raising_source_is_a_failure_not_drift() -> None:
    c = Cache(healing_sample_rate=1.0)
    for i in range(10):
        c[f"k{i}"] = i

    def down(key: str) -> int:
        raise ConnectionError("database down")

    c.register_source("k", down)
    r = c.verify_now_sync()
    assert (r["verified"], r["drift"], r["failures"], r["skipped"]) == (0, 0, 10, 10)
    assert c.score("k") == {"prefix": "k", "score": 1.0, "sampled": 0, "repaired": 0}
    assert c.healing_stats()["source_failures"] == 10
    assert c.drift_events() == [] and c["k3"] == 3


def test_invalid_key_from_a_source_skips_the_key_without_failure() -> None:
    c = Cache(healing_sample_rate=1.0)
    c["ok"] = 1
    c["odd"] = 1

    def source(key: str) -> int:
        if key == "odd":
            raise healcache.InvalidKey("cannot ask for that")
        return 1

    c.register_source("", source)
    r = c.verify_now_sync()
    assert (r["verified"], r["skipped"], r["failures"]) == (1, 1, 0)


def test_a_hanging_source_times_out_and_the_interval_ends() -> None:
    c = Cache(healing_sample_rate=1.0, healing_source_timeout=0.05)
    c["slow"] = 1
    release = threading.Event()
    c.register_source("", lambda k: release.wait(30))
    try:
        r = c.verify_now_sync()
        assert (r["verified"], r["failures"]) == (0, 1)
    finally:
        release.set()


def test_a_newer_write_wins_over_the_repair() -> None:
    c = Cache(healing_sample_rate=1.0)
    c["k"] = "cached"

    def source(key: str) -> str:
        c[key] = "written while the source was asked"  # after the sample was read
        return "from the source"

    c.register_source("", source)
    r = c.verify_now_sync()
    # the write made the sample moot: skipped, no drift, no event
    assert (r["drift"], r["repaired"], r["skipped"]) == (0, 0, 1)
    assert c["k"] == "written while the source was asked"
    assert c.drift_events() == []


def test_custom_comparator_and_a_raising_comparator() -> None:
    c = Cache(healing_sample_rate=1.0, healing_comparator=lambda cached, fresh: json.loads(cached) == json.loads(fresh))
    c["u"] = '{"a": 1, "b": 2}'
    c.register_source("", lambda k: '{"b": 2, "a": 1}')
    assert c.verify_now_sync()["consistent"] == 1, "key order is not drift"
    with pytest.raises(healcache.InvalidConfig):
        Cache(healing_comparator=42)  # type: ignore[arg-type]

    def broken(cached: Any, fresh: Any) -> bool:
        raise ValueError("cannot compare")

    b = Cache(healing_sample_rate=1.0, healing_comparator=broken)
    b["k"] = [1]
    b.register_source("", lambda k: [1])
    seen: list[Any] = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        r = b.verify_now_sync()
    finally:
        sys.unraisablehook = old_hook
    assert r["drift"] == 1, "an error in the comparator counts as a mismatch"
    assert isinstance(seen[0].exc_value, ValueError)


def test_default_comparison_is_python_equality() -> None:
    c = Cache(healing_sample_rate=1.0)
    c["bytes"] = b"abc"
    c["json"] = {"a": 1, "b": [1, 2]}
    c["text"] = "abc"
    truth = {"bytes": b"abc", "json": {"b": [1, 2], "a": 1}, "text": b"abc"}
    c.register_source("", truth.__getitem__)
    r = c.verify_now_sync()
    assert (r["consistent"], r["drift"]) == (2, 1)
    assert c["text"] == b"abc"


def test_longest_prefix_wins_and_unregister() -> None:
    c = Cache(healing_sample_rate=1.0)
    for k in ["user:1", "user:vip:1", "order:1"]:
        c[k] = 1
    asked: list[str] = []
    c.register_source("user:", lambda k: asked.append(f"users {k}") or 1)
    c.register_source("user:vip:", lambda k: asked.append(f"vips {k}") or 1)
    r = c.verify_now_sync()
    assert (r["verified"], r["skipped"]) == (2, 1)
    assert sorted(asked) == ["users user:1", "vips user:vip:1"]
    assert [s["prefix"] for s in c.scores()] == ["user:", "user:vip:"]
    assert set(c.scores()[0]) >= {"prefix", "score"}
    assert c.unregister_source("user:vip:") is True
    assert c.unregister_source("user:vip:") is False
    assert c.score("user:vip:") is None


def test_bad_sources_and_prefixes_raise_typed_errors() -> None:
    c = Cache(max_key_len=8)
    with pytest.raises(TypeError):
        c.register_source("p", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.register_source(1, lambda k: 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.register_source("p", lambda k: 1, decode="json", allow_private=["127.0.0.1"])
    with pytest.raises(healcache.KeyTooLong):
        c.register_source("a-very-long-prefix", lambda k: 1)
    c.config_set("healing.max_prefixes", "2")
    c.register_source("a", lambda k: 1)
    c.register_source("b", lambda k: 1)
    c.register_source("a", lambda k: 2)  # replacing is not adding
    with pytest.raises(healcache.InvalidConfig) as e:
        c.register_source("c", lambda k: 1)
    assert e.value.field == "healing.max_prefixes"


@pytest.mark.parametrize("background", [False, True])
def test_a_source_referring_to_its_cache_is_garbage_collected(background: bool) -> None:
    before = len(healer_threads())

    class Service:
        def __init__(self) -> None:
            self.cache = Cache(
                healing_comparator=self.same,
                healing_enabled=background,
                healing_verify_interval=0.01,
                healing_sample_rate=1.0,
            )
            self.cache["user:1"] = "user:1"
            self.cache.register_source("user:", self.load)
            self.cache.register_source("order:", self.load_async)

        def load(self, key: str) -> str:
            return key

        async def load_async(self, key: str) -> str:
            return key

        def same(self, cached: Any, fresh: Any) -> bool:
            return bool(cached == fresh)

    s = Service()
    if background:
        wait_for(lambda: s.cache.healing_stats()["total_sampled"] > 2)
    ref = weakref.ref(s)
    del s
    gc.collect()
    assert ref() is None
    wait_for(lambda: len(healer_threads()) == before)


# --- settings ---------------------------------------------------------------------------------------


def test_settings_by_name() -> None:
    c = Cache()
    assert c.config_get("healing.sample_rate") == "0.01"
    c.config_set("healing.sample_rate", "0.02")
    assert c.config_get("healing.sample_rate") == "0.02"
    c.config_set("healing.auto_repair", False)
    c.config_set("healing.score_window", 50)
    c.config_set("healing.verify_interval_ms", 2500.0)
    assert c.healing_config() == {
        "enabled": False,
        "sample_rate": 0.02,
        "verify_interval": 2.5,
        "auto_repair": False,
        "score_window": 50,
        "source_timeout": 2.0,
        "source_concurrency": 16,
        "max_prefixes": 1024,
        "max_drift_events": 1000,
        "max_samples": 100000,
        "fleet_verify": True,
        "fleet_verify_lease": 5.0,
        "fleet_verify_scan_budget": 10000,
    }
    for name, value, field in [
        ("healing.nope", "1", "name"),
        ("max_entries", "5", "name"),
        ("healing.sample_rate", "nan", "healing.sample_rate"),
        ("healing.sample_rate", "-0.1", "healing.sample_rate"),
        ("healing.sample_rate", "abc", "healing.sample_rate"),
        ("healing.verify_interval_ms", "0", "healing.verify_interval_ms"),
        ("healing.source_timeout_ms", "-5", "healing.source_timeout_ms"),
        ("healing.score_window", "0", "healing.score_window"),
        ("healing.score_window", "2.5", "healing.score_window"),
        ("healing.enabled", "maybe", "healing.enabled"),
    ]:
        with pytest.raises(healcache.InvalidConfig) as e:
            c.config_set(name, value)
        assert isinstance(e.value, ValueError) and e.value.field == field, (name, value, e.value.field)
    with pytest.raises(healcache.InvalidConfig, match="healing.nope"):
        c.config_get("healing.nope")
    with pytest.raises(TypeError):
        c.config_set("healing.sample_rate", [0.1])  # type: ignore[arg-type]
    assert c.config_get("healing.sample_rate") == "0.02", "a refused change changes nothing"
    assert c.healing_config()["score_window"] == 50


def test_typed_settings_and_their_errors() -> None:
    c = Cache(
        healing_sample_rate=0.5,
        healing_verify_interval=1.5,
        healing_auto_repair=False,
        healing_score_window=100,
        healing_source_timeout=0.25,
    )
    assert c.healing_config() == {
        "enabled": False,
        "sample_rate": 0.5,
        "verify_interval": 1.5,
        "auto_repair": False,
        "score_window": 100,
        "source_timeout": 0.25,
        "source_concurrency": 16,
        "max_prefixes": 1024,
        "max_drift_events": 1000,
        "max_samples": 100000,
        "fleet_verify": True,
        "fleet_verify_lease": 5.0,
        "fleet_verify_scan_budget": 10000,
    }
    assert c.config_get("healing.verify_interval_ms") == "1500"
    c.set_healing(sample_rate=0.02, auto_repair=True)
    before = c.healing_config()
    assert before["sample_rate"] == 0.02 and before["auto_repair"] is True
    for kwargs, field in [
        ({"sample_rate": float("nan")}, "sample_rate"),
        ({"sample_rate": -1.0}, "sample_rate"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"verify_interval": 0.0}, "verify_interval"),
        ({"verify_interval": float("inf")}, "verify_interval"),
        ({"score_window": 0}, "score_window"),
        ({"source_timeout": -0.5}, "source_timeout"),
        ({"sample_rate": 0.3, "score_window": 0.5}, "score_window"),  # one bad value: nothing changes
    ]:
        with pytest.raises(healcache.InvalidConfig) as e:
            c.set_healing(**kwargs)
        assert e.value.field == field, (kwargs, e.value.field)
        assert c.healing_config() == before
    with pytest.raises(healcache.InvalidConfig, match="seconds"):
        c.set_healing(verify_interval=-1)
    with pytest.raises(TypeError):
        c.set_healing(0.1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.set_healing(sample_rte=0.1)  # type: ignore[call-arg]
    with pytest.raises(healcache.InvalidConfig) as e:
        Cache(healing_sample_rate=-0.5)
    assert e.value.field == "healing_sample_rate"
    with pytest.raises(healcache.InvalidConfig) as e:
        Cache(healing_verify_interval=0)
    assert e.value.field == "healing_verify_interval"
    with pytest.raises(healcache.InvalidConfig) as e:
        Cache(healing_score_window=float("nan"))
    assert e.value.field == "healing_score_window"


@pytest.mark.parametrize(
    "name, value, bad",
    [
        ("source_concurrency", 4, 0),
        ("max_prefixes", 8, 0),
        ("max_drift_events", 20, -1),
        ("max_samples", 500, 0.5),
    ],
)
def test_every_healing_setting_is_a_keyword(name: str, value: int, bad: float) -> None:
    c = Cache(**{f"healing_{name}": value})
    assert c.healing_config()[name] == value  # type: ignore[literal-required]
    assert c.config_get(f"healing.{name}") == str(value)
    c.set_healing(**{name: value + 1})
    assert c.healing_config()[name] == value + 1  # type: ignore[literal-required]
    with pytest.raises(healcache.InvalidConfig) as e:
        c.set_healing(**{name: bad})
    assert e.value.field == name and f"`{name}`" in str(e.value)
    assert c.healing_config()[name] == value + 1, "a refused change changes nothing"  # type: ignore[literal-required]
    with pytest.raises(healcache.InvalidConfig) as e:
        Cache(**{f"healing_{name}": bad})
    assert e.value.field == f"healing_{name}"
    with pytest.raises(TypeError):
        Cache(**{f"healing_{name}": "many"})


def test_settings_by_their_table_names_take_seconds() -> None:
    c = Cache()
    c.config_set("verify_interval", 2.5)
    assert c.healing_config()["verify_interval"] == 2.5
    assert c.config_get("verify_interval") == "2.5"
    assert c.config_get("healing.verify_interval_ms") == "2500", "former names keep milliseconds"
    c.config_set("source_timeout", "0.5")
    c.config_set("sample_rate", 0.25)
    c.config_set("max_samples", "10")
    assert (c.healing_config()["source_timeout"], c.healing_config()["sample_rate"]) == (0.5, 0.25)
    assert c.healing_config()["max_samples"] == 10
    with pytest.raises(healcache.InvalidConfig) as e:
        c.config_set("source_timeout", 0)
    assert e.value.field == "source_timeout" and "seconds" in str(e.value)
    with pytest.raises(healcache.InvalidConfig) as e:
        c.config_set("verify_interval", "soon")
    assert e.value.field == "verify_interval"
    with pytest.raises(TypeError):
        c.config_set("verify_interval", [1])  # type: ignore[arg-type]
    assert c.healing_config()["verify_interval"] == 2.5


def test_max_prefixes_keyword_bounds_the_sources() -> None:
    c = Cache(healing_max_prefixes=1)
    c.register_source("a", lambda k: 1)
    with pytest.raises(healcache.InvalidConfig) as e:
        c.register_source("b", lambda k: 1)
    assert e.value.field == "healing.max_prefixes"
    c.set_healing(max_prefixes=2)
    c.register_source("b", lambda k: 1)


def test_max_samples_keyword_bounds_an_interval() -> None:
    c, _ = filled(50, healing_sample_rate=1.0, healing_max_samples=5)
    c.register_source("user:", lambda k: k)
    assert c.verify_now_sync()["drawn"] == 5
    c.set_healing(max_samples=50)
    assert c.verify_now_sync()["drawn"] == 50


def test_max_drift_events_keyword_bounds_the_history() -> None:
    c, _ = filled(20, healing_sample_rate=1.0, healing_max_drift_events=3)
    c.register_source("user:", lambda k: "changed")
    assert c.verify_now_sync()["drift"] == 20
    assert len(c.drift_events()) == 3


def test_source_concurrency_keyword_bounds_the_calls_under_way() -> None:
    c, _ = filled(12, healing_sample_rate=1.0, healing_source_concurrency=1)
    lock = threading.Lock()
    running, most = 0, 0

    def source(key: str) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return {"id": int(key[5:]), "name": f"user {key[5:]}"}

    c.register_source("user:", source)
    assert c.verify_now_sync()["verified"] == 12
    assert most == 1
    c.set_healing(source_concurrency=4)
    most = 0
    assert c.verify_now_sync()["verified"] == 12
    assert 1 <= most <= 4


# --- metrics ----------------------------------------------------------------------------------------


def test_stats_and_prometheus_carry_the_healing_metrics() -> None:
    c = Cache(healing_sample_rate=1.0)
    c["p:1"] = 1
    c.register_source("p:", lambda k: 9)
    c.verify_now_sync()
    s = c.stats()
    assert s["healing"] == c.healing_stats()
    assert s["healing"]["total_sampled"] == 1 and sum(s["healing"]["interval_duration"]["counts"]) == 1
    text = c.prometheus("c1")
    assert 'healcache_hits_total{cache="c1"}' in text
    assert 'healcache_healing_samples_total{cache="c1"} 1' in text
    assert 'healcache_healing_repairs_total{cache="c1"} 1' in text
    assert 'healcache_healing_score{cache="c1",prefix="p:"} 0' in text
    assert 'healcache_healing_interval_duration_ms_count{cache="c1"} 1' in text


# --- running in the background, overlapping, cancelling ---------------------------------------------


def test_background_loop_heals_and_stops_on_close() -> None:
    c, db = filled(100, healing_enabled=True, healing_verify_interval=0.02, healing_sample_rate=1.0)
    for i in range(0, 100, 10):
        db[f"user:{i}"] = "changed"
    c.register_source("user:", db.__getitem__)
    wait_for(lambda: all(c[k] == v for k, v in db.items()))
    wait_for(lambda: c.healing_stats()["total_sampled"] >= 300)
    assert any(t.is_alive() for t in healer_threads())
    c.close()
    sampled = c.healing_stats()["total_sampled"]
    time.sleep(0.1)
    assert c.healing_stats()["total_sampled"] == sampled, "no interval after close()"
    c.close()  # idempotent
    with pytest.raises(healcache.Closed):
        c.set_healing(enabled=True)  # closed: no loop starts again, and the call says so
    time.sleep(0.1)
    assert c.healing_stats()["total_sampled"] == sampled
    assert c.verify_now_sync()["verified"] == 100, "verify_now still works after close()"


def test_enabling_at_runtime_starts_the_loop_and_disabling_pauses_it() -> None:
    before = len(healer_threads())
    with Cache(healing_verify_interval=0.02, healing_sample_rate=1.0) as c:
        c["k"] = 1
        c.register_source("", lambda k: 2)
        time.sleep(0.1)
        assert c.healing_stats()["total_sampled"] == 0 and len(healer_threads()) == before
        c.config_set("healing.enabled", "true")
        wait_for(lambda: c["k"] == 2)
        c.set_healing(enabled=False)
        settles(lambda: c.healing_stats()["total_sampled"])  # after the interval under way, if any
    wait_for(lambda: len(healer_threads()) == before)  # the with block closed it


def test_a_garbage_collected_cache_ends_its_loop() -> None:
    before = len(healer_threads())
    c = Cache(healing_enabled=True, healing_verify_interval=0.01, healing_sample_rate=1.0)
    c["k"] = 1
    c.register_source("", lambda k: 1)
    wait_for(lambda: c.healing_stats()["total_sampled"] > 2)
    assert len(healer_threads()) == before + 1
    del c
    gc.collect()
    wait_for(lambda: len(healer_threads()) == before)


@pytest.mark.asyncio
async def test_concurrent_intervals_do_not_overlap_and_cancelling_one_ends_it() -> None:
    c = Cache(healing_sample_rate=1.0)
    c["k"] = 1
    gate = asyncio.Event()
    started = asyncio.Event()
    cancelled = 0

    async def source(key: str) -> int:
        nonlocal cancelled
        started.set()
        try:
            await gate.wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return 1

    c.register_source("", source)
    first = asyncio.ensure_future(c.verify_now())
    await asyncio.wait_for(started.wait(), 10)
    assert (await c.verify_now())["overlapped"] is True
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    deadline = asyncio.get_running_loop().time() + 10
    while not cancelled and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    assert cancelled == 1, "the source's task is cancelled with the interval"
    gate.set()
    r = await c.verify_now()
    assert (r["overlapped"], r["consistent"]) == (False, 1)


EXIT_SCRIPT = r"""
import asyncio, random, sys, time, healcache

def slow(key):
    time.sleep(0.001)
    return int(key[2:]) + 1

async def aslow(key):
    await asyncio.sleep(0.001)
    return int(key[2:]) + 1

caches = []
for n in range(3):
    c = healcache.Cache(healing_enabled=True, healing_verify_interval=0.005, healing_sample_rate=1.0,
                        healing_source_timeout=0.05)
    for i in range(100):
        c[f"s:{i}"] = i
        c[f"a:{i}"] = i
    c.register_source("s:", slow)
    c.register_source("a:", aslow)
    caches.append(c)

async def main():
    caches[0].register_source("a:", aslow)   # on this loop, closed at the end of asyncio.run
    await caches[0].verify_now()

asyncio.run(main())
time.sleep(random.random() * 0.05)
if len(sys.argv) > 1:
    del caches[1]
# the interpreter exits now, while intervals and source calls are under way
"""


def test_exit_while_healing_runs_never_aborts() -> None:
    for i in range(12):
        args = [sys.executable, "-c", EXIT_SCRIPT] + (["drop"] if i % 2 else [])
        r = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
        assert "Fatal Python error" not in r.stderr, r.stderr[-2000:]


# --- HTTP sources -----------------------------------------------------------------------------------


class Api(http.server.BaseHTTPRequestHandler):
    """users/<key>: the user as JSON; "missing" -> 404, "boom" -> 500, "moved" -> 302."""

    users: dict[str, Any] = {}
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        Api.paths.append(self.path)
        _, kind, segment = self.path.split("/")[:3]
        key = urllib.parse.unquote(segment)
        if key.startswith("slow"):
            time.sleep(0.5)
        if key == "boom":
            self.send_response(500)
            self.end_headers()
            return
        if key == "moved":
            self.send_response(302)
            self.send_header("Location", "/users/1")
            self.end_headers()
            return
        if key not in Api.users:
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps(Api.users[key]).encode() if kind == "json" else str(Api.users[key]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    Api.paths = []
    Api.users = {"1": {"name": "Ada"}, "2": {"name": "Grace"}, "../admin": {"name": "root"}, "a b": "spaced"}
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_source_json_not_found_and_failures(api: str) -> None:
    c = Cache(healing_sample_rate=1.0)
    c["1"] = {"name": "Ada"}  # consistent: parsed JSON compares structurally
    c["2"] = {"name": "old"}  # drift
    c["missing"] = {"name": "x"}  # 404: removed
    c["boom"] = {"name": "y"}  # 500: a failure, kept
    c["moved"] = {"name": "z"}  # redirects are not followed: a failure
    c.register_source("", api + "/json/{key}", decode="json", allow_private=["127.0.0.1"])
    r = c.verify_now_sync()
    assert (r["consistent"], r["drift"], r["repaired"], r["failures"]) == (1, 2, 2, 2), r
    assert c["2"] == {"name": "Grace"} and "missing" not in c
    assert c["boom"] == {"name": "y"} and c["moved"] == {"name": "z"}
    assert c.healing_stats()["source_failures"] == 2


def test_http_source_follows_a_source_timeout_set_after_its_registration(api: str) -> None:
    # P1: every check of a source ends by the current `source_timeout`, raised or lowered
    Api.users["slow"] = "s"
    c = Cache(healing_sample_rate=1.0, healing_source_timeout=0.2)
    c["slow"] = "s"
    c.register_source("", api + "/text/{key}", decode="text", allow_private=["127.0.0.1"])
    c.set_healing(source_timeout=3)
    r = c.verify_now_sync()
    assert (r["consistent"], r["failures"]) == (1, 0), r


@pytest.mark.asyncio
async def test_http_source_from_asyncio(api: str) -> None:
    c = Cache(healing_sample_rate=1.0)
    c["2"] = {"name": "old"}
    c["1"] = {"name": "Ada"}
    c.register_source("", api + "/json/{key}", decode="json", allow_private=["127.0.0.1"])
    r = await c.verify_now()
    assert (r["consistent"], r["repaired"]) == (1, 1)
    assert c["2"] == {"name": "Grace"}


def test_http_source_bytes_and_text(api: str) -> None:
    c = Cache(healing_sample_rate=1.0)
    c["b:a b"] = b"stale"
    c.register_source("b:", api + "/users/{key}", allow_private=True)
    Api.users["b:a b"] = "fresh"
    assert c.verify_now_sync()["repaired"] == 1
    assert c["b:a b"] == b"fresh"
    t = Cache(healing_sample_rate=1.0)
    t["t:x"] = "fresh"
    Api.users["t:x"] = "fresh"
    t.register_source("t:", api + "/users/{key}", decode="text", allow_private=True)
    assert t.verify_now_sync()["consistent"] == 1


def test_http_hostile_keys_stay_one_path_segment(api: str) -> None:
    c = Cache(healing_sample_rate=1.0)
    for k in ["../admin", "a b", "..", "."]:
        c[k] = "stale"
    c.register_source("", api + "/users/{key}/", allow_private=["127.0.0.1"])
    r = c.verify_now_sync()
    # "." and ".." cannot name a resource: refused, skipped, never asked, not failures
    assert (r["verified"], r["skipped"], r["failures"]) == (2, 2, 0), r
    assert sorted(Api.paths) == ["/users/..%2Fadmin/", "/users/a%20b/"]
    assert c["../admin"] == b"{'name': 'root'}"


def test_http_sources_refuse_non_public_destinations_by_default(api: str) -> None:
    c = Cache(healing_sample_rate=1.0)
    c["1"] = "stale"
    c.register_source("", api + "/json/{key}", decode="json")
    r = c.verify_now_sync()
    assert (r["failures"], r["repaired"]) == (1, 0), r
    assert Api.paths == [], "a refused destination was contacted"
    c.register_source("", api + "/json/{key}", decode="json", allow_private=["api.internal"])
    assert c.verify_now_sync()["failures"] == 1 and Api.paths == []
    c.register_source("", api + "/json/{key}", decode="json", allow_private=["127.0.0.1"])
    assert c.verify_now_sync()["repaired"] == 1
    with pytest.raises(TypeError):
        c.register_source("", api + "/json/{key}", allow_private="127.0.0.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.register_source("", lambda k: 1, allow_private=True)


def test_http_templates_refused_at_registration() -> None:
    c = Cache()
    for template in [
        "http://{key}.example.com/x",
        "http://example.com/users/pre{key}",
        "http://example.com/users",
        "ftp://example.com/{key}",
        "not a url {key}",
    ]:
        with pytest.raises(healcache.InvalidConfig):
            c.register_source("", template)
    with pytest.raises(healcache.InvalidConfig) as e:
        c.register_source("", "http://127.0.0.1:9/{key}", decode="xml")  # type: ignore[arg-type]
    assert e.value.field == "decode"
    assert c.scores() == []


def test_background_healing_does_not_start_again_after_close() -> None:
    """Nothing hidden: after close() the settings say healing is off, and turning it on again
    raises Closed and changes nothing; verify_now still works."""
    c = Cache(healing_enabled=True, healing_verify_interval=3600)
    c.close()
    assert c.healing_config()["enabled"] is False
    with pytest.raises(healcache.Closed):
        c.set_healing(enabled=True, sample_rate=0.5)
    with pytest.raises(healcache.Closed):
        c.config_set("healing.enabled", True)
    config = c.healing_config()
    assert (config["enabled"], config["sample_rate"]) == (False, 0.01)
    c.set_healing(sample_rate=0.5)  # anything but turning it on is still taken
    assert c.healing_config()["sample_rate"] == 0.5
    c.set("u:1", 1)
    c.register_source("u:", lambda key: 2)
    assert c.verify_now_sync()["drift"] == 1


def test_http_source_max_body_bytes_is_the_largest_body_taken(api: str) -> None:
    # P5: a body of exactly `max_body_bytes` is the value; one byte more is a failed answer
    Api.users["big"] = "x" * 1000
    for cap, repaired, failures in [(1000, 1, 0), (999, 0, 1)]:
        c = Cache(healing_sample_rate=1.0)
        c["big"] = "stale"
        c.register_source("", api + "/text/{key}", decode="text", allow_private=["127.0.0.1"], max_body_bytes=cap)
        r = c.verify_now_sync()
        assert (r["repaired"], r["failures"]) == (repaired, failures), (cap, r)
        assert c["big"] == ("x" * 1000 if repaired else "stale")


def test_http_source_max_body_bytes_is_checked_at_registration() -> None:
    c = Cache()
    template = "http://example.com/users/{key}"
    c.register_source("a", template, max_body_bytes=1)
    c.register_source("b", template, max_body_bytes=2**64 - 1)  # the bound of Rust's `usize`
    for bad in (0, -1, 2**64, True, False):
        with pytest.raises(healcache.InvalidConfig) as ei:
            c.register_source("c", template, max_body_bytes=bad)
        assert ei.value.field == "max_body_bytes" and "`max_body_bytes`" in str(ei.value)
    for wrong in (1.5, "1024"):
        with pytest.raises(TypeError, match="`max_body_bytes`"):
            c.register_source("c", template, max_body_bytes=wrong)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`max_body_bytes`"):  # applies to URL templates only
        c.register_source("c", lambda k: 1, max_body_bytes=1024)
    assert [s["prefix"] for s in c.scores()] == ["a", "b"]
