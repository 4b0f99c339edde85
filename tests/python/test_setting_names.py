"""Promise: every surface takes the names the others show. The RESP server's CONFIG shows a
healing setting as `healing.<name>`; Python takes that name too, in its own unit (seconds)."""

from datetime import timedelta

import healcache
import pytest


def test_a_healing_setting_is_taken_under_healing_dot_its_name():
    c = healcache.Cache()
    assert c.config_get("healing.verify_interval") == c.config_get("verify_interval")
    c.config_set("healing.verify_interval", 2.5)
    assert c.healing_config()["verify_interval"] == 2.5
    c.config_set("healing.source_timeout", 0.25)
    assert c.config_get("healing.source_timeout") == "0.25"
    assert c.config_get("healing.fleet_verify") == "true"
    c.config_set("healing.fleet_verify_lease", 7)
    assert c.healing_config()["fleet_verify_lease"] == 7.0
    # the former names keep their unit, milliseconds
    c.config_set("healing.verify_interval_ms", "1500")
    assert c.healing_config()["verify_interval"] == 1.5
    # a timedelta carries its unit: taken under either name
    c.config_set("healing.verify_interval_ms", timedelta(seconds=3))
    assert c.healing_config()["verify_interval"] == 3.0
    c.config_set("source_timeout_ms", timedelta(milliseconds=400))
    assert c.healing_config()["source_timeout"] == 0.4


@pytest.mark.parametrize("name", ["healing.load_timeout", "healing.healing.sample_rate", "healing."])
def test_only_healing_settings_take_the_prefix(name):
    c = healcache.Cache()
    before = c.healing_config()
    with pytest.raises(healcache.InvalidConfig):
        c.config_set(name, 1)
    assert c.healing_config() == before
