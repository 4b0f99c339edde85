"""The conformance scenarios (tests/conformance/*.json, described in its README) on the Python
surface: the same files the Rust, Node and WASM drivers run, on a `healcache.ManualClock` and a
fixed seed. Load timeouts sleep on the binding's timer (wall time), so a scenario awaiting one
waits those few milliseconds. Writes target/conformance/python.json for the README's matrix."""

from __future__ import annotations

import asyncio
import json
import math
import pathlib
from typing import Any, Callable, Dict, Iterator

import pytest

import healcache
from healcache import NOT_FOUND, Cache, ManualClock
from healcache._healcache import _settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIOS = [s for f in sorted((ROOT / "tests/conformance").glob("*.json")) for s in json.loads(f.read_text())["scenarios"]]
DURATIONS = {name for name, _, unit in _settings() if unit == "duration"}
RESULTS: Dict[str, Dict[str, Any]] = {}


class ScenarioError(Exception):
    """A scripted loader's or source's own error."""


def outcome(e: BaseException) -> Any:
    if isinstance(e, ScenarioError):
        return {"error": "LoaderError", "message": str(e)}
    if isinstance(e, healcache.HealcacheError):
        return {"error": e.code, "field": getattr(e, "field", None)}
    raise e


def seconds(name: str, v: Any) -> Any:
    return v / 1000 if name in DURATIONS and not isinstance(v, bool) else v


def build(s: Dict[str, Any], clock: ManualClock) -> Cache:
    kw: Dict[str, Any] = {"seed": 1, "clock": clock}
    for name, v in s.get("config", {}).items():
        if name == "weigher":
            kw["weigher"] = lambda v: len(v) if isinstance(v, str) else 0
        else:
            kw[name] = seconds(name, v)
    for name, v in s.get("healing", {}).items():
        kw["healing_" + name] = seconds(name, v)
    return Cache(**kw)


def matches(expect: Any, actual: Any) -> bool:
    """Objects by the keys expected, lists item by item, numbers within 1e-6."""
    if isinstance(expect, dict):
        return isinstance(actual, dict) and all(matches(v, actual.get(k)) for k, v in expect.items())
    if isinstance(expect, list):
        return isinstance(actual, list) and len(expect) == len(actual) and all(map(matches, expect, actual))
    if isinstance(expect, (int, float)) and not isinstance(expect, bool):
        return isinstance(actual, (int, float)) and not isinstance(actual, bool) and abs(expect - actual) < 1e-6
    return bool(expect == actual)


