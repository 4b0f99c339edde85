"""The conformance scenarios (tests/conformance/*.json, described in its README) on the Python
surface: the same files the Rust, Node and WASM drivers run, on a `healcache.ManualClock` and a
fixed seed. Load timeouts sleep on the binding's timer (wall time), so a scenario awaiting one
waits those few milliseconds. Writes target/conformance/python.json for the README's matrix."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import math
from typing import Any, Callable, Dict, Iterator

import cachetools
import pytest
from conformance_kit import SCENARIOS, record, run_steps, write_results

import healcache
from healcache import NOT_FOUND, Cache, ManualClock
from healcache._healcache import _settings

DURATIONS = {name for name, _, unit in _settings() if unit == "duration"}


class ScenarioError(Exception):
    """A scripted loader's or source's own error."""


def outcome(e: BaseException) -> Any:
    if isinstance(e, ScenarioError):
        return {"error": "LoaderError", "message": str(e)}
    if isinstance(e, healcache.HealcacheError):
        field = getattr(e, "field", None)
        # Python's keyword for a healing setting is its name after `healing_`
        if isinstance(field, str) and field.startswith("healing_"):
            field = field[len("healing_") :]
        return {"error": e.code, "field": field}
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


def ttl(st: Dict[str, Any]) -> Any:
    t = st.get("ttl")
    return math.inf if t == "never" else None if t is None else t / 1000


def entry(e: Any) -> Any:
    return e and {"value": e[0], "version": e[1], "expires_in": None if e[2] is None else e[2] * 1000}


# Every step but starting and cancelling a call: op -> (run, step) -> what it gives (or awaits).
OPS: Dict[str, Callable[[Run, Dict[str, Any]], Any]] = {
    "set": lambda r, st: r.cache.set(st["key"], st["value"], ttl=ttl(st), if_version=st.get("if_version")),
    "get": lambda r, st: r.cache.get(st["key"]),
    "get_entry": lambda r, st: entry(r.cache.get_entry(st["key"])),
    "contains": lambda r, st: st["key"] in r.cache,
    "version": lambda r, st: r.cache.version(st["key"]),
    "delete": lambda r, st: r.cache.delete(st["key"], if_version=st.get("if_version")),
    "len": lambda r, st: len(r.cache),
    "clear": lambda r, st: r.cache.clear(),
    "purge_expired": lambda r, st: r.cache.purge_expired(),
    "advance": lambda r, st: r.clock.advance(st["ms"] / 1000),
    "release": lambda r, st: r.gates[st["gate"]].set(),
    "stats": lambda r, st: r.cache.stats(),
    "register_source": lambda r, st: r.register_source(st),
    "score": lambda r, st: r.cache.score(st["prefix"]),
    "drift_events": lambda r, st: r.cache.drift_events(),
    "healing_stats": lambda r, st: r.cache.healing_stats(),
    "verify_now": lambda r, st: r.cache.verify_now(),
    "await": lambda r, st: r.wait(*r.calls.pop(st["id"])),
    "settle": lambda r, st: r.settle(),
}


class Run:
    def __init__(self, s: Dict[str, Any]) -> None:
        self.clock: ManualClock = ManualClock()
        self.cache: Cache[Any] = build(s, self.clock)
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
            call = self.cache.fetch if st["op"] == "fetch" else self.cache.get_or_load
            return call(st["key"], self.loader(st["loader"]), **o)
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
        # bounded by time, not by a count of 2 ms sleeps (each may take far longer on a loaded machine)
        end = asyncio.get_running_loop().time() + 10
        while True:
            await asyncio.sleep(0.002)
            if self.cache.stats()["in_flight"] == 0 or asyncio.get_running_loop().time() > end:
                break
        await asyncio.sleep(0.002)

    def register_source(self, st: Dict[str, Any]) -> bool:
        """Registers the step's scripted source of truth."""

        def answer(key: str) -> Any:
            a = st["answers"].get(key)
            if a is None or "error" in a:
                raise ScenarioError("source down")
            return NOT_FOUND if "not_found" in a else a["value"]

        self.cache.register_source(st["prefix"], answer)
        return True

    async def step(self, st: Dict[str, Any]) -> Any:
        op = st["op"]
        try:
            if op in OPS:
                got = OPS[op](self, st)
                return await got if inspect.isawaitable(got) else got
            if op in ("fetch", "get_or_load"):
                call = self.start(st)
                if "id" not in st:
                    return await self.wait(call, op == "fetch")
                self.calls[st["id"]] = (call, op == "fetch")
                return await asyncio.sleep(0)
            if op == "cancel":
                self.calls[st["id"]][0].cancel()
                return await asyncio.sleep(0)
        except Exception as e:
            return outcome(e)
        raise AssertionError(f"unknown op {op}")


@pytest.fixture(scope="module", autouse=True)
def results() -> Iterator[None]:
    yield from write_results("python")


@pytest.mark.parametrize("s", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario(s: Dict[str, Any]) -> None:
    record(s, "python", lambda: asyncio.run(run_steps(s, lambda: Run(s), outcome)))


def test_the_test_clock_refuses_what_is_not_a_duration_and_serves_cachetools() -> None:
    clock = ManualClock()
    for bad in (-1, math.nan, math.inf):
        with pytest.raises(healcache.InvalidConfig):
            clock.advance(bad)
    assert clock() < 1e-6
    with pytest.raises(healcache.InvalidConfig, match="clock"):
        Cache(clock=lambda: 0.0)  # type: ignore[arg-type]  # a Python callable would be called under the cache's locks
    theirs: cachetools.TTLCache[str, str] = cachetools.TTLCache(maxsize=10, ttl=1, timer=clock)
    ours: Cache[str] = Cache(ttl=1, clock=clock)
    ours["k"] = theirs["k"] = "v"
    clock.advance(datetime.timedelta(milliseconds=999))
    assert (ours.get("k"), theirs.get("k")) == ("v", "v")
    clock.advance(0.001)
    assert (ours.get("k"), theirs.get("k")) == (None, None)
