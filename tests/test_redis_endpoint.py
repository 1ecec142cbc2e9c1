"""REDIS_URL's two forms, as settings read them and as kombu and redis-py get them."""

from __future__ import annotations

import pytest

from zapa_bridge.config import load_settings
from zapa_bridge.errors import ConfigError
from zapa_bridge.store.redis_endpoint import RedisEndpoint, SentinelUrl

SENTINELS = "sentinel://:s%40cret@10.0.0.1:26379;sentinel://10.0.0.2:26380/2"


def test_the_sentinel_form_names_each_sentinel_the_db_and_the_masters_password():
    parts = SentinelUrl.parse(SENTINELS)
    assert parts.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380))
    assert (parts.db, parts.password, parts.username) == (2, "s@cret", None)


def test_kombu_gets_the_password_and_the_db_on_every_part():
    assert RedisEndpoint(SENTINELS).broker_url == (
        "sentinel://:s%40cret@10.0.0.1:26379/2;sentinel://:s%40cret@10.0.0.2:26380/2")


def test_a_plain_url_goes_to_kombu_as_it_is():
    endpoint = RedisEndpoint("redis://:pw@127.0.0.1:6379/1")
    assert (endpoint.sentinel, endpoint.broker_url) == (None, "redis://:pw@127.0.0.1:6379/1")


def test_the_settings_carry_the_master_name_and_the_sentinels_password_unshown():
    settings = load_settings(REDIS_URL=SENTINELS, REDIS_SENTINEL_MASTER="zapa",
                             REDIS_SENTINEL_PASSWORD="sentinel-secret")
    assert (settings.redis.master_name, settings.redis.sentinel_password) == (
        "zapa", "sentinel-secret")
    assert "secret" not in repr(settings.redis)


def test_the_durability_setting_is_off_unless_asked():
    assert load_settings().durability.replicas == 0
    wait = load_settings(ZAPA_REDIS_WAIT_REPLICAS="1", ZAPA_REDIS_WAIT_TIMEOUT="0.1").durability
    assert (wait.replicas, wait.timeout) == (1, 0.1)


@pytest.mark.parametrize(("url", "problem"), [
    ("sentinel://10.0.0.1", "each Sentinel needs host:port"),
    ("sentinel://10.0.0.1:26379;redis://10.0.0.2:6379", "must start with sentinel://"),
    ("sentinel://10.0.0.1:26379/zero", "the db must be a number"),
    ("memcached://10.0.0.1", "must start with redis://, rediss://, unix:// or sentinel://"),
])
def test_a_bad_redis_url_is_refused_naming_what_is_wrong(url, problem):
    with pytest.raises(ConfigError, match="REDIS_URL") as caught:
        load_settings(REDIS_URL=url)
    assert problem in str(caught.value)


def test_a_wait_as_long_as_the_webhook_clients_timeout_is_refused():
    with pytest.raises(ConfigError, match="ZAPA_REDIS_WAIT_TIMEOUT"):
        load_settings(ZAPA_REDIS_WAIT_TIMEOUT="0.5")
