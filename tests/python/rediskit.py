"""Real parts for the shared-tier tests: redis-server child processes and the healcache-faultproxy binary.

Use the fixtures by importing them into a test module (``from rediskit import redis_server, fault_proxy``):

- ``redis_server``: a fresh redis-server per test, running as the restricted ACL user ``hc`` (denied
  KEYS, FLUSHALL, FLUSHDB and DEBUG; the default user is off). ``redis_server_module``: one per module.
- ``fault_proxy``: a healcache-faultproxy child in front of ``redis_server``.
- ``make_redis_server(**options)`` and ``make_fault_proxy(upstream_port)``: factories for more, or
  other, servers and proxies in one test; all are closed at teardown.

Everything listens on 127.0.0.1 only; processes are signalled by their own pid, never by name. A RESP2
client written here (``Resp``) checks things without the client under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESTRICTED_ACL_RULES = "~* &* +@all -keys -flushall -flushdb -debug"
READY_TIMEOUT = 10.0
# A reply larger than this is refused rather than buffered (the kit only talks to its own servers).
MAX_REPLY_BYTES = 64 << 20
_WORD = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
# Settings the kit itself owns (loopback only, no persistence, the ACL users): config_set refuses them.
KIT_SETTINGS = {"bind", "port", "unixsocket", "dir", "logfile", "save", "appendonly", "protected-mode", "daemonize",
                "enable-debug-command", "requirepass", "aclfile", "user", "masterauth", "replicaof", "slaveof"}


def redis_server_path() -> str | None:
    """``$REDIS_SERVER`` or ``redis-server`` on PATH."""
    return os.environ.get("REDIS_SERVER") or shutil.which("redis-server")


def redis_available() -> bool:
    return redis_server_path() is not None


def faultproxy_path() -> Path:
    """``$HEALCACHE_FAULTPROXY_BIN``, else ``$CARGO_TARGET_DIR`` (or target/)/release/healcache-faultproxy."""
    if os.environ.get("HEALCACHE_FAULTPROXY_BIN"):
        return Path(os.environ["HEALCACHE_FAULTPROXY_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
    if not target.is_absolute():
        target = REPO / target
    return target / "release" / "healcache-faultproxy"


def wait_for(cond, limit: float = 5.0) -> None:
    """Polls `cond` every 10 ms until it holds; fails once `limit` seconds have passed."""
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {limit} s")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RespError(Exception):
    """An error reply; the message starts with the server's code (``NOPERM``, ``NOAUTH``, ``OOM`` ...)."""


