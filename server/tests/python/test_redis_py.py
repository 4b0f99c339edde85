"""redis-py against healcache-server, RESP2 and RESP3."""

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


@pytest.mark.parametrize("protocol", [2, 3])
def test_commands(server, protocol):
    port, password = server
    r = redis.Redis(host="127.0.0.1", port=port, password=password, protocol=protocol)
    assert r.ping() is True
    assert r.set("user:1", b"\x00binary\xff") is True
    assert r.get("user:1") == b"\x00binary\xff"
    assert r.get("missing") is None
    assert r.set("user:1", "x", nx=True) is None
    assert r.set("absent", "x", xx=True) is None
    assert r.set("tmp", "v", ex=100) is True
    assert 99 <= r.ttl("tmp") <= 100
    assert 0 < r.pttl("tmp") <= 100_000
    assert r.ttl("user:1") == -1
    assert r.ttl("missing") == -2
    assert r.exists("user:1", "tmp", "missing") == 2
    assert r.dbsize() == 2
    assert r.delete("user:1", "tmp", "missing") == 2
    # A pipeline comes back in order.
    pipe = r.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"p{i}", i)
    for i in range(50):
        pipe.get(f"p{i}")
    out = pipe.execute()
    assert out[50:] == [str(i).encode() for i in range(50)]
    info = r.info("stats")
    assert info["total_commands_processed"] > 100
    assert "total_repaired" in r.info("healing")
    stats = r.execute_command("CONSISTENCY", "STATS")
    if protocol == 3:
        assert set(stats) == {b"total_sampled", b"total_repaired", b"avg_score", b"source_failures", b"last_interval_ms"}
        assert stats[b"avg_score"] == 1.0
    else:
        assert stats[0::2] == [b"total_sampled", b"total_repaired", b"avg_score", b"source_failures", b"last_interval_ms"]
    cfg = r.config_get("healing.sample_rate")
    assert cfg == {"healing.sample_rate": "0.01"} or cfg == {b"healing.sample_rate": b"0.01"}
    assert r.config_set("healing.sample_rate", 0.5) is True
    with pytest.raises(redis.ResponseError, match="INVALIDCONFIG|invalid config"):
        r.config_set("healing.sample_rate", 2)
    with pytest.raises(redis.ResponseError, match="unknown command"):
        r.execute_command("FLUSHALL")
    r.client_setname("py")
    assert r.client_getname() in ("py", b"py")


def test_wrong_password(server):
    port, _ = server
    # No retries: redis-py retries connection errors (an auth failure is one) with backoff.
    once = Retry(NoBackoff(), 0)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, password="nope", retry=once).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, retry=once).get("k")
