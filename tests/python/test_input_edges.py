"""Bad input at the edge of the Python API: every refusal is a typed healcache error (or a
TypeError naming the argument) raised before the core is called, so nothing in the cache changes.

- whole-number arguments given a negative int or one too large for them: `InvalidConfig` naming
  the argument, as their other out-of-range values get (never pyo3's bare `OverflowError`);
- a `str` where a list of str is expected: a `TypeError` saying so (a str is a sequence of
  characters, which would be taken apart);
- keys that are no valid Unicode text (lone surrogates): `InvalidKey`, never `UnicodeEncodeError`;
  other text arguments (a tag, a setting's name, `decode`) the same way: `InvalidConfig` naming them;
- ints no float holds where a number is expected: `InvalidConfig`, never `OverflowError`.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Callable

import pytest

import healcache
from healcache import Cache, WriteBehind

TOO_BIG = [2**64, 2**100]
OUT_OF_RANGE = [-1, -(2**70), *TOO_BIG]


def _recording_loader() -> tuple[list[Any], Callable[..., Any]]:
    """A loader for a key (no arguments: 1) or a batch (the keys: {}), recording every call, so
    a test can assert a refused call loaded nothing."""
    called: list[Any] = []

    def loader(*args: Any) -> Any:
        called.append(args)
        return {} if args else 1

    return called, loader


def _snapshot(c: Cache) -> tuple[Any, ...]:
    """What a refused call must leave as it was: the entries, their versions, the counters."""
    s = c.stats()
    counters = {k: v for k, v in s.items() if k not in ("load_latency", "healing")}
    return sorted(c.keys()), {k: c.version(k) for k in c.keys()}, counters


def _invalid(call: Callable[[], Any], field: str) -> healcache.InvalidConfig:
    with pytest.raises(healcache.InvalidConfig) as ei:
        call()
    assert ei.value.field == field
    assert f"`{field}`" in str(ei.value)
    return ei.value


async def _ainvalid(call: Callable[[], Any], field: str) -> healcache.InvalidConfig:
    """`_invalid` of an asyncio call, refused when made or when awaited."""
    with pytest.raises(healcache.InvalidConfig) as ei:
        await call()
    assert ei.value.field == field
    assert f"`{field}`" in str(ei.value)
    return ei.value


# -- whole numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_if_version_out_of_range_is_invalid_config_and_changes_nothing(bad: int) -> None:
    c = Cache()
    c.set("k", "v")
    before = _snapshot(c)
    _invalid(lambda: c.set("k", "w", if_version=bad), "if_version")
    _invalid(lambda: c.set("new", "w", if_version=bad, tags=["t"]), "if_version")
    _invalid(lambda: c.delete("k", if_version=bad), "if_version")
    assert _snapshot(c) == before and c.get("k") == "v"
    # the largest version is accepted (and simply does not match)
    with pytest.raises(healcache.VersionMismatch):
        c.delete("k", if_version=2**64 - 1)


def test_if_version_of_the_wrong_type_is_a_type_error_naming_it() -> None:
    c = Cache()
    # a float is a number that is no version: InvalidConfig (below)
    for bad in ("1",):
        with pytest.raises(TypeError, match="if_version") as ei:
            c.set("k", 1, if_version=bad)  # type: ignore[arg-type]
        assert not isinstance(ei.value, healcache.HealcacheError)
        with pytest.raises(TypeError, match="if_version"):
            c.delete("k", if_version=bad)  # type: ignore[arg-type]
    assert "k" not in c
    assert c.set("k", 1, if_version=None) == 1  # None is "no condition", as before


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
def test_sample_keys_out_of_range_is_invalid_config(bad: int) -> None:
    c = Cache()
    c["a"] = 1
    before = _snapshot(c)
    _invalid(lambda: c.sample_keys(bad), "k")
    assert _snapshot(c) == before
    assert c.sample_keys(0) == [] and c.sample_keys(5) == ["a"]


@pytest.mark.asyncio
@pytest.mark.parametrize("option", ["concurrency", "batch", "max_keys"])
async def test_warm_counts_out_of_range_are_refused_as_zero_is(option: str) -> None:
    c = Cache()
    calls: list[list[str]] = []

    def loader(keys: list[str]) -> dict[str, Any]:
        calls.append(keys)
        return {k: k for k in keys}

    zero = await _ainvalid(lambda: c.warm(["a", "b"], loader, **{option: 0}), option)
    for bad in OUT_OF_RANGE:
        e = await _ainvalid(lambda: c.warm(["a", "b"], loader, **{option: bad}), option)
        assert type(e) is type(zero)
    assert calls == [] and len(c) == 0 and c.warm_progress() == (0, 0, 0)


@pytest.mark.parametrize("option", ["max_queue", "batch", "attempts"])
def test_write_behind_counts_out_of_range_are_refused_as_zero_is(option: str) -> None:
    c = Cache()
    zero = _invalid(lambda: WriteBehind(c, lambda batch: None, **{option: 0}), option)
    bad_values = [*OUT_OF_RANGE, 2**32] if option == "attempts" else OUT_OF_RANGE
    for bad in bad_values:
        e = _invalid(lambda: WriteBehind(c, lambda batch: None, **{option: bad}), option)
        assert type(e) is type(zero)
    with pytest.raises(TypeError, match=option):
        WriteBehind(c, lambda batch: None, **{option: 2.5})


def test_no_whole_number_argument_raises_overflow_error() -> None:
    """Every whole-number argument of the API, each given -1 and 2**64: never OverflowError."""
    c = Cache()

    async def warm(**kw: Any) -> Any:
        return await c.warm(["a"], lambda keys: {}, **kw)

    calls: list[Callable[[Any], Any]] = [
        lambda n: c.set("k", 1, if_version=n),
        lambda n: c.delete("k", if_version=n),
        lambda n: c.sample_keys(n),
        lambda n: asyncio.run(warm(concurrency=n)),
        lambda n: asyncio.run(warm(batch=n)),
        lambda n: asyncio.run(warm(max_keys=n)),
        lambda n: WriteBehind(c, lambda b: None, max_queue=n),
        lambda n: WriteBehind(c, lambda b: None, batch=n),
        lambda n: WriteBehind(c, lambda b: None, attempts=n),
    ]
    for call in calls:
        for n in (-1, 2**64):
            with pytest.raises(healcache.InvalidConfig):
                call(n)


# -- a str where a list of str is expected -------------------------------------------------------


def test_tags_given_a_str_is_a_type_error_and_writes_nothing() -> None:
    c = Cache()
    with pytest.raises(TypeError, match="`tags` must be a sequence of str, not str"):
        c.set("k", 1, tags="abc")
    assert "k" not in c and c.stats()["inserts"] == 0
    # a list, a tuple: as before
    c.set("k", 1, tags=["abc"])
    c.set("k2", 1, tags=("abc", "def"))
    assert c.invalidate_tag("abc", hard=True) == 2


def test_tags_of_other_types_are_type_errors_naming_tags() -> None:
    c = Cache()
    for bad in (5, [1], ["a", None], {"a": 1}.items()):
        with pytest.raises(TypeError, match="tags"):
            c.set("k", 1, tags=bad)  # type: ignore[arg-type]
    assert "k" not in c


@pytest.mark.asyncio
async def test_fetch_tags_given_a_str_is_a_type_error_before_any_load() -> None:
    c = Cache()
    calls = 0

    def loader() -> int:
        nonlocal calls
        calls += 1
        return 1

    with pytest.raises(TypeError, match="`tags` must be a sequence of str, not str"):
        await c.fetch("k", loader, tags="abc")
    assert calls == 0 and "k" not in c


@pytest.mark.asyncio
async def test_get_many_given_a_str_is_a_type_error_before_any_load() -> None:
    c = Cache()
    asked: list[list[str]] = []

    def loader(keys: list[str]) -> dict[str, Any]:
        asked.append(keys)
        return {}

    with pytest.raises(TypeError, match="`keys` must be a sequence of str, not str"):
        await c.get_many("abc", loader)
    with pytest.raises(TypeError, match="keys must be str, not int"):
        await c.get_many(["a", 1], loader)  # type: ignore[list-item]
    assert asked == [] and len(c) == 0
    assert await c.get_many(("a", "b"), lambda keys: {"a": 1}) == {"a": 1}


@pytest.mark.asyncio
async def test_warm_takes_a_str_as_a_pattern_and_a_list_as_keys() -> None:
    # a str is a glob over the shared tier's keys (documented), so it stays accepted there
    c = Cache()
    with pytest.raises(healcache.InvalidConfig):  # no shared tier to match against
        await c.warm("user:*", lambda keys: {})
    with pytest.raises(TypeError, match="keys must be str, not int"):
        await c.warm(["a", 1], lambda keys: {})  # type: ignore[list-item]
    assert len(c) == 0


# -- keys that are no valid Unicode text ---------------------------------------------------------

BAD_KEY = "a\ud800b"


def _invalid_key(call: Callable[[], Any]) -> None:
    with pytest.raises(healcache.InvalidKey) as ei:
        call()
    assert isinstance(ei.value, ValueError)
    assert "Unicode" in ei.value.reason and "UTF-8" in ei.value.reason
    assert BAD_KEY not in str(ei.value) and "\\ud800" not in str(ei.value)  # keys are data


def test_a_key_with_a_lone_surrogate_is_invalid_key_in_every_sync_call() -> None:
    c = Cache()
    c["a"] = 1
    before = _snapshot(c)
    calls: list[Callable[[], Any]] = [
        lambda: c.get(BAD_KEY),
        lambda: c.get(BAD_KEY, 0),
        lambda: Cache.get(c, BAD_KEY),
        lambda: c.peek(BAD_KEY),
        lambda: c[BAD_KEY],
        lambda: c.__setitem__(BAD_KEY, 1),
        lambda: c.__delitem__(BAD_KEY),
        lambda: BAD_KEY in c,
        lambda: c.set(BAD_KEY, 1),
        lambda: c.set(BAD_KEY, 1, tags=["t"]),
        lambda: c.delete(BAD_KEY),
        lambda: c.delete(BAD_KEY, if_version=0),
        lambda: c.version(BAD_KEY),
        lambda: c.get_entry(BAD_KEY),
        lambda: c.get_or_load_sync(BAD_KEY, lambda: 1),
    ]
    for call in calls:
        _invalid_key(call)
    assert _snapshot(c) == before


@pytest.mark.asyncio
async def test_a_key_with_a_lone_surrogate_is_invalid_key_in_every_async_call() -> None:
    c = Cache()
    called, loader = _recording_loader()

    async def each() -> None:
        calls: list[Callable[[], Any]] = [
            lambda: c.get_or_load(BAD_KEY, loader),
            lambda: c.fetch(BAD_KEY, loader),
            lambda: c.fetch(BAD_KEY, loader, tags=["t"]),
            lambda: c.write_through(BAD_KEY, 1, lambda k, v: called.append((k, v))),
            lambda: c.get_many(["ok", BAD_KEY], loader),
            lambda: c.warm(["ok", BAD_KEY], loader),
        ]
        for call in calls:
            with pytest.raises(healcache.InvalidKey) as ei:
                await call()
            assert "Unicode" in ei.value.reason

    await each()
    assert called == [] and len(c) == 0


@pytest.mark.asyncio
async def test_a_batch_loader_answering_a_lone_surrogate_key_raises_invalid_key() -> None:
    c = Cache()
    with pytest.raises(healcache.InvalidKey):
        await c.get_many(["a"], lambda keys: {BAD_KEY: 1})
    assert len(c) == 0


def test_write_behind_keys_with_a_lone_surrogate_are_invalid_key() -> None:
    c = Cache()
    written: list[Any] = []
    wb = WriteBehind(c, written.extend, flush_interval=0.01)
    try:
        _invalid_key(lambda: wb.set(BAD_KEY, 1))
        _invalid_key(lambda: wb.delete(BAD_KEY))
        assert wb.stats()["queue_depth"] == 0 and len(c) == 0
    finally:
        wb.close()
    assert written == []


def test_a_tag_with_a_lone_surrogate_is_refused_like_a_bad_tag() -> None:
    c = Cache()
    with pytest.raises(healcache.InvalidConfig) as ei:
        c.set("k", 1, tags=["ok", "t\ud800"])
    assert ei.value.field == "tags" and "\\ud800" not in str(ei.value)
    assert "k" not in c


def test_values_with_lone_surrogates_are_still_stored() -> None:
    c = Cache()
    c.set("k", BAD_KEY)  # a value is not a key: stored as given
    assert c.get("k") == BAD_KEY


def test_text_arguments_with_a_lone_surrogate_are_typed_errors_naming_the_argument() -> None:
    """A tag, a source's prefix, a setting's name and `decode` with no UTF-8 form: a typed error
    naming the argument (never `UnicodeEncodeError`, which quotes the text), nothing changed."""
    c = Cache(max_entries=10)
    c.set("k", 1, tags=["t"])
    c.register_source("user:", lambda key: 1)
    before = _snapshot(c), c.healing_config()
    _invalid(lambda: c.invalidate_tag("t\ud800"), "tag")
    _invalid(lambda: c.config_set("healing.sample\ud800", 1), "name")
    _invalid(lambda: c.config_get("healing.sample\ud800"), "name")
    _invalid(lambda: c.register_source("x:", "http://127.0.0.1:9/{key}", decode="js\ud800n"), "decode")
    for call in (
        lambda: c.register_source("user\ud800", lambda key: 1),
        lambda: c.unregister_source("user\ud800"),
        lambda: c.score("user\ud800"),
    ):
        with pytest.raises(healcache.InvalidKey) as ei:
            call()
        assert "prefix" in str(ei.value) and "\\ud800" not in str(ei.value)
    assert (_snapshot(c), c.healing_config()) == before
    assert c.score("user:") is not None and c.score("x:") is None
    with pytest.raises(TypeError, match="`tag` must be str, not int"):
        c.invalidate_tag(7)  # type: ignore[arg-type]



def test_text_arguments_of_the_wrong_type_are_type_errors_naming_them() -> None:
    """A text argument given another type is a `TypeError` naming the argument, as every other
    argument conversion is (pyo3's own message names none), and nothing changes."""
    c = Cache(max_entries=10)
    c.set("k", 1)
    before = _snapshot(c), c.healing_config()
    wb = WriteBehind(c, lambda batch: None)
    calls: list[tuple[Callable[[], Any], str]] = [
        (lambda: Cache(redis=5), "redis"),  # type: ignore[arg-type]
        (lambda: Cache(fleet_lock=1), "fleet_lock"),  # type: ignore[arg-type]
        (lambda: Cache(l2_prefix=3), "l2_prefix"),  # type: ignore[arg-type]
        (lambda: c.prometheus(5), "name"),  # type: ignore[arg-type]
        (lambda: wb.prometheus(5), "name"),  # type: ignore[arg-type]
        (lambda: c.config_set("sample_rate", None), "value"),  # type: ignore[arg-type]
        (lambda: c.config_set("verify_interval", None), "value"),  # type: ignore[arg-type]
        (lambda: c.config_set("healing.verify_interval_ms", [1]), "value"),  # type: ignore[arg-type]
    ]
    try:
        for call, keyword in calls:
            _type_error_naming(call, keyword)
        assert (_snapshot(c), c.healing_config()) == before
    finally:
        wb.close()


def test_invalidate_tag_names_its_argument_tag() -> None:
    """An `InvalidConfig` names the argument as the user spelled it: `invalidate_tag`'s is `tag`
    (the core checks it as a list of one tag, `tags`), and nothing is invalidated."""
    c = Cache()
    c.set("k", 1, tags=["t"])
    before = _snapshot(c)
    for bad in ("", "x" * 129):
        e = _invalid(lambda: c.invalidate_tag(bad), "tag")
        assert "`tags`" not in str(e)
    assert _snapshot(c) == before and c.get("k") == 1


@pytest.mark.asyncio
async def test_async_call_arguments_the_core_refuses_raise_when_called() -> None:
    """docs/python.md: the async methods' arguments are checked when they are called, on a hit too
    (not when the awaitable is awaited), inside a running loop as outside one."""
    c = Cache()
    c.set("k", 1)

    def loader(*args: Any) -> Any:
        return {} if args else 1

    calls: list[tuple[Callable[[], Any], str]] = [
        (lambda: c.get_or_load("k", loader, negative_ttl=1000), "negative_ttl"),
        (lambda: c.fetch("k", loader, negative_ttl=1000), "negative_ttl"),
        (lambda: c.get_or_load("k", loader, tags=[""]), "tags"),
        (lambda: c.warm(["a"], loader, concurrency=0), "concurrency"),
        (lambda: c.warm(["a"], loader, min_share=2), "min_share"),
        (lambda: c.warm(["a"], loader, max_keys=0), "max_keys"),
    ]
    for call, field in calls:
        _invalid(call, field)
    assert c.stats()["loads"] == 0 and c.warm_progress() == (0, 0, 0)


HUGE = [2**1024, 10**400, -(2**1024)]


def test_ints_too_large_for_a_float_are_out_of_range_not_overflow_error() -> None:
    """A duration or a number setting given an int no float holds: `InvalidConfig` naming the
    argument, as other out-of-range values get (never a bare `OverflowError`, and never read as
    `math.inf`, which means "no expiry")."""
    c = Cache(max_entries=10)
    c.set("k", 1)
    before = _snapshot(c)
    for n in HUGE:
        _invalid(lambda: c.set("k", 2, ttl=n), "ttl")
        _invalid(lambda: c.get_or_load_sync("n", lambda key: 1, ttl=n), "ttl")
        _invalid(lambda: Cache(ttl=n), "ttl")
        _invalid(lambda: Cache(max_entries=10, xfetch_beta=n), "xfetch_beta")
    assert _snapshot(c) == before and c.get("k") == 1


def test_a_huge_number_in_an_error_reads_as_the_user_wrote_it() -> None:
    """1e300 seconds is written with an exponent in the error, not as 301 digits; a finite
    number too large in milliseconds is out of range, not "inf"."""
    c = Cache(max_entries=10)
    e = _invalid(lambda: c.set("k", 1, ttl=1e300), "ttl")
    assert "got 1e+300 seconds" in str(e) and "000000" not in str(e)
    e = _invalid(lambda: Cache(ttl=1e306), "ttl")
    assert "at most 100 years" in str(e) and "inf" not in str(e)


# -- a bool where a number is expected -----------------------------------------------------------


def _bool_refused(call: Callable[[Any], Any], field: str) -> None:
    """`call(True)` and `call(False)` are refused as the argument's other bad numbers are."""
    for flag in (True, False):
        _invalid(lambda: call(flag), field)


def test_a_bool_is_refused_wherever_a_number_is_expected_and_changes_nothing() -> None:
    # a bool is an int in Python, but `max_entries=True` is a mistake, not a cache of one entry
    c = Cache(max_entries=10)
    c.set("k", "v")
    healing = c.healing_config()
    before = _snapshot(c)
    cases: list[tuple[Callable[[Any], Any], str]] = [
        *[(lambda b, kw=kw: Cache(**{kw: b}), kw) for kw in (
            "max_entries", "max_bytes", "ttl", "load_timeout", "grace", "max_key_len", "xfetch_beta",
            "negative_ttl", "seed", "healing_sample_rate", "healing_score_window", "healing_verify_interval",
        )],
        (lambda b: c.set_healing(sample_rate=b), "sample_rate"),
        (lambda b: c.set_healing(score_window=b), "score_window"),
        (lambda b: c.set_healing(verify_interval=b), "verify_interval"),
        (lambda b: c.config_set("healing.verify_interval", b), "healing.verify_interval"),
        (lambda b: c.config_set("healing.sample_rate", b), "healing.sample_rate"),
        (lambda b: c.set("k", "w", ttl=b), "ttl"),
        (lambda b: c.set("k", "w", if_version=b), "if_version"),
        (lambda b: c.set("k", "w", if_version=b, tags=["t"]), "if_version"),
        (lambda b: c.delete("k", if_version=b), "if_version"),
        (lambda b: c.sample_keys(b), "k"),
        (lambda b: c.get_or_load_sync("n", lambda: 1, ttl=b), "ttl"),
        (lambda b: c.get_or_load_sync("n", lambda: 1, soft_timeout=b), "soft_timeout"),
        (lambda b: c.cached(ttl=b), "ttl"),
        (lambda b: c.close(timeout=b), "timeout"),
        (lambda b: healcache.ManualClock().advance(b), "seconds"),
        *[(lambda b, kw=kw: WriteBehind(c, lambda batch: None, **{kw: b}), kw) for kw in (
            "max_queue", "batch", "attempts", "flush_interval", "retry_min", "retry_max",
        )],
    ]
    for call, field in cases:
        _bool_refused(call, field)
    assert _snapshot(c) == before and c.get("k") == "v" and c.healing_config() == healing


@pytest.mark.asyncio
async def test_a_bool_is_refused_wherever_an_async_call_expects_a_number() -> None:
    c = Cache()
    called, loader = _recording_loader()

    calls: list[tuple[Callable[[Any], Any], str]] = [
        (lambda b: c.get_or_load("n", loader, ttl=b), "ttl"),
        (lambda b: c.get_or_load("n", loader, negative_ttl=b), "negative_ttl"),
        (lambda b: c.fetch("n", loader, soft_timeout=b), "soft_timeout"),
        (lambda b: c.get_many(["n"], loader, ttl=b), "ttl"),
        (lambda b: c.write_through("n", 1, lambda k, v: called.append((k, v)), ttl=b), "ttl"),
        (lambda b: c.warm(["n"], loader, concurrency=b), "concurrency"),
        (lambda b: c.warm(["n"], loader, batch=b), "batch"),
        (lambda b: c.warm(["n"], loader, max_keys=b), "max_keys"),
        (lambda b: c.warm(["n"], loader, min_share=b), "min_share"),
    ]
    for call, field in calls:
        for flag in (True, False):
            await _ainvalid(lambda: call(flag), field)
    assert called == [] and len(c) == 0 and c.stats()["loads"] == 0


def test_a_bool_for_a_flag_is_still_a_bool() -> None:
    c = Cache(xfetch=True, stale_while_revalidate=False)
    c.set_healing(enabled=False, auto_repair=True)
    assert c.healing_config()["auto_repair"] is True


def test_if_version_that_is_no_whole_number_is_invalid_config() -> None:
    # as every other bad number of `if_version` (and as JS refuses `ifVersion: 1.5`)
    c = Cache()
    c.set("k", "v")
    before = _snapshot(c)
    for bad in (1.5, math.nan, math.inf, -0.5, 1.0):
        _invalid(lambda: c.set("k", "w", if_version=bad), "if_version")
        _invalid(lambda: c.delete("k", if_version=bad), "if_version")
    assert _snapshot(c) == before and c.get("k") == "v"


# -- a key that is not a str ---------------------------------------------------------------------


def _key_not_str(call: Callable[[], Any]) -> None:
    with pytest.raises(healcache.InvalidKey) as ei:
        call()
    assert isinstance(ei.value, TypeError), "`except TypeError` still catches a key of the wrong type"
    assert ei.value.code == "InvalidKey" and "keys must be str, not int" in str(ei.value)


def test_a_key_that_is_not_a_str_is_invalid_key_in_every_sync_call() -> None:
    c = Cache()
    c["a"] = 1
    before = _snapshot(c)
    calls: list[Callable[[], Any]] = [
        lambda: c.get(7),  # type: ignore[arg-type]
        lambda: c.get(7, 0),  # type: ignore[arg-type]
        lambda: Cache.get(c, 7),  # type: ignore[arg-type]
        lambda: c.peek(7),  # type: ignore[arg-type]
        lambda: c[7],  # type: ignore[index]
        lambda: c.__setitem__(7, 1),  # type: ignore[arg-type]
        lambda: c.__delitem__(7),  # type: ignore[arg-type]
        lambda: c.set(7, 1),  # type: ignore[arg-type]
        lambda: c.set(7, 1, tags=["t"]),  # type: ignore[arg-type]
        lambda: c.delete(7),  # type: ignore[arg-type]
        lambda: c.version(7),  # type: ignore[arg-type]
        lambda: c.get_entry(7),  # type: ignore[arg-type]
        lambda: c.get_or_load_sync(7, lambda: 1),  # type: ignore[arg-type]
    ]
    for call in calls:
        _key_not_str(call)
    assert _snapshot(c) == before


def test_in_with_a_key_that_is_not_a_str_is_false_as_in_a_dict() -> None:
    """`key in cache` answers whether the key holds a value, as `key in dict` does: only a str can
    be a key, so another type is simply not in the cache (the stub takes `object`), never an error;
    a str with no UTF-8 form is still `InvalidKey` (test above)."""
    c = Cache()
    c["1"] = 1
    before = _snapshot(c)
    for other in (1, 1.0, b"1", None, ("1",), object()):
        assert (other in c) is False
        assert (other not in c) is True
    assert _snapshot(c) == before


@pytest.mark.asyncio
async def test_a_key_that_is_not_a_str_is_invalid_key_in_every_async_call() -> None:
    c = Cache()
    called, loader = _recording_loader()

    calls: list[Callable[[], Any]] = [
        lambda: c.get_or_load(7, loader),  # type: ignore[arg-type]
        lambda: c.fetch(7, loader),  # type: ignore[arg-type]
        lambda: c.write_through(7, 1, lambda k, v: called.append((k, v))),  # type: ignore[arg-type]
        lambda: c.get_many(["ok", 7], loader),  # type: ignore[list-item]
        lambda: c.warm(["ok", 7], loader),  # type: ignore[list-item]
    ]
    for call in calls:
        with pytest.raises(healcache.InvalidKey) as ei:
            await call()
        assert isinstance(ei.value, TypeError) and "keys must be str, not int" in str(ei.value)
    assert called == [] and len(c) == 0


def test_write_behind_keys_that_are_not_str_are_invalid_key() -> None:
    c = Cache()
    written: list[Any] = []
    wb = WriteBehind(c, written.extend, flush_interval=0.01)
    try:
        _key_not_str(lambda: wb.set(7, 1))  # type: ignore[arg-type]
        _key_not_str(lambda: wb.delete(7))  # type: ignore[arg-type]
        assert wb.stats()["queue_depth"] == 0 and len(c) == 0
    finally:
        wb.close()
    assert written == []


# -- per-call keywords of the wrong type ---------------------------------------------------------


def _type_error_naming(call: Callable[[], Any], keyword: str) -> None:
    """A TypeError, as `Cache(ttl="5")` raises, whose message names the keyword."""
    with pytest.raises(TypeError) as ei:
        call()
    assert type(ei.value) is TypeError
    assert f"`{keyword}`" in str(ei.value), str(ei.value)


def test_cache_ttl_of_the_wrong_type_is_the_reference() -> None:
    _type_error_naming(lambda: Cache(ttl="5"), "ttl")  # type: ignore[arg-type]


def test_every_per_call_keyword_of_the_wrong_type_names_itself_and_changes_nothing() -> None:
    c = Cache()
    c.set("k", "v")
    before = _snapshot(c)
    wb = WriteBehind(c, lambda batch: None)
    calls: list[tuple[Callable[[], Any], str]] = [
        (lambda: c.set("k", 1, ttl="5"), "ttl"),  # type: ignore[arg-type]
        (lambda: c.set("k", 1, if_version="1"), "if_version"),  # type: ignore[arg-type]
        (lambda: c.delete("k", if_version="1"), "if_version"),  # type: ignore[arg-type]
        (lambda: c.invalidate_tag("t", hard=1), "hard"),  # type: ignore[arg-type]
        (lambda: c.sample_keys("1"), "k"),  # type: ignore[arg-type]
        (lambda: c.get_or_load_sync("n", lambda: 1, ttl="5"), "ttl"),  # type: ignore[arg-type]
        (lambda: c.get_or_load_sync("n", lambda: 1, negative_ttl="5"), "negative_ttl"),  # type: ignore[arg-type]
        (lambda: c.get_or_load_sync("n", lambda: 1, soft_timeout="5"), "soft_timeout"),  # type: ignore[arg-type]
        (lambda: c.get_or_load_sync("n", lambda: 1, stale_while_revalidate=1), "stale_while_revalidate"),  # type: ignore[arg-type]
        (lambda: c.get_or_load_sync("n", lambda: 1, xfetch=1), "xfetch"),  # type: ignore[arg-type]
        (lambda: c.cached(ttl="5"), "ttl"),  # type: ignore[arg-type]
        (lambda: c.close(timeout="5"), "timeout"),  # type: ignore[arg-type]
        (lambda: c.register_source("p", "http://example.com/{key}", allow_private=5), "allow_private"),  # type: ignore[arg-type]
        (lambda: c.register_source("p", "http://example.com/{key}", max_body_bytes="5"), "max_body_bytes"),  # type: ignore[arg-type]
        (lambda: healcache.ManualClock().advance("5"), "seconds"),  # type: ignore[arg-type]
        (lambda: wb.set("k", 1, ttl="5"), "ttl"),  # type: ignore[arg-type]
        (lambda: wb.close(timeout="5"), "timeout"),  # type: ignore[arg-type]
        (lambda: wb.failed(take=1), "take"),  # type: ignore[arg-type]
        (lambda: WriteBehind(c, lambda batch: None, flush_interval="5"), "flush_interval"),  # type: ignore[arg-type]
    ]
    try:
        for call, keyword in calls:
            _type_error_naming(call, keyword)
        assert _snapshot(c) == before and c.get("k") == "v" and c.scores() == []
    finally:
        wb.close()


@pytest.mark.asyncio
async def test_every_async_per_call_keyword_of_the_wrong_type_names_itself() -> None:
    c = Cache()
    called, loader = _recording_loader()

    def writer(k: str, v: Any) -> None:
        called.append((k, v))

    calls: list[tuple[Callable[[], Any], str]] = []
    for method in (c.get_or_load, c.fetch):
        calls += [
            (lambda m=method: m("n", loader, ttl="5"), "ttl"),
            (lambda m=method: m("n", loader, negative_ttl="5"), "negative_ttl"),
            (lambda m=method: m("n", loader, soft_timeout="5"), "soft_timeout"),
            (lambda m=method: m("n", loader, stale_while_revalidate=1), "stale_while_revalidate"),
            (lambda m=method: m("n", loader, xfetch=1), "xfetch"),
        ]
    calls += [
        (lambda: c.get_many(["n"], loader, ttl="5"), "ttl"),
        (lambda: c.write_through("n", 1, writer, ttl="5"), "ttl"),
        (lambda: c.write_through("n", 1, writer, invalidate=1), "invalidate"),
        (lambda: c.warm(["n"], loader, concurrency="1"), "concurrency"),
        (lambda: c.warm(["n"], loader, min_share="1"), "min_share"),
    ]
    for call, keyword in calls:
        with pytest.raises(TypeError) as ei:
            await call()
        assert type(ei.value) is TypeError and f"`{keyword}`" in str(ei.value), str(ei.value)
    assert called == [] and len(c) == 0 and c.stats()["loads"] == 0


def test_del_pop_and_delete_remove_a_cached_not_found() -> None:
    """docs/python.md: invalidating a key removes a cached "not found" too, so the next read loads
    the value the source now has; `del` and `pop(key)` still raise KeyError (it was no value)."""
    calls: list[str] = []

    def absent() -> Any:
        calls.append("absent")
        return healcache.NOT_FOUND

    def remove_by(how: str, c: Cache[Any]) -> None:
        if how == "del":
            with pytest.raises(KeyError):
                del c["k"]
        elif how == "pop":
            with pytest.raises(KeyError):
                c.pop("k")
        elif how == "pop-default":
            assert c.pop("k", "dflt") == "dflt"
        else:
            assert c.delete("k") is False

    for how in ["del", "pop", "pop-default", "delete"]:
        c: Cache[Any] = Cache(negative_ttl=60)
        with pytest.raises(healcache.NotFound):
            c.get_or_load_sync("k", absent)
        assert "k" not in c and len(c) == 1, "the cached not-found is an entry, not a value"
        remove_by(how, c)
        assert len(c) == 0, how
        assert c.get_or_load_sync("k", lambda: "created") == "created", how


def test_values_items_and_pop_work_as_a_dicts_do() -> None:
    """docs/python.md: the dict methods a cachetools user reaches for: `values()` and `items()` are
    snapshots of the fresh entries counting no read, `pop` removes and returns (`default`, else
    KeyError), `pop(key, None)` answers None."""
    c = Cache()
    c.set("a", 1)
    c.set("b", [2])
    hits = c.stats()["hits"]
    assert sorted(c.items(), key=lambda kv: kv[0]) == [("a", 1), ("b", [2])]
    assert sorted(map(str, c.values())) == ["1", "[2]"]
    assert c.stats()["hits"] == hits, "a snapshot counts no read"
    assert c.pop("a") == 1
    assert "a" not in c and len(c) == 1
    assert c.pop("a", "dflt") == "dflt"
    assert c.pop("a", None) is None
    with pytest.raises(KeyError):
        c.pop("a")
    with pytest.raises(TypeError):
        c.pop("a", 1, 2)  # type: ignore[call-overload]
    with pytest.raises(healcache.InvalidKey):
        c.pop(7)  # type: ignore[call-overload]
    assert c.items() == [("b", [2])]
