"""What every Python conformance driver shares besides its table of ops: the scenarios of
tests/conformance/*.json, the one matcher of `expect`, the run of a scenario's steps, and the
results file that tests/conformance/matrix.py reads (target/conformance/python.json)."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Callable, Dict, Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIOS = [s for f in sorted((ROOT / "tests/conformance").glob("*.json")) for s in json.loads(f.read_text())["scenarios"]]
RESULTS: Dict[str, Dict[str, Any]] = {}


def matches(expect: Any, actual: Any) -> bool:
    """Objects by the keys expected, lists item by item, numbers within 1e-6."""
    if isinstance(expect, dict):
        return isinstance(actual, dict) and all(matches(v, actual.get(k)) for k, v in expect.items())
    if isinstance(expect, list):
        return isinstance(actual, list) and len(expect) == len(actual) and all(map(matches, expect, actual))
    if isinstance(expect, (int, float)) and not isinstance(expect, bool):
        return isinstance(actual, (int, float)) and not isinstance(actual, bool) and abs(expect - actual) < 1e-6
    if isinstance(expect, bool):  # True == 1 in Python: a boolean matches only a boolean
        return expect is actual
    return bool(expect == actual)


async def run_steps(s: Dict[str, Any], build: Callable[[], Any], outcome: Callable[[BaseException], Any]) -> None:
    """Builds the scenario's run (or checks its `build_error`), then checks each step's `expect`
    against what `run.step` gives, and lets background work finish (`run.settle`)."""
    try:
        r = build()
    except Exception as e:
        assert "build_error" in s, f"build: {e!r}"
        assert matches(s["build_error"], outcome(e)), f"expected {s['build_error']}, got {outcome(e)}"
        return
    assert "build_error" not in s, f"built, expected {s['build_error']}"
    for i, st in enumerate(s["steps"]):
        got = await r.step(st)
        if "expect" in st:
            assert matches(st["expect"], got), f"step {i} ({st['op']}): expected {st['expect']}, got {got}"
        else:
            # a step that states nothing must still succeed: an error there would pass unseen
            assert not (isinstance(got, dict) and "error" in got), f"step {i} ({st['op']}): no expect, got {got}"
    await r.settle()


def record(s: Dict[str, Any], surface: str, run: Callable[[], None]) -> None:
    """Runs one scenario by `run` (or skips it with its reason for `surface`), recording the result."""
    why = s.get("skip", {}).get(surface)
    if why:
        RESULTS[s["name"]] = {"feature": s["feature"], "result": "skip", "reason": why}
        pytest.skip(why)
    RESULTS[s["name"]] = {"feature": s["feature"], "result": "fail", "reason": "did not finish"}
    try:
        run()
    except AssertionError as e:
        RESULTS[s["name"]]["reason"] = str(e)
        raise
    RESULTS[s["name"]] = {"feature": s["feature"], "result": "pass", "reason": ""}


def write_results(surface: str) -> Iterator[None]:
    """A module fixture's body: writes the recorded results once the module's tests ran."""
    yield
    out = ROOT / "target/conformance"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{surface}.json").write_text(json.dumps({"surface": surface, "scenarios": RESULTS}, indent=2))
