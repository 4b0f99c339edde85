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


@pytest.mark.parametrize("in_loop", [False, True])
def test_every_async_method_checks_its_arguments_when_called(in_loop: bool) -> None:
    """A bad key, too many keys, a value over the bound or a pattern with no shared tier is
    refused by the call itself, loop or not: never a coroutine or future holding the error."""
    c = healcache.Cache(max_key_len=10, max_in_flight=2, max_entry_bytes=8, max_bytes=1000)
    long_key = "x" * 20
    calls = [
        (lambda: c.get_many([long_key], lambda ks: {}), healcache.KeyTooLong),
        (lambda: c.get_many(["a", "b", "c"], lambda ks: {}), healcache.InvalidConfig),
        (lambda: c.get_many(["a"], lambda ks: {}, ttl=-1), healcache.InvalidConfig),
        (lambda: c.warm([long_key], lambda ks: {}), healcache.KeyTooLong),
        (lambda: c.warm("u:*", lambda ks: {}), healcache.InvalidConfig),
        (lambda: c.write_through(long_key, 1, lambda k, v: None), healcache.KeyTooLong),
        (lambda: c.write_through("k", "x" * 100, lambda k, v: None), healcache.ValueTooLarge),
        (lambda: c.write_through("k", 1, lambda k, v: None, ttl=-1), healcache.InvalidConfig),
    ]

    def check_all() -> None:
        for call, error in calls:
            with pytest.raises(error):
                call()

    if in_loop:

        async def main() -> None:
            check_all()

        asyncio.run(main())
    else:
        check_all()
    assert len(c) == 0 and c.stats()["loads"] == 0


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
