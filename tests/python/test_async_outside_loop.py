"""Promise: the async methods are awaitables a user can hand to asyncio however asyncio takes
them. Called outside a running event loop (`asyncio.run(cache.get_or_load(...))`,
`loop.run_until_complete(...)`), a call is a coroutine that starts once awaited, as an `async
def` method's call is; inside a loop nothing changes."""

import asyncio

import healcache
import pytest


def test_asyncio_run_takes_each_async_method_called_outside_a_loop():
    c = healcache.Cache()
    assert asyncio.run(c.get_or_load("k", lambda: 1)) == 1
    assert asyncio.run(c.fetch("k", lambda: 2)) == (1, "hit")
    assert asyncio.run(c.get_many(["a", "k"], lambda ks: {"a": 3})) == {"a": 3, "k": 1}
    assert asyncio.run(c.write_through("w", 4, lambda k, v: None)) == c.version("w")
    assert c.get("w") == 4
    assert asyncio.run(c.warm(["x"], lambda ks: {"x": 5}))["found"] == 1
    assert asyncio.run(c.verify_now())["failures"] == 0


def test_run_until_complete_takes_a_call_made_before_the_loop_runs():
    c = healcache.Cache()
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(c.get_or_load("k", lambda: "v")) == "v"
    finally:
        loop.close()


def test_a_deferred_call_checks_its_arguments_when_made():
    c = healcache.Cache()
    with pytest.raises(TypeError):
        c.get_or_load("k", 42)  # not callable: refused at once, loop or not
    with pytest.raises(healcache.InvalidConfig):
        c.get_or_load("k", lambda: 1, ttl=-1)


def test_a_deferred_load_is_one_flight_with_the_others():
    c = healcache.Cache()
    calls = []

    async def load():
        calls.append(1)
        await asyncio.sleep(0.05)
        return "v"

    later = c.get_or_load("k", load)  # no loop yet

    async def main():
        return await asyncio.gather(later, c.get_or_load("k", load), c.get_or_load("k", load))

    assert asyncio.run(main()) == ["v", "v", "v"]
    assert len(calls) == 1
