"""The Python side of the real-parts kit: redis-server children and the fault proxy binary."""

import os
import socket
import threading
import time

import pytest
from rediskit import (  # noqa: F401 (fixtures)
    MAX_REPLY_BYTES,
    FaultProxy,
    closing_all,
    RedisServer,
    Resp,
    RespError,
    fault_proxy,
    make_fault_proxy,
    make_redis_server,
    redis_available,
    redis_server,
    redis_server_module,
    restricted_user,
)


def alive(pid):
    return os.path.exists(f"/proc/{pid}")


def proxied(proxy, server, timeout=5.0):
    conn = Resp(proxy.port, timeout)
    conn.command("AUTH", *server.acl_user)
    return conn


def test_redis_server_is_installed():
    assert redis_available(), "redis-server is missing: run .ci/setup-server.sh"


def test_ping_through_the_proxy(redis_server, fault_proxy):
    with proxied(fault_proxy, redis_server) as c:
        assert c.command("PING") == "PONG"
        assert c.command("SET", "k", "v") == "OK"
    with redis_server.connect() as direct:
        assert direct.command("GET", "k") == b"v"
    stats = fault_proxy.stats()
    assert stats["connections"] == 1 and stats["refused"] == 0


def test_latency_is_observed(redis_server, fault_proxy):
    with proxied(fault_proxy, redis_server) as c:
        fault_proxy.set(latency_ms=100)
        t = time.monotonic()
        assert c.command("PING") == "PONG"
        assert time.monotonic() - t >= 0.2  # 100 ms each way
        fault_proxy.set(direction="downstream")  # replies clean again, requests still delayed
        t = time.monotonic()
        assert c.command("PING") == "PONG"
        assert time.monotonic() - t >= 0.1


def test_blackhole_makes_a_read_time_out(redis_server, fault_proxy):
    with proxied(fault_proxy, redis_server) as c:
        fault_proxy.set(direction="downstream", blackhole=True)
        c.settimeout(0.3)
        with pytest.raises(TimeoutError):
            c.command("PING")
    fault_proxy.clear()
    with proxied(fault_proxy, redis_server) as c:
        assert c.command("PING") == "PONG"


def test_reset_all_resets_open_connections(redis_server, fault_proxy):
    with proxied(fault_proxy, redis_server) as c:
        fault_proxy.reset_all()
        with pytest.raises(ConnectionResetError):
            c.read_reply()


def test_refuse_and_data_limit(redis_server, fault_proxy):
    fault_proxy.set(refuse=True)
    # The reset can arrive before connect() returns, or at the first read.
    with pytest.raises(ConnectionError):
        with Resp(fault_proxy.port) as c:
            c.command("PING")
    assert fault_proxy.stats()["refused"] == 1
    # AUTH answers +OK (5 bytes); PING's +PONG is cut after 2 more bytes, then the proxy closes.
    fault_proxy.clear()
    fault_proxy.set(direction="downstream", data_limit=7)
    with Resp(fault_proxy.port) as c:
        c.send("AUTH", *redis_server.acl_user)
        c.send("PING")
        got = b""
        while chunk := c.sock.recv(100):
            got += chunk
        assert got == b"+OK\r\n+P"


def test_slicing_and_jitter_keep_replies_whole_and_in_order(redis_server, fault_proxy):
    fault_proxy.set(slice_1byte=True, jitter_ms=5)
    with proxied(fault_proxy, redis_server) as c:
        for i in range(30):
            c.send("ECHO", f"m{i}")
        assert [c.read_reply() for _ in range(30)] == [f"m{i}".encode() for i in range(30)]


def test_bad_proxy_commands_raise_and_change_nothing(redis_server, fault_proxy):
    with pytest.raises(ValueError):
        fault_proxy.set(direction="sideways", blackhole=True)
    with pytest.raises(ValueError):
        fault_proxy.set(latency_ms=3_600_001)
    with pytest.raises(ValueError):
        fault_proxy.set(latency_ms=-1)
    with proxied(fault_proxy, redis_server, timeout=5) as c:
        assert c.command("PING") == "PONG"


def test_restart_keeps_the_port_with_a_new_pid(redis_server):
    port, pid = redis_server.port, redis_server.pid
    with redis_server.connect() as c:
        c.command("SET", "k", "v")
    redis_server.kill()
    assert not alive(pid) and not redis_server.running()
    with pytest.raises(ConnectionRefusedError):
        redis_server.connect()
    redis_server.restart()
    assert redis_server.port == port and redis_server.pid != pid and alive(redis_server.pid)
    with redis_server.connect() as c:
        assert c.command("GET", "k") is None  # nothing persisted
        with pytest.raises(RespError, match="^NOPERM"):
            c.command("FLUSHALL")  # same ACL after the restart


