"""REDIS_URL in the Sentinel form: our clients find the master through the Sentinels and
follow a failover, a replica confirms the writes that must survive one, and `check` shows
the set. Each test has a replicated Redis of its own (master, replica, three Sentinels on
free loopback ports)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner

from tests.helpers import wait_until
from tests.test_cli import output_line
from zapa_bridge.cli import main
from zapa_bridge.devtools.replicated_redis import ReplicatedRedis
from zapa_bridge.store.connection import redis_client
from zapa_bridge.store.durability import ReplicaWait

pytestmark = pytest.mark.slow


@pytest.fixture
def ha() -> Iterator[ReplicatedRedis]:
    with ReplicatedRedis() as servers:
        yield servers


def test_a_client_finds_the_master_and_follows_a_failover_keeping_confirmed_writes(ha):
    client = redis_client(ha.url)
    durable = ReplicaWait(replicas=1, timeout=0.2).wrap(
        client.register_script("return redis.call('SET', KEYS[1], ARGV[1])"))
    durable(keys=["zapa:test:k"], args=["confirmed"])
    ha.master.kill()
    wait_until(lambda: ha.current_master() is ha.replica, timeout=15, what="the promotion")

    def written() -> bool:
        try:
            return bool(client.set("zapa:test:after", "1"))
        except redis.RedisError:
            return False

    wait_until(written, timeout=10, what="a write on the new master")
    assert client.get("zapa:test:k") == "confirmed"
    with redis.Redis(port=ha.replica.port, decode_responses=True) as promoted:
        assert promoted.get("zapa:test:after") == "1"


def test_check_reports_the_master_the_sentinels_the_replica_and_the_wait_met(ha):
    result = CliRunner().invoke(main, ["check"], env={
        "REDIS_URL": ha.url, "ZAPA_REDIS_WAIT_REPLICAS": "1", "ZAPW_URL": "http://127.0.0.1:9"})
    redis_line = output_line(result.output, "redis sentinel://")
    assert redis_line.endswith(f": ok, Sentinel master 'mymaster' at 127.0.0.1:{ha.master.port} "
                               "(3 of 3 Sentinels answering)")
    assert output_line(result.output, "redis replicas:") == "redis replicas: 1 replica"
    assert f"127.0.0.1:{ha.replica.port} online" in result.output
    assert "NOT MET" not in result.output


def test_check_says_the_wait_cannot_be_met_without_an_online_replica(ha):
    ha.replica.stop()
    wait_until(lambda: not ha.replicas_online(), timeout=10, what="the replica gone")
    result = CliRunner().invoke(main, ["check"], env={
        "REDIS_URL": ha.url, "ZAPA_REDIS_WAIT_REPLICAS": "1", "ZAPW_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 1
    assert "redis durability: NOT MET: 0 online" in result.output
