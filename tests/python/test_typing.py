"""The stubs type what users write: every ```python block of README.md and docs/*.md passes
`mypy --strict` as written, `Cache[V]` and `Fetched[V]` carry the value type, loaders' results are
inferred (async, plain, inside `asyncio.gather`), and the checker rejects what is wrong."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from test_readme import PYTHON, ROOT, Block


def mypy_strict(src: pathlib.Path) -> subprocess.CompletedProcess[str]:
    # the docs' test examples import the test kit (tests/python/rediskit.py): found, not checked
    kit = pathlib.Path(__file__).resolve().parent
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", "/dev/null",
         "--follow-imports=silent", str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=src.parent,
        env={**os.environ, "MYPYPATH": str(kit)},
    )


@pytest.mark.parametrize("block", PYTHON, ids=[f"{b.doc}:{b.line}" for b in PYTHON])
def test_python_block_passes_mypy_strict(block: Block, tmp_path: pathlib.Path) -> None:
    src = tmp_path / f"{pathlib.Path(block.doc).stem}_{block.line}.py"
    src.write_text(block.src, encoding="utf-8")
    r = mypy_strict(src)
    assert r.returncode == 0, f"{ROOT / block.doc}:{block.line}\n{r.stdout}{r.stderr}"


TYPED = """
    import asyncio
    from dataclasses import dataclass
    from datetime import timedelta
    from typing import Any, Optional, Union

    from typing_extensions import assert_type

    import healcache
    from healcache import NOT_FOUND, Cache, CacheInfo, Fetched, NotFoundType


    @dataclass
    class User:
        id: int


    users: Cache[User] = Cache(max_entries=10, ttl=timedelta(minutes=1))
    assert_type(users.get("u"), Optional[User])
    assert_type(users.get("u", 0), Union[User, int])
    assert_type(users.peek("u"), Optional[User])
    assert_type(users["u"], User)
    assert_type(users.keys(), list[str])
    for key in users:
        assert_type(key, str)
    plain = Cache()
    assert_type(plain.get("k"), Optional[Any])


    async def load(key: str) -> Union[User, NotFoundType]:
        return User(1) if key else NOT_FOUND


    async def main() -> None:
        u = await users.get_or_load("u", lambda: load("u"))
        assert_type(u, User)
        many = await asyncio.gather(*[users.get_or_load("u", lambda: load("u")) for _ in range(3)])
        assert_type(many, list[User])
        f = await users.fetch("u", lambda: load("u"))
        assert_type(f, Fetched[User])
        assert_type(f.value, Optional[User])
        n = await plain.get_or_load("n", lambda: 3)
        assert_type(n, int)
        s = await plain.fetch("s", lambda: "text")
        assert_type(s.value, Optional[str])
        async with Cache[int]() as c:
            assert_type(c, Cache[int])
    assert_type(users.get_or_load_sync("u", lambda: User(2)), User)


    @users.cached
    def square(x: int) -> int:
        return x * x


    assert_type(square(3), int)
    assert_type(square.cache_info(), CacheInfo)
    square.cache_clear()


    @users.cached(ttl=timedelta(seconds=5))
    async def double(x: int) -> int:
        return 2 * x


    async def use() -> int:
        return await double(2)
"""


def test_generic_cache_and_inferred_loaders(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "typed.py"
    src.write_text(textwrap.dedent(TYPED), encoding="utf-8")
    r = mypy_strict(src)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "line",
    [
        "users.set('u', 'not a user')",
        "users['u'] = 3",
        "n: int = users.get('u')",
        "plain.get_or_load_sync('k', lambda: 3).upper()",
        "square('three')",
    ],
)
def test_mypy_rejects_wrong_use(line: str, tmp_path: pathlib.Path) -> None:
    # The checks above must not pass because everything is Any: each of these is an error.
    src = tmp_path / "wrong.py"
    src.write_text(textwrap.dedent(TYPED) + line + "\n", encoding="utf-8")
    r = mypy_strict(src)
    assert r.returncode == 1 and f"wrong.py:{len(textwrap.dedent(TYPED).splitlines()) + 1}:" in r.stdout, r.stdout