def test_stop_and_cont(redis_server):
    with redis_server.connect() as c:
        redis_server.stop()
        c.settimeout(0.3)
        c.send("PING")
        with pytest.raises(TimeoutError):
            c.read_reply()
        redis_server.cont()
        c.settimeout(5)
        assert c.read_reply() == "PONG"


def test_the_restricted_user_is_denied_keys_flushall_debug(redis_server):
    assert redis_server.url == f"redis://hc:{redis_server.acl_user[1]}@127.0.0.1:{redis_server.port}"
    assert redis_server.url_via(7) == f"redis://hc:{redis_server.acl_user[1]}@127.0.0.1:7"
    with redis_server.connect() as c:
        for cmd in (("KEYS", "*"), ("FLUSHALL",), ("FLUSHDB",), ("DEBUG", "SLEEP", "0")):
            with pytest.raises(RespError, match="^NOPERM"):
                c.command(*cmd)
        assert c.command("SET", "k", "v") == "OK"
        assert c.command("GET", "k") == b"v"
        assert c.command("EVAL", "return redis.call('GET', KEYS[1])", 1, "k") == b"v"
        with pytest.raises(RespError, match="can't run this command"):
            c.command("EVAL", "return redis.call('KEYS', '*')", 0)
        cursor, keys = c.command("SCAN", 0, "MATCH", "k*")
        assert keys == [b"k"]
        assert c.command("UNLINK", "k") == 1
        assert c.command("PUBLISH", "ch", "m") == 0
    with redis_server.connect(admin=True) as admin:
        assert admin.command("DEBUG", "SLEEP", "0") == "OK"  # so the refusal above is the ACL's
    with Resp(redis_server.port) as anon:
        with pytest.raises(RespError, match="^NOAUTH"):
            anon.command("PING")
    assert redis_server.acl_user[1] not in repr(redis_server)


def test_module_scoped_server_is_shared(redis_server_module):
    with redis_server_module.connect() as c:
        assert c.command("INCR", "module-counter") >= 1


def test_module_scoped_server_is_shared_again(redis_server_module):
    with redis_server_module.connect() as c:
        assert c.command("INCR", "module-counter") == 2


def test_maxmemory_config_set_and_bad_options():
    with RedisServer(acl_user=restricted_user(), maxmemory="2mb") as s:
        s.config_set("maxmemory-policy", "allkeys-lru")
        s.restart()  # kept across a restart
        with s.connect(admin=True) as c:
            assert c.command("CONFIG", "GET", "maxmemory") == [b"maxmemory", b"2097152"]
            assert c.command("CONFIG", "GET", "maxmemory-policy") == [b"maxmemory-policy", b"allkeys-lru"]
        for key, value in (("bind", "0.0.0.0"), ("save", "60 1"), ("MAXMEMORY", "1mb"), ("maxmemory", "1mb\n"),
                           ("maxmemory", "1mb "), ("maxmemory-policy", "no-such-policy"), ("x", "1" * 257)):
            with pytest.raises(ValueError):
                s.config_set(key, value)
        s.restart()
        with s.connect(admin=True) as c:
            assert c.command("CONFIG", "GET", "bind") == [b"bind", b"127.0.0.1"]
    for bad in (dict(acl_user=("a b", "pw")), dict(acl_user=("hc", "")), dict(acl_user=("default", "pw")),
                dict(acl_user=("hc", "p" * 129)), dict(maxmemory="1mb\nuser x on")):
        with pytest.raises(ValueError):
            RedisServer(**bad)
    with RedisServer(acl_user=("hc", "p" * 128)) as s:  # the longest password accepted
        with s.connect() as c:
            assert c.command("PING") == "PONG"


def test_close_kills_by_pid_and_proxy_exits_with_stdin():
    s = RedisServer()
    p = FaultProxy(s.port)
    pid, proxy_pid = s.pid, p.pid
    s.close()
    p.close()
    assert not alive(pid)
    assert p.proc.returncode == 0 and not alive(proxy_pid)


