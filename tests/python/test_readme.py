"""Documentation examples are tests: every ```python block of README.md and docs/*.md runs as
written, and every other block is one that some suite runs (Rust blocks as doctests of the README,
js blocks in tests/js/readme.test.mjs) or a shell line whose commands exist."""

from __future__ import annotations

import json
import pathlib
import re
import shlex
import subprocess
from typing import NamedTuple

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.S | re.M)


class Block(NamedTuple):
    doc: str
    line: int
    tag: str
    src: str


def fenced_blocks() -> list[Block]:
    blocks = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            blocks.append(Block(str(path.relative_to(ROOT)), line, m.group(1), m.group(2)))
    return blocks


BLOCKS = fenced_blocks()
PYTHON = [b for b in BLOCKS if b.tag == "python"]


def test_readme_has_a_python_example() -> None:
    assert any(b.doc == "README.md" for b in PYTHON), "no ```python block in the README"


def test_readme_reads_in_ten_minutes() -> None:
    # A user's page, not a log: history lives in CHANGELOG.md and figures in docs/benchmarks.md.
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 410, f"README.md has {lines} lines; move detail into docs/"


@pytest.mark.parametrize("block", PYTHON, ids=[f"{b.doc}:{b.line}" for b in PYTHON])
def test_python_block_runs(block: Block) -> None:
    code = compile(block.src, f"{ROOT / block.doc}:{block.line}", "exec")
    exec(code, {"__name__": "readme_example"})


def test_every_block_is_run_by_some_suite() -> None:
    # rust: doctests of the README only (core/src/lib.rs includes README.md); python: here;
    # js: tests/js/readme.test.mjs; sh: checked below; console (docs/ only): command lines of the
    # Redis tools and the server, which the server's client tests drive; yaml (the runbook's):
    # Prometheus configuration, checked below by promtool. Anything else would never run.
    not_run = [
        f"{b.doc}:{b.line} ({b.tag or 'untagged'})"
        for b in BLOCKS
        if not (
            b.tag in ("python", "js", "sh")
            or (b.tag == "rust" and b.doc == "README.md")
            or (b.tag == "console" and b.doc.startswith("docs/"))
            or (b.tag == "yaml" and b.doc == "docs/runbook.md")
        )
    ]
    assert not_run == [], "blocks no suite runs"


CONSOLE_TOOLS = {"redis-cli", "redis-benchmark", "healcache-server", "cargo"}


def test_console_lines_name_known_tools() -> None:
    for block in (b for b in BLOCKS if b.tag == "console"):
        for line in block.src.splitlines():
            words = shlex.split(line.split(" #", 1)[0]) if line.strip() else []
            if words:
                assert words[0] in CONSOLE_TOOLS, f"{block.doc}:{block.line}: {line}"


def make_targets() -> set[str]:
    targets: set[str] = set()
    for mk in [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]:
        for line in mk.read_text(encoding="utf-8").splitlines():
            m = re.match(r"^([A-Za-z0-9_. -]+):(?!=)", line)
            if m:
                targets.update(t for t in m.group(1).split() if not t.startswith("."))
    return targets


def test_shell_lines_name_commands_that_exist() -> None:
    targets = make_targets()
    scripts = set(json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["scripts"])
    seen = 0
    for block in (b for b in BLOCKS if b.tag == "sh"):
        for line in block.src.splitlines():
            for command in line.split("#", 1)[0].split("&&"):
                words = shlex.split(command)
                if not words:
                    continue
                seen += 1
                where = f"{block.doc}:{block.line}: {command.strip()}"
                if words[0] == "make":
                    # VAR=value words set make variables; the rest must be targets
                    assert {w for w in words[1:] if "=" not in w} <= targets, where
                elif words[:2] == ["npm", "run"]:
                    assert words[2] in scripts, where
                else:
                    assert words[:2] in (["npm", "install"], ["pip", "install"]), where
    assert seen > 0, "no shell lines found: the parser no longer matches the documents"


def test_make_targets_named_in_the_text_exist() -> None:
    targets = make_targets()
    named = {
        (str(path.relative_to(ROOT)), target)
        for path in DOCS
        for target in re.findall(r"`make ([a-z][a-z0-9-]*)`", path.read_text(encoding="utf-8"))
    }
    assert len(named) > 5, "the README names its make targets"
    assert sorted(n for n in named if n[1] not in targets) == []


PROMETHEUS_CONFIGS = [b for b in BLOCKS if b.tag == "yaml" and b.doc == "docs/runbook.md"]


@pytest.mark.parametrize("block", PROMETHEUS_CONFIGS, ids=[f"{b.doc}:{b.line}" for b in PROMETHEUS_CONFIGS])
def test_runbook_prometheus_config_is_valid(block: Block, tmp_path: pathlib.Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(block.src, encoding="utf-8")
    r = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
