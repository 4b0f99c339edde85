"""A short run of `make fleet-demo` (three HTTP services, one per language, over one slow origin):
the counts it prints hold, never its timings."""

import fleet_demo


def test_the_fleet_demo_shows_what_it_claims(capsys):
    r = fleet_demo.run(seconds=2.5)
    # one load, then cross-language L2 hits
    assert r["first"] == ["loaded", "l2-hit", "l2-hit"] and r["item1_queries"] == 1
    # fleet lock "all": at most one origin rebuild of the hot key per TTL window, fleet-wide
    assert 1 <= r["hot_queries"] <= r["windows"]
    assert all(sum(c.values()) > 0 and "error" not in c for c in r["statuses"].values())
    # a write in Node is read by Rust and Python from L2
    assert r["after_write"] == [("l2-hit", "written-by-node")] * 2
    # one healing interval in Python repairs L2, and the bus drops the Rust and Node copies
    assert r["stale"] == ["cfg:1@origin"] * 3
    assert (r["report"]["drift"], r["report"]["repaired"]) == (1, 1)
    assert r["healed"] == [("l2-hit", "cfg:1@origin-v2")] * 2
    assert "hot: origin rebuilds fleet-wide" in capsys.readouterr().out
