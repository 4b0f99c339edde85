"""Instances of a polyglot fleet as child processes: one per language, each driven by one JSON
command per line (the protocol of redis/examples/polyglot_node.rs). Stopped by closing stdin,
then by their pid."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")


def rust_binary(name: str) -> str:
    path = TARGET / "release" / "examples" / name
    assert path.exists(), f"{path} is built by `make build-polyglot` (a prerequisite of make test-polyglot)"
    return str(path)


def node_exe() -> str:
    return os.environ.get("NODE", "node")


def argv(lang: str, url: str) -> list[str]:
    return {
        "rust": [rust_binary("polyglot_node"), "--redis", url],
        "python": [sys.executable, str(HERE / "py_node.py"), "--redis", url],
        "node": [node_exe(), str(HERE / "js_node.mjs"), "--redis", url],
    }[lang]


class Member:
    """One instance; `ask(op=..., ...)` sends a command and returns its answer."""

    def __init__(self, lang: str, url: str, timeout: float = 30.0):
        self.lang = lang
        self.timeout = timeout
        self.proc = subprocess.Popen(argv(lang, url), cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self._buf = b""
        assert self._line() == "ready", f"{lang} did not start"

    def _line(self):
        end = time.monotonic() + self.timeout
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            assert left > 0, f"{self.lang} did not answer within {self.timeout} s"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, f"{self.lang} exited ({self.proc.poll()})"
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        reply = self._line()
        assert "error" not in reply, f"{self.lang} {cmd}: {reply}"
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # each instance exits when its stdin closes
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()  # by its pid
                self.proc.wait()
        self.proc.stdout.close()
