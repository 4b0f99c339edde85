"""The shipped `.pyi` stubs match the runtime module (mypy.stubtest), and the package is typed."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import typing

import healcache


def test_py_typed_and_stub_are_installed() -> None:
    pkg = pathlib.Path(healcache.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "__init__.pyi").exists()


def test_stubtest() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "healcache", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_accepts_typed_usage(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "usage.py"
    src.write_text(
        "import healcache\n"
        "c = healcache.Cache(max_entries=10, ttl=1.5)\n"
        "v: int = c.set('k', 1, ttl=2)\n"
        "s: healcache.Stats = c.stats()\n"
        "n: int = s['hits']\n"
        "@c.cached(key=lambda x: str(x))\n"
        "def f(x: int) -> int:\n"
        "    return x\n"
        "r: int = f(1)\n"
        "async def g() -> str:\n"
        "    return await c.get_or_load('k', lambda: 'v')\n"
        "c2 = healcache.Cache(ttl=1, grace=5, stale_while_revalidate=True, negative_ttl=0.5, xfetch=True)\n"
        "async def h() -> None:\n"
        "    f: healcache.Fetched = await c2.fetch('k', lambda: healcache.NOT_FOUND, soft_timeout=0.1)\n"
        "    st: healcache.Status = f.status\n"
        "    value, status = await c2.fetch('k', lambda: 1, xfetch=False)\n"
        "    text: str = c2.prometheus('users')\n"
        "    n: int = c2.stats()['negative_hits'] + c2.stats()['load_latency']['sum_nanos']\n"
    )
    _mypy_strict(src)


def test_mypy_accepts_typed_healing_usage(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "healing_usage.py"
    src.write_text(
        "import asyncio\n"
        "import healcache\n"
        "c = healcache.Cache(healing_sample_rate=0.5, healing_verify_interval=1, healing_comparator=lambda a, b: a == b)\n"
        "c.register_source('user:', lambda k: healcache.NOT_FOUND)\n"
        "c.register_source('api:', 'http://127.0.0.1:9/users/{key}', decode='json')\n"
        "async def load(key: str) -> bytes:\n"
        "    return b''\n"
        "c.register_source('bin:', load)\n"
        "r: healcache.IntervalReport = c.verify_now_sync()\n"
        "n: int = r['repaired'] + c.healing_stats()['total_sampled'] + c.stats()['healing']['source_failures']\n"
        "s = c.score('user:')\n"
        "f: float = s['score'] if s is not None else 1.0\n"
        "prefixes: list[str] = [p['prefix'] for p in c.scores()]\n"
        "events: list[healcache.DriftEvent] = c.drift_events()\n"
        "c.set_healing(enabled=True, sample_rate=0.02)\n"
        "c.config_set('healing.sample_rate', '0.02')\n"
        "v: str = c.config_get('healing.sample_rate')\n"
        "w: int = c.healing_config()['score_window']\n"
        "ok: bool = c.unregister_source('user:')\n"
        "async def main() -> None:\n"
        "    rep = await c.verify_now()\n"
        "    d: int = rep['drift']\n"
        "with healcache.Cache() as c2:\n"
        "    c2.close()\n"
    )
    _mypy_strict(src)


def _mypy_strict(src: pathlib.Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def _stub() -> ast.Module:
    return ast.parse((pathlib.Path(healcache.__file__).parent / "__init__.pyi").read_text())


def _stub_typeddict_keys(name: str) -> set[str]:
    (cls,) = [n for n in _stub().body if isinstance(n, ast.ClassDef) and n.name == name]
    return {s.target.id for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


def test_stub_all_equals_runtime_all() -> None:
    """What `from healcache import *` gives is what the stubs declare it gives, name for name."""
    (stub_all,) = [
        ast.literal_eval(n.value)
        for n in _stub().body
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)
    ]
    assert len(set(stub_all)) == len(stub_all) and len(set(healcache.__all__)) == len(healcache.__all__)
    assert set(stub_all) == set(healcache.__all__)


def test_stats_typeddicts_have_the_keys_stats_returns() -> None:
    """`Stats` (the stub's and the runtime's) declares exactly the keys `stats()` returns, no more
    and no fewer, and so do the dicts nested in it (`load_latency`, `healing`...)."""
    stats = healcache.Cache().stats()
    assert set(healcache.Stats.__annotations__) == set(stats)
    assert _stub_typeddict_keys("Stats") == set(stats)
    hints = typing.get_type_hints(healcache.Stats)
    for key, value in stats.items():
        if isinstance(value, dict):
            nested = hints[key]
            assert set(nested.__annotations__) == set(value), key
            assert _stub_typeddict_keys(nested.__name__) == set(value), key
        else:
            assert hints[key] is int and isinstance(value, int), key
