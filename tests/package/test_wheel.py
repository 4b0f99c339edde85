"""The wheel of `make wheel` (target/wheels, or HEALCACHE_WHEEL_DIR) is what pip users get: an
abi3 manylinux wheel, installed into a fresh venv with no Rust toolchain on PATH (nothing is
compiled), typed, and working."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WHEELS = pathlib.Path(os.environ.get("HEALCACHE_WHEEL_DIR", ROOT / "target" / "wheelhouse")).resolve()


def the_wheel() -> pathlib.Path:
    wheels = sorted(WHEELS.glob("healcache-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {WHEELS} (make wheel), found {wheels}"
    return wheels[0]


def test_the_wheel_is_abi3_and_manylinux() -> None:
    name = the_wheel().name
    assert "-cp39-abi3-" in name, name
    if sys.platform.startswith("linux"):
        assert "manylinux_" in name, name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="auditwheel checks Linux wheels")
def test_auditwheel_agrees_with_the_tag() -> None:
    wheel = the_wheel()
    tag = wheel.name.rsplit("-", 1)[1].removesuffix(".whl")
    r = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f'consistent with\nthe following platform tag: "{tag}"' in r.stdout, r.stdout


EXAMPLE = """
    import asyncio, pathlib, sys
    import healcache

    assert pathlib.Path(healcache.__file__).is_relative_to(sys.prefix), healcache.__file__
    pkg = pathlib.Path(healcache.__file__).parent
    assert (pkg / "py.typed").exists() and (pkg / "__init__.pyi").exists()

    cache: healcache.Cache[dict] = healcache.Cache(max_entries=100, ttl=60)
    calls = 0

    async def load() -> dict:
        global calls
        calls += 1
        await asyncio.sleep(0.01)
        return {"id": 7}

    async def main() -> None:
        got = await asyncio.gather(*[cache.get_or_load("user:7", load) for _ in range(50)])
        assert calls == 1 and all(g is got[0] for g in got)

    asyncio.run(main())
    assert sorted(cache) == ["user:7"] and cache.stats()["loads"] == 1
    print("ok", healcache.__version__)
"""


def test_installs_into_a_fresh_venv_without_rust_and_runs(tmp_path: pathlib.Path) -> None:
    wheel = the_wheel()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # PATH without any Rust toolchain: a wheel that needed compiling would fail here.
    path = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (pathlib.Path(d) / "cargo").exists()
    )
    assert shutil.which("cargo", path=path) is None and shutil.which("rustc", path=path) is None
    env = {**os.environ, "PATH": path, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("CARGO_TARGET_DIR", None)
    py = venv / "bin" / "python"
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-index", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(
        [str(py), "-c", textwrap.dedent(EXAMPLE)], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok "), r.stdout
