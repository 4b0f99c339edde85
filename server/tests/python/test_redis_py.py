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


NOT_RUN = "not run: healcache-server has no transactions, so nothing between MULTI and EXEC runs"


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_transaction_applies_none_of_its_writes(server, protocol):
    """healcache-server has no transactions: MULTI answers +OK, every queued command answers an
    error and does not run, EXEC answers EXECABORT. redis-py then raises the first queued
    command's error (a ResponseError, the ExecAbortError as its context); none of the commands
    runs and the connection goes on afterwards."""
    port, password = server
    r = redis.Redis(host="127.0.0.1", port=port, password=password, protocol=protocol)
    assert r.set("t", "before") is True
    pipe = r.pipeline(transaction=True)
    pipe.set("t", "1")
    pipe.set("u", "1")
    pipe.delete("t")
    first = r"^Command # 1 \(SET t 1\) of pipeline caused error: " + NOT_RUN
    with pytest.raises(redis.ResponseError, match=first) as e:
        pipe.execute()
    assert not isinstance(e.value, redis.exceptions.ExecAbortError)
    assert isinstance(e.value.__context__, redis.exceptions.ExecAbortError)
    assert str(e.value.__context__) == "Transaction discarded because of previous errors."
    assert r.get("t") == b"before"
    assert r.exists("u") == 0
    # The default pipeline is a transaction too.
    with r.pipeline() as pipe:
        pipe.set("u", "2")
        with pytest.raises(redis.ResponseError, match=NOT_RUN) as e:
            pipe.execute()
        assert isinstance(e.value.__context__, redis.exceptions.ExecAbortError)
    assert r.exists("u") == 0
    # The pooled connection left the transaction at EXEC: commands run again on it.
    assert r.set("u", "3") is True
    assert r.get("u") == b"3"
    assert r.pipeline(transaction=False).set("v", "1").get("v").execute() == [True, b"1"]
