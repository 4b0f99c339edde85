"""Settings come from the core's one table: every setting is a keyword of `Cache(...)` (healing
settings prefixed `healing_`) and of `set_healing(...)`, under the table's name, in Python's units
(durations in seconds or as a `datetime.timedelta`)."""

from __future__ import annotations

import inspect
import math
from datetime import timedelta

import pytest

import healcache
from healcache import Cache
from healcache._healcache import _settings

TABLE = _settings()
CACHE = [(name, unit) for name, scope, unit in TABLE if scope == "cache"]
HEALING = [(name, unit) for name, scope, unit in TABLE if scope == "healing"]
# Python objects rather than numbers: not settings of the table
PYTHON_ONLY = {"weigher", "healing_comparator", "clock", "redis", "l2_prefix", "fleet_lock"}


def keyword(name: str, scope: str) -> str:
    return name if scope == "cache" else f"healing_{name}"


def test_the_table_is_the_core_one() -> None:
    names = [name for name, _, _ in TABLE]
    assert len(names) == len(set(names))
    assert {"ttl", "load_timeout", "seed"} <= {n for n, _ in CACHE}
    assert {"enabled", "verify_interval", "max_samples"} <= {n for n, _ in HEALING}
    assert not [n for n in names if n.endswith("_ms")], "names carry no unit"


def test_every_setting_is_a_keyword_of_cache_and_nothing_else_is() -> None:
    params = inspect.signature(Cache).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is None for p in params.values())
    assert set(params) - PYTHON_ONLY == {keyword(name, scope) for name, scope, _ in TABLE}


def test_every_healing_setting_is_a_keyword_of_set_healing_and_a_key_of_healing_config() -> None:
    params = inspect.signature(Cache.set_healing).parameters
    assert [p for p in params if p != "self"] == [name for name, _ in HEALING]
    assert list(Cache().healing_config()) == [name for name, _ in HEALING]


@pytest.mark.parametrize("name, scope", [(n, s) for n, s, u in TABLE if u == "duration"])
def test_every_duration_is_seconds_or_a_timedelta(name: str, scope: str) -> None:
    kw = keyword(name, scope)
    Cache(**{kw: 1.5})
    Cache(**{kw: timedelta(milliseconds=1500)})
    # `ttl=math.inf` is "no expiry" (tests/python/test_conventions.py); -inf is no duration
    for bad in [0, -1, timedelta(0), timedelta(seconds=-1), math.nan, -math.inf] + ([] if kw == "ttl" else [math.inf]):
        with pytest.raises(healcache.InvalidConfig) as ei:
            Cache(**{kw: bad})
        assert ei.value.field == kw and "seconds" in str(ei.value) and "_ms" not in str(ei.value), bad
    if scope == "healing":
        c = Cache(**{kw: timedelta(milliseconds=1500)})
        assert c.healing_config()[name] == 1.5  # type: ignore[literal-required]
        c.set_healing(**{name: timedelta(seconds=3)})
        assert c.healing_config()[name] == 3.0  # type: ignore[literal-required]
        assert c.config_get(name) == "3" and c.config_get(f"healing.{name}_ms") == "3000"


@pytest.mark.parametrize("name, scope", [(n, s) for n, s, u in TABLE if u == "flag"])
def test_every_flag_is_a_bool(name: str, scope: str) -> None:
    kw = keyword(name, scope)
    for bad in [1, 0.0, "yes"]:
        with pytest.raises(TypeError):
            Cache(**{kw: bad})
    with pytest.raises(TypeError):
        Cache(**{kw: timedelta(seconds=1)})


# `seed` takes any int up to 2**64-1 and refuses anything else with InvalidConfig (test_errors.py)
@pytest.mark.parametrize("name, scope", [(n, s) for n, s, u in TABLE if u not in ("flag", "duration") and n != "seed"])
def test_no_other_setting_takes_a_timedelta(name: str, scope: str) -> None:
    with pytest.raises(TypeError):
        Cache(**{keyword(name, scope): timedelta(seconds=1)})


# `seed` refuses anything but an int with InvalidConfig (test_errors.py)
@pytest.mark.parametrize("name, scope, unit", [(n, s, u) for n, s, u in TABLE if n != "seed"])
def test_a_value_of_the_wrong_type_is_a_type_error_naming_the_setting(name: str, scope: str, unit: str) -> None:
    kw = keyword(name, scope)
    for bad in ["5", [1], None if unit == "flag" else object()]:
        if bad is None:
            continue
        with pytest.raises(TypeError, match=f"`{kw}`"):
            Cache(**{kw: bad})


def test_a_bool_given_for_a_number_is_refused_naming_the_setting() -> None:
    # a bool is an int to Python, but `healing_score_window=True` is a mistake, not a window of 1
    for kw in ("healing_verify_interval", "healing_score_window"):
        with pytest.raises(healcache.InvalidConfig) as ei:
            Cache(**{kw: True})
        assert ei.value.field == kw and "not a bool" in str(ei.value)
    c = Cache(healing_verify_interval=1, healing_score_window=1)
    assert c.healing_config()["verify_interval"] == 1.0, "one second"
    assert c.healing_config()["score_window"] == 1


def test_an_error_names_the_setting_as_written_and_in_its_unit() -> None:
    """The message names the setting as the caller wrote it (a `Cache` keyword with its
    `healing_` prefix, a `config_set` name) and gives values in the unit of that name (seconds,
    or milliseconds for a former `_ms` name), like the exception's `field`."""
    with pytest.raises(healcache.InvalidConfig) as ei:
        healcache.Cache(healing_sample_rate=2)
    assert ei.value.field == "healing_sample_rate"
    assert str(ei.value) == "invalid config: `healing_sample_rate` must be between 0 and 1, got 2"
    c = healcache.Cache()
    with pytest.raises(healcache.InvalidConfig) as ei:
        c.config_set("healing.verify_interval_ms", "-1500")
    assert ei.value.field == "healing.verify_interval_ms"
    assert str(ei.value) == (
        "invalid config: `healing.verify_interval_ms` must be a positive number of milliseconds, got -1500"
    )
    with pytest.raises(healcache.InvalidConfig) as ei:
        c.config_set("verify_interval", "-1.5")
    assert str(ei.value) == "invalid config: `verify_interval` must be a positive number of seconds, got -1.5"
    with pytest.raises(healcache.InvalidConfig) as ei:
        healcache.Cache(ttl=1e-10)
    assert str(ei.value).endswith("must be at least one nanosecond (0.000000001 seconds), got 1e-10 seconds")