class Resp:
    """A blocking RESP2 connection to 127.0.0.1:port."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def settimeout(self, seconds: float | None) -> None:
        self.sock.settimeout(seconds)

    def send(self, *args) -> None:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += [b"$%d\r\n" % len(a), a, b"\r\n"]
        self.sock.sendall(b"".join(out))

    def command(self, *args):
        """Sends one command and returns its reply (str, bytes, int, list or None); raises RespError."""
        self.send(*args)
        return self.read_reply()

    def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > MAX_REPLY_BYTES:
                raise ValueError("reply line too long")
            self._fill(len(self.buf) + 1)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind in (b"$", b"*"):
            n = int(rest)
            if n == -1:
                return None
            if n < 0 or n > MAX_REPLY_BYTES:
                raise ValueError(f"length {n} out of bounds")
            if kind == b"*":
                return [self.read_reply() for _ in range(n)]
            self._fill(n + 2)
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data
        raise ValueError(f"unknown reply {line!r}")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_word(what: str, value: str) -> None:
    # Names, passwords and memory settings go into redis.conf as words and into URLs unescaped.
    if not _WORD.match(value):
        raise ValueError(f"{what} must be 1-128 characters from A-Z a-z 0-9 - _ . ~")


class RedisServer:
    """A redis-server child on a free 127.0.0.1 port with no persistence and its own temp dir.

    ``acl_user=("hc", pw)`` runs it as that restricted user (the default user is switched off; ``url``
    carries the credentials; ``admin_url`` is an unrestricted ``hcadmin`` for test setup only).
    """

    def __init__(self, acl_user: tuple[str, str] | None = None, maxmemory: str | None = None):
        if acl_user is not None:
            _check_word("ACL user name", acl_user[0])
            _check_word("ACL password", acl_user[1])
            if acl_user[0] in ("default", "hcadmin"):
                raise ValueError("the ACL user may not be `default` or `hcadmin`")
        if maxmemory is not None:
            _check_word("maxmemory setting", maxmemory)
        exe = redis_server_path()
        if exe is None:
            raise RuntimeError("redis-server is not installed (not on PATH, REDIS_SERVER unset): "
                               "run .ci/setup-server.sh")
        self.exe = exe
        self.acl_user = acl_user
        self.admin = ("hcadmin", secrets.token_hex(16)) if acl_user else None
        self.maxmemory = maxmemory
        self.config: dict[str, str] = {}  # from config_set, kept across restarts
        self.dir = tempfile.mkdtemp(prefix="healcache-redis-")
        self.proc: subprocess.Popen | None = None
        self.port = 0
        try:
            for attempt in range(5):
                self.port = free_port()
                try:
                    self._spawn()
                    return
                except OSError as e:
                    # Another process took the port between the probe and redis-server's bind.
                    if "Address already in use" not in str(e) or attempt == 4:
                        raise
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @staticmethod
    def _url(user, port) -> str:
        return f"redis://{user[0]}:{user[1]}@127.0.0.1:{port}" if user else f"redis://127.0.0.1:{port}"

    @property
    def url(self) -> str:
        return self._url(self.acl_user, self.port)

    def url_via(self, port: int) -> str:
        """``url`` with its credentials but another loopback port: reach this server through a proxy."""
        return self._url(self.acl_user, port)

    @property
    def admin_url(self) -> str:
        return self._url(self.admin, self.port)

    def connect(self, admin: bool = False, timeout: float = 5.0) -> Resp:
        """A raw connection, authenticated as the restricted user (or ``hcadmin``) when there is one."""
        conn = Resp(self.port, timeout)
        user = self.admin if admin else self.acl_user
        try:
            if user:
                conn.command("AUTH", *user)
        except BaseException:
            conn.close()
            raise
        return conn

    def config_set(self, key: str, value: str) -> None:
        """CONFIG SET now (as the unrestricted user) and for every later restart, e.g.
        ``config_set("maxmemory-policy", "allkeys-lru")``. The value is words of ``A-Z a-z 0-9 - _ . ~``
        separated by single spaces (at most 256 characters); the kit's own settings are refused."""
        if not re.fullmatch(r"[a-z-]{1,64}", key) or key in KIT_SETTINGS:
            raise ValueError(f"config_set: {key!r} cannot be set")
        if len(value) > 256 or not all(_WORD.match(w) for w in value.split(" ")):
            raise ValueError("config_set: the value must be words of A-Z a-z 0-9 - _ . ~ separated by single "
                             "spaces, at most 256 characters")
        with self.connect(admin=True) as c:
            try:
                c.command("CONFIG", "SET", key, value)
            except RespError as e:
                raise ValueError(f"CONFIG SET {key}: {e}") from None
        self.config[key] = value

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL by its own pid, then reap."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def terminate(self) -> int | None:
        """SIGTERM (and SIGCONT, in case it is stopped): Redis closes its clients' connections and
        exits. Falls back to SIGKILL after 10 s. Returns the exit code (None when not running)."""
        if self.proc is None:
            return None
        self._signal(signal.SIGTERM)
        self._signal(signal.SIGCONT)
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def _signal(self, sig) -> None:
        # Only an unreaped child: its pid cannot belong to another process yet.
        if self.running():
            os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        """SIGSTOP: sockets stay open, nothing answers until cont()."""
        self._signal(signal.SIGSTOP)

    def cont(self) -> None:
        self._signal(signal.SIGCONT)

    def restart(self) -> None:
        """Kill, then a new process on the same port with the same options and an empty dataset."""
        self.kill()
        deadline = time.monotonic() + 2
        while True:
            try:
                return self._spawn()
            except OSError as e:
                if "Address already in use" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _conf(self) -> str:
        lines = [f"port {self.port}", "bind 127.0.0.1", "protected-mode yes", 'save ""', "appendonly no",
                 "daemonize no", f'dir "{self.dir}"', f'logfile "{self.dir}/redis.log"']
        if self.maxmemory:
            lines.append(f"maxmemory {self.maxmemory}")
        lines += [f"{k} {v}" for k, v in self.config.items()]
        if self.acl_user:
            # DEBUG allowed locally, so the restricted user's refusal is its ACL's (NOPERM).
            lines += ["enable-debug-command local", "user default off",
                      f"user {self.acl_user[0]} on >{self.acl_user[1]} {RESTRICTED_ACL_RULES}",
                      f"user {self.admin[0]} on >{self.admin[1]} ~* &* +@all"]
        return "\n".join(lines) + "\n"

    def _log_tail(self) -> str:
        try:
            return " | ".join(Path(self.dir, "redis.log").read_text().splitlines()[-5:])
        except OSError:
            return ""

    def _spawn(self) -> None:
        conf = Path(self.dir, "redis.conf")
        conf.write_text(self._conf())
        Path(self.dir, "redis.log").unlink(missing_ok=True)
        self.proc = subprocess.Popen([self.exe, str(conf)], cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise OSError(f"redis-server exited ({code}) on port {self.port}: {self._log_tail()}")
            try:
                with self.connect() as c:
                    if c.command("PING") == "PONG":
                        return
            except (OSError, RespError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"redis-server on port {self.port} gave no PONG within {READY_TIMEOUT} s")
            time.sleep(0.005)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:  # never shows a password
        user = self.acl_user[0] if self.acl_user else None
        return f"RedisServer(port={self.port}, pid={self.pid}, acl_user={user!r})"


class FaultProxy:
    """The healcache-faultproxy binary as a child, in front of 127.0.0.1:upstream_port."""

    def __init__(self, upstream_port: int, timeout: float = 10.0):
        exe = faultproxy_path()
        if not exe.is_file():
            raise RuntimeError(f"{exe} is missing: build it with "
                               "`cargo build -p healcache-testkit --release --bins` (make test does)")
        self.timeout = timeout
        self.proc = subprocess.Popen([str(exe), "--upstream", f"127.0.0.1:{upstream_port}"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._out = b""
        try:
            self.port = int(self._readline())
        except BaseException:
            self.close()
            raise

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _readline(self) -> str:
        # select() rather than a blocking readline, so a stuck proxy fails the test instead of hanging it.
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._out:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("healcache-faultproxy did not answer")
            chunk = os.read(fd, 4096)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace").strip()
                raise RuntimeError(f"healcache-faultproxy exited: {err}")
            self._out += chunk
        line, self._out = self._out.split(b"\n", 1)
        return line.decode()

    def _cmd(self, **cmd) -> str:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()
        answer = self._readline()
        if answer.startswith("error "):
            raise ValueError(answer[len("error "):])
        if answer != "ok" and not answer.startswith("ok "):
            raise RuntimeError(f"unexpected answer {answer!r}")
        return answer[3:]

    def set(self, *, direction: str = "both", latency_ms: int = 0, jitter_ms: int = 0,
            bytes_per_sec: int | None = None, slice_1byte: bool = False, blackhole: bool = False,
            refuse: bool = False, data_limit: int | None = None, conn: int | None = None) -> None:
        """Replaces the faults of ``direction`` ("both", "upstream" = requests, "downstream" = replies),
        proxy-wide or, with ``conn=id``, for that open connection only."""
        cmd = dict(cmd="set", direction=direction, latency_ms=latency_ms, jitter_ms=jitter_ms,
                   bytes_per_sec=bytes_per_sec, slice_1byte=slice_1byte, blackhole=blackhole,
                   refuse=refuse, data_limit=data_limit)
        if conn is not None:
            cmd["conn"] = conn
        self._cmd(**cmd)

    def clear(self) -> None:
        self._cmd(cmd="clear")

    def reset_all(self) -> None:
        """RST every open connection."""
        self._cmd(cmd="reset_all")

    def reset(self, conn: int) -> None:
        """RST one open connection."""
        self._cmd(cmd="reset", conn=conn)

    def connections(self) -> list:
        """Open connections: ``[{"id", "age_ms", "first_bytes", "bytes_up", "bytes_down"}]``."""
        return json.loads(self._cmd(cmd="connections"))

    def accept_times(self) -> list:
        """Milliseconds since the proxy started at which each connection was accepted (the last 4096)."""
        return json.loads(self._cmd(cmd="accept_times"))

    def stats(self) -> dict:
        """``{"connections": accepted so far, "active": open now, "refused": reset at accept}``."""
        return json.loads(self._cmd(cmd="stats"))

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # it exits when stdin closes
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def restricted_user() -> tuple[str, str]:
    return ("hc", secrets.token_hex(16))


@pytest.fixture
def redis_server():
    with RedisServer(acl_user=restricted_user()) as server:
        yield server


@pytest.fixture(scope="module")
def redis_server_module():
    with RedisServer(acl_user=restricted_user()) as server:
        yield server


@pytest.fixture
def fault_proxy(redis_server):
    with FaultProxy(redis_server.port) as proxy:
        yield proxy


@contextlib.contextmanager
def closing_all(make):
    """A factory calling ``make``; everything it made is closed when the block ends."""
    made = []

    def factory(*args, **kwargs):
        made.append(make(*args, **kwargs))
        return made[-1]

    try:
        yield factory
    finally:
        for thing in made:
            thing.close()


@pytest.fixture
def make_redis_server():
    """``make_redis_server(acl_user=..., maxmemory=...)``; the restricted user by default."""
    with closing_all(lambda acl_user=None, **kw: RedisServer(acl_user=acl_user or restricted_user(), **kw)) as f:
        yield f


@pytest.fixture
def make_fault_proxy():
    """``make_fault_proxy(upstream_port)``."""
    with closing_all(FaultProxy) as f:
        yield f
