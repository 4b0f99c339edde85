"""The compiled module; its public names are re-exported (and typed) by ``healcache``."""

from typing import final

from healcache import Cache as Cache
from healcache import ManualClock as ManualClock
from healcache import WriteBehind as WriteBehind
from healcache import prometheus_join as prometheus_join

__version__: str

def _settings() -> list[tuple[str, str, str]]:
    """The core's settings table as ``(name, scope, unit)`` (internal)."""

def _after_fork() -> None:
    """In a forked child: the parent's loads under way are not joined (the fork hook's, internal)."""

def _close_all_write_behind() -> str | None:
    """Closes every write-behind queue still running, within the core's exit timeout (2 s); the
    line to report on stderr for the items left at the deadline, if any (the exit hook's, internal)."""

def _close_all_shared() -> int:
    """Closes every cache's shared tier still open, after its writes under way, within the core's
    exit timeout (2 s); the writes still under way at the deadline (the exit hook's, internal)."""

@final
class _LoopDriver:
    """Polls the waiting ``get_or_load``/``fetch`` calls and background refreshes of one event loop (internal)."""

    def __new__(cls) -> _LoopDriver: ...
    def fileno(self) -> int: ...
    def run(self) -> None: ...