class Run:
    def __init__(self, s: Dict[str, Any]) -> None:
        self.clock = ManualClock()
        self.cache = build(s, self.clock)
        self.gates: Dict[str, asyncio.Event] = {}
        self.calls: Dict[str, Any] = {}

    def loader(self, spec: Dict[str, Any]) -> Callable[[], Any]:
        gate = self.gates.setdefault(spec["gate"], asyncio.Event()) if "gate" in spec else None

        async def load() -> Any:
            if gate is not None:
                await gate.wait()
            if "advance" in spec:
                self.clock.advance(spec["advance"] / 1000)
            if "hang" in spec:
                await asyncio.Event().wait()
            if "error" in spec:
                raise ScenarioError(spec["error"])
            if "load" in spec:
                return await self.cache.get_or_load(spec["load"], self.loader(spec["loader"]))
            return NOT_FOUND if "not_found" in spec else spec["value"]

        return load

    def start(self, st: Dict[str, Any]) -> Any:
        o = {k: seconds(k if k != "soft_timeout" else "ttl", v) for k, v in st.get("opts", {}).items()}
        try:
            if st["op"] == "fetch":
                return self.cache.fetch(st["key"], self.loader(st["loader"]), **o)
            return self.cache.get_or_load(st["key"], self.loader(st["loader"]), **o)
        except Exception as e:  # refused before any await: the call's outcome
            return outcome(e)

    async def wait(self, call: Any, fetch: bool) -> Any:
        if not asyncio.isfuture(call) and not asyncio.iscoroutine(call):
            return call
        # not wait_for: LoadTimeout is a TimeoutError, which wait_for would take for its own
        done, _ = await asyncio.wait([asyncio.ensure_future(call)], timeout=5)
        if not done:
            return {"error": "did not end"}
        try:
            r = done.pop().result()
        except asyncio.CancelledError:
            return {"error": "Cancelled"}
        except Exception as e:
            return outcome(e)
        return {"value": r.value, "status": r.status} if fetch else r

    async def settle(self) -> None:
        """Lets background work run until no load is in flight (a hung one ends by its timeout)."""
        for _ in range(500):
            await asyncio.sleep(0.002)
            if self.cache.stats()["in_flight"] == 0:
                break
        await asyncio.sleep(0.002)

    def source(self, answers: Dict[str, Any]) -> Callable[[str], Any]:
        def answer(key: str) -> Any:
            a = answers.get(key)
            if a is None or "error" in a:
                raise ScenarioError("source down")
            return NOT_FOUND if "not_found" in a else a["value"]

        return answer

    async def step(self, st: Dict[str, Any]) -> Any:
        c, op, key = self.cache, st["op"], st.get("key", "")
        try:
            if op == "set":
                ttl = st.get("ttl")
                ttl = math.inf if ttl == "never" else None if ttl is None else ttl / 1000
                return c.set(key, st["value"], ttl=ttl, if_version=st.get("if_version"))
            if op == "get":
                return c.get(key)
            if op == "get_entry":
                e = c.get_entry(key)
                return e and {"value": e[0], "version": e[1], "expires_in": None if e[2] is None else e[2] * 1000}
            if op == "contains":
                return key in c
            if op == "version":
                return c.version(key)
            if op == "delete":
                return c.delete(key, if_version=st.get("if_version"))
            if op == "len":
                return len(c)
            if op in ("clear", "purge_expired"):
                return getattr(c, op)()
            if op == "advance":
                return self.clock.advance(st["ms"] / 1000)
            if op in ("fetch", "get_or_load"):
                call = self.start(st)
                if "id" in st:
                    self.calls[st["id"]] = (call, op == "fetch")
                    await asyncio.sleep(0)
                    return None
                return await self.wait(call, op == "fetch")
            if op == "cancel":
                self.calls[st["id"]][0].cancel()
                return await asyncio.sleep(0)
            if op == "await":
                return await self.wait(*self.calls.pop(st["id"]))
            if op == "release":
                return self.gates[st["gate"]].set()
            if op == "settle":
                return await self.settle()
            if op == "stats":
                return c.stats()
            if op == "register_source":
                c.register_source(st["prefix"], self.source(st["answers"]))
                return True
            if op == "verify_now":
                return await c.verify_now()
            if op in ("score", "drift_events", "healing_stats"):
                return getattr(c, op)(*([st["prefix"]] if "prefix" in st else []))
        except Exception as e:
            return outcome(e)
        raise AssertionError(f"unknown op {op}")


async def run(s: Dict[str, Any]) -> None:
    try:
        r = Run(s)
    except Exception as e:
        assert "build_error" in s, f"build: {e!r}"
        assert matches(s["build_error"], outcome(e)), f"expected {s['build_error']}, got {outcome(e)}"
        return
    assert "build_error" not in s, f"built, expected {s['build_error']}"
    for i, st in enumerate(s["steps"]):
        got = await r.step(st)
        if "expect" in st:
            assert matches(st["expect"], got), f"step {i} ({st['op']}): expected {st['expect']}, got {got}"
    await r.settle()


@pytest.fixture(scope="module", autouse=True)
def results() -> Iterator[None]:
    yield
    out = ROOT / "target/conformance"
    out.mkdir(parents=True, exist_ok=True)
    (out / "python.json").write_text(json.dumps({"surface": "python", "scenarios": RESULTS}, indent=2))


@pytest.mark.parametrize("s", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario(s: Dict[str, Any]) -> None:
    why = s.get("skip", {}).get("python")
    if why:
        RESULTS[s["name"]] = {"feature": s["feature"], "result": "skip", "reason": why}
        pytest.skip(why)
    RESULTS[s["name"]] = {"feature": s["feature"], "result": "fail", "reason": "did not finish"}
    try:
        asyncio.run(run(s))
    except AssertionError as e:
        RESULTS[s["name"]]["reason"] = str(e)
        raise
    RESULTS[s["name"]] = {"feature": s["feature"], "result": "pass", "reason": ""}


def test_the_test_clock_refuses_what_is_not_a_duration_and_serves_cachetools() -> None:
    import datetime

    import cachetools

    clock = ManualClock()
    for bad in (-1, math.nan, math.inf):
        with pytest.raises(healcache.InvalidConfig):
            clock.advance(bad)
    assert clock() < 1e-6
    with pytest.raises(healcache.InvalidConfig, match="clock"):
        Cache(clock=lambda: 0.0)  # a Python callable would be called under the cache's locks
    ours, theirs = Cache(ttl=1, clock=clock), cachetools.TTLCache(maxsize=10, ttl=1, timer=clock)
    ours["k"] = theirs["k"] = "v"
    clock.advance(datetime.timedelta(milliseconds=999))
    assert (ours.get("k"), theirs.get("k")) == ("v", "v")
    clock.advance(0.001)
    assert (ours.get("k"), theirs.get("k")) == (None, None)
