"""The interpreter exits cleanly right after coalesced loads: every call ends, and nothing blocks
or aborts at exit.

A completion handed back by a non-Python thread while the interpreter shuts down gets that thread
killed by CPython (`pthread_exit`), which aborts a process whose thread runs Rust frames. Waiters
are therefore settled on their event loop's own thread; this runs the racy pattern many times.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import asyncio, threading, healcache

cache = healcache.Cache(load_timeout=5)

async def load(i):
    await asyncio.sleep(0.001)
    return i

async def main():
    for round in range(5):
        got = await asyncio.gather(*[cache.get_or_load(f"k{round}:{i % 7}", lambda i=i: load(i)) for i in range(200)])
        assert len(got) == 200

threads = [threading.Thread(target=lambda: cache.get_or_load_sync("t", lambda: 1)) for _ in range(4)]
for t in threads:
    t.start()
asyncio.run(main())
for t in threads:
    t.join()
"""


def test_exit_right_after_loads_never_aborts() -> None:
    for _ in range(15):
        r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
