"""Starts healcache-server as a child process on a free loopback port; stops it by its pid."""

import os
import socket
import subprocess
import time

import pytest

PASSWORD = "s3cret-for-py"
BIN = os.environ.get("HEALCACHE_SERVER_BIN", "target/release/healcache-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ping(port, proc):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64):
                    return True
        except OSError:
            time.sleep(0.02)
    return False


@pytest.fixture
def server():
    """(port, password) of a fresh server."""
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen([BIN, "--port", str(port), "--requirepass", PASSWORD], stdout=subprocess.DEVNULL)
        if wait_for_ping(port, proc):
            break
        proc.kill()
        proc.wait()
    else:
        raise RuntimeError("healcache-server did not start")
    yield port, PASSWORD
    proc.kill()
    proc.wait()
