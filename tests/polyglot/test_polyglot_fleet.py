"""Three languages, one fleet: a Rust, a Python and a Node process, each with its own cache on one
real redis-server (default settings), read each other's entries with their types, and drop their
L1 copies when any one of them writes or deletes (the invalidation bus), within the bound
docs/shared-tier.md states."""

from __future__ import annotations

import pytest

from fleet import Member
from rediskit import redis_server_module  # noqa: F401 (fixture)

LANGS = ("rust", "python", "node")
# docs/shared-tier.md, "Other instances' copies": a copy is dropped when the message arrives,
# or distrusted once a lost message or a silent bus is noticed; either way within this bound.
INVALIDATION_BOUND_MS = 1100

VALUES = {
    "text": "héllo, wörld ✓",
    "int": 42,
    "negative": -7,
    "float": 3.25,
    "big": {"$int": str(2**63 - 1)},
    "most-negative": {"$int": str(-(2**63))},
    "nested": {"name": "Ada", "langs": ["en", "fr"], "n": [1, 2.5, {"deep": [True, None, "x"]}], "empty": {}},
    "bytes": {"$bytes": "00ff7f80"},
}


@pytest.fixture(scope="module")
def fleet(redis_server_module):
    members = {}
    try:
        for lang in LANGS:
            members[lang] = Member(lang, redis_server_module.url)
        yield members
    finally:
        for m in members.values():
            m.close()


@pytest.mark.parametrize("writer", LANGS)
def test_each_language_reads_what_another_wrote(fleet, writer):
    for kind, value in VALUES.items():
        fleet[writer].ask(op="set", key=f"{writer}:{kind}", value=value)
    for reader in LANGS:
        if reader == writer:
            continue
        for kind, value in VALUES.items():
            got = fleet[reader].ask(op="fetch", key=f"{writer}:{kind}")
            assert (got["status"], got["value"]) == ("l2-hit", value), f"{writer} -> {reader}: {kind}"
    # and a key nobody wrote is a miss everywhere
    for reader in LANGS:
        assert fleet[reader].ask(op="fetch", key=f"{writer}:never")["status"] == "miss"


def hold_everywhere(fleet, key, value):
    """Every instance holds `key` in L1: a second fetch is a hit of `value`."""
    for m in fleet.values():
        m.ask(op="fetch", key=key)
    for lang, m in fleet.items():
        got = m.ask(op="fetch", key=key)
        assert (got["status"], got["value"]) == ("hit", value), lang


def invalidated(fleet):
    return {lang: m.ask(op="stats")["l2_bus_invalidated"] for lang, m in fleet.items()}


@pytest.mark.parametrize("setter,deleter", [("rust", "python"), ("python", "node"), ("node", "rust")])
def test_a_write_or_delete_anywhere_drops_the_other_copies(fleet, setter, deleter):
    key = f"shared:{setter}:{deleter}"
    first = next(lang for lang in LANGS if lang not in (setter, deleter)) if setter != deleter else "rust"
    fleet[first].ask(op="set", key=key, value={"v": 0})
    hold_everywhere(fleet, key, {"v": 0})

    # a set in one: the other two read the new value from L2, once the bus dropped their copy
    before = invalidated(fleet)
    at = fleet[setter].ask(op="set", key=key, value={"v": 1, "by": setter})["at_us"]
    for lang in LANGS:
        if lang == setter:
            continue
        got = fleet[lang].ask(op="await", key=key, want={"v": 1, "by": setter}, since_us=at,
                              deadline_ms=2 * INVALIDATION_BOUND_MS)
        assert (got["status"], got["value"]) == ("l2-hit", {"v": 1, "by": setter}), lang
        assert got["after_ms"] <= INVALIDATION_BOUND_MS, (lang, got)
    after = invalidated(fleet)
    assert {lang: after[lang] - before[lang] for lang in LANGS} == {lang: int(lang != setter) for lang in LANGS}

    # a delete in one: the other two read a miss
    hold_everywhere(fleet, key, {"v": 1, "by": setter})
    before = after
    at = fleet[deleter].ask(op="delete", key=key)["at_us"]
    for lang in LANGS:
        if lang == deleter:
            continue
        got = fleet[lang].ask(op="await", key=key, since_us=at, deadline_ms=2 * INVALIDATION_BOUND_MS)
        assert got["status"] == "miss", (lang, got)
        assert got["after_ms"] <= INVALIDATION_BOUND_MS, (lang, got)
    assert fleet[deleter].ask(op="fetch", key=key)["status"] == "miss"
    after = invalidated(fleet)
    assert {lang: after[lang] - before[lang] for lang in LANGS} == {lang: int(lang != deleter) for lang in LANGS}