def test_factories_make_several_and_close_them(make_redis_server, make_fault_proxy):
    a = make_redis_server()
    b = make_redis_server(maxmemory="4mb")
    assert a.port != b.port and a.acl_user[0] == b.acl_user[0] == "hc" and a.acl_user[1] != b.acl_user[1]
    proxies = [make_fault_proxy(a.port), make_fault_proxy(b.port)]
    for proxy, server in zip(proxies, (a, b)):
        with proxied(proxy, server) as c:
            assert c.command("PING") == "PONG"
    with b.connect() as c:
        with pytest.raises(RespError, match="^NOPERM"):
            c.command("KEYS", "*")


def test_closing_all_closes_what_it_made():
    with closing_all(RedisServer) as make_server, closing_all(FaultProxy) as make_proxy:
        servers = [make_server(), make_server()]
        proxies = [make_proxy(s.port) for s in servers]
        pids = [x.pid for x in servers + proxies]
        assert all(alive(pid) for pid in pids)
    assert not any(alive(pid) for pid in pids)


def test_one_connection_faulted_and_reset_alone(redis_server, fault_proxy):
    with proxied(fault_proxy, redis_server) as data, proxied(fault_proxy, redis_server) as bus:
        bus.command("SUBSCRIBE", "inval")
        conns = fault_proxy.connections()
        assert [c["id"] for c in conns] == [1, 2]
        bus_id = next(c["id"] for c in conns if "SUBSCRIBE" in c["first_bytes"])
        assert bus_id == 2
        fault_proxy.set(conn=bus_id, direction="downstream", blackhole=True)
        assert data.command("PUBLISH", "inval", "k") == 1
        bus.settimeout(0.3)
        with pytest.raises(TimeoutError):
            bus.read_reply()
        fault_proxy.reset(1)
        with pytest.raises(ConnectionResetError):
            data.read_reply()
        with pytest.raises(ValueError, match="no open connection 99"):
            fault_proxy.set(conn=99, blackhole=True)
        with pytest.raises(ValueError):
            fault_proxy.reset(99)
    times = fault_proxy.accept_times()
    assert len(times) == 2 and times[0] <= times[1]


def test_a_missing_executable_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("REDIS_SERVER", "/nonexistent/redis-server")
    with pytest.raises(FileNotFoundError):
        RedisServer()
    monkeypatch.delenv("REDIS_SERVER")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="redis-server is not installed"):
        RedisServer()
    monkeypatch.setenv("HEALCACHE_FAULTPROXY_BIN", "/nonexistent/healcache-faultproxy")
    with pytest.raises(RuntimeError, match="is missing: build it with"):
        FaultProxy(1)


def test_the_proxy_binary_reports_why_it_refused_to_start():
    with pytest.raises(RuntimeError, match="healcache-faultproxy exited: .*bad --upstream"):
        FaultProxy("nonsense")


def test_terminate_shuts_down_cleanly_also_when_stopped(redis_server):
    pid = redis_server.pid
    with redis_server.connect() as c:
        assert redis_server.terminate() == 0  # a clean exit, not the SIGKILL fallback
        with pytest.raises(ConnectionError):
            c.command("PING")  # Redis closed its clients' connections
    assert not alive(pid) and redis_server.terminate() is None
    redis_server.restart()
    redis_server.stop()
    assert redis_server.terminate() == 0


def serve_once(payload):
    """A loopback listener that sends `payload` to its first client and closes."""
    srv = socket.create_server(("127.0.0.1", 0))

    def run():
        conn, _ = srv.accept()
        conn.sendall(payload)
        conn.close()
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]


def test_resp_refuses_a_length_past_the_bound():
    with Resp(serve_once(b"$%d\r\n" % (MAX_REPLY_BYTES + 1))) as c:
        with pytest.raises(ValueError, match="out of bounds"):
            c.read_reply()
    # At the bound the length is accepted: what fails is the payload that never comes.
    with Resp(serve_once(b"$%d\r\n" % MAX_REPLY_BYTES)) as c:
        with pytest.raises(ConnectionError, match="connection closed"):
            c.read_reply()


def test_restart_reports_a_port_taken_meanwhile(redis_server):
    port = redis_server.port
    redis_server.kill()
    with socket.create_server(("127.0.0.1", port)):
        with pytest.raises(OSError, match="Address already in use"):
            redis_server.restart()
        assert not redis_server.running()
    redis_server.restart()
    assert redis_server.port == port
    with redis_server.connect() as c:
        assert c.command("PING") == "PONG"
