"""DeadlineRetry: a dead server costs one timeout, then fails at once, and recovery is
automatic (real redis-server, killed and restarted on its port)."""

from __future__ import annotations

import time

import pytest
import redis

from service.redis_connect import DeadlineRetry, connect
from service.redis_server import RedisServer


def _timed(fn):
    started = time.monotonic()
    try:
        return fn(), time.monotonic() - started
    except redis.ConnectionError as exc:
        return exc, time.monotonic() - started


def test_dead_server_fails_within_the_timeout_then_at_once(tmp_path):
    server = RedisServer(tmp_path / "r").start()
    client = connect(server.url, timeout=0.4)
    try:
        assert isinstance(client.connection_pool.connection_kwargs["retry"], DeadlineRetry)
        assert client.set("k", "v")
        server.kill()
        first, first_s = _timed(lambda: client.get("k"))
        assert isinstance(first, redis.ConnectionError)
        assert first_s < 0.4 + 0.3  # retried, but never past the deadline
        for _ in range(3):
            later, later_s = _timed(lambda: client.get("k"))
            assert isinstance(later, redis.ConnectionError)
            assert later_s < 0.1  # the outage is known: one attempt, refused at once
        server.start()
        value, _ = _timed(lambda: client.set("k", "again"))
        assert value is True  # no restart of the client: the first success ends the outage
        assert client.get("k") == "again"
    finally:
        client.close()
        server.stop()


def test_retries_ride_out_a_short_blip(tmp_path):
    server = RedisServer(tmp_path / "r").start()
    client = connect(server.url, timeout=3.0)
    try:
        assert client.ping()
        server.kill()
        import threading

        restart = threading.Timer(0.3, server.start)
        restart.start()
        assert client.set("k", "v") is True  # backoff retries outlast a 0.3 s outage
        restart.join()
    finally:
        client.close()
        server.stop()


@pytest.mark.parametrize("deadline", [0.2, 1.0])
def test_deadline_is_kept(deadline):
    retry = DeadlineRetry(deadline)
    calls = []

    def fail():
        calls.append(time.monotonic())
        raise redis.ConnectionError("down")

    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(fail, lambda error: None)
    assert time.monotonic() - started <= deadline + 0.05
    assert len(calls) >= 2  # it did retry
    assert retry.outage.since is not None
    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(fail, lambda error: None)
    assert retry.call_with_retry(lambda: "ok", lambda error: None) == "ok"
    assert retry.outage.since is None
