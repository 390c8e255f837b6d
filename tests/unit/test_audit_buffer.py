"""Write-behind audit of reads (profiles/audit.py): deferred entries land within the flush
interval, in order with the entries written at once, survive a Redis refusal, and a worker's
normal exit writes what it held back."""

from __future__ import annotations

import time

import pytest
import requests

from profiles.audit import AuditLog
from profiles.keys import Keys
from tests.conftest import start_live_server, stop_live_server

KEYS = Keys()


def _entry(audit: AuditLog, action: str, pid: str, *, defer: bool) -> None:
    audit.record(action, [pid], key_id="k1", key_name="n", route="GET x", status=200, defer=defer)


def _wait_for_len(redis_client, n: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if redis_client.xlen(KEYS.audit_log()) >= n:
            break
        time.sleep(0.01)
    return redis_client.xlen(KEYS.audit_log())


def test_deferred_reads_land_within_the_flush_interval(redis_client):
    audit = AuditLog(redis_client, KEYS, flush_seconds=0.2)
    for i in range(25):
        _entry(audit, "read", f"c_{i}", defer=True)
    assert redis_client.xlen(KEYS.audit_log()) == 0  # held back: no round trip per read
    assert _wait_for_len(redis_client, 25) == 25
    entries = redis_client.xrange(KEYS.audit_log())
    assert [e[1]["profile_id"] for e in entries] == [f"c_{i}" for i in range(25)]


def test_an_entry_written_at_once_takes_the_held_back_ones_first(redis_client):
    audit = AuditLog(redis_client, KEYS, flush_seconds=30)  # the flusher will not run
    _entry(audit, "read", "c_1", defer=True)
    _entry(audit, "read", "c_2", defer=True)
    _entry(audit, "erase", "c_3", defer=False)
    entries = redis_client.xrange(KEYS.audit_log())
    assert [(e[1]["action"], e[1]["profile_id"]) for e in entries] == [
        ("read", "c_1"),
        ("read", "c_2"),
        ("erase", "c_3"),
    ]


def test_reading_the_log_writes_what_this_process_held_back(redis_client):
    audit = AuditLog(redis_client, KEYS, flush_seconds=30)
    _entry(audit, "read", "c_9", defer=True)
    assert [e["profile_id"] for e in audit.read()] == ["c_9"]


def test_without_a_flush_interval_every_entry_is_written_at_once(redis_client):
    audit = AuditLog(redis_client, KEYS, flush_seconds=0)
    _entry(audit, "read", "c_1", defer=True)
    assert redis_client.xlen(KEYS.audit_log()) == 1


def test_entries_held_while_redis_refuses_are_written_later(redis_client):
    audit = AuditLog(redis_client, KEYS, flush_seconds=30)
    _entry(audit, "read", "c_1", defer=True)
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)
    try:
        with pytest.raises(Exception, match="maxmemory"):
            _entry(audit, "update", "c_2", defer=False)
        with pytest.raises(Exception, match="maxmemory"):
            audit.flush()
    finally:
        redis_client.config_set("maxmemory", 0)
    audit.flush()
    entries = redis_client.xrange(KEYS.audit_log())
    assert [e[1]["profile_id"] for e in entries] == ["c_1"]  # kept, not lost; c_2 was refused


@pytest.mark.e2e
def test_a_worker_stopped_normally_writes_its_held_back_reads(redis_url, redis_client, tmp_path):
    server = start_live_server(
        redis_url, tmp_path / "live", workers=1, env={"RAPPORT_AUDIT_FLUSH_MS": "10000"}
    )
    try:
        from service.auth import ApiKeyStore

        _, token = ApiKeyStore(redis_client, KEYS).create("t", ["admin"])
        auth = {"Authorization": f"Bearer {token}"}
        created = requests.post(
            server.url("/v1/profiles"), json={"first_name": "Ann"}, headers=auth, timeout=5
        )
        cid = created.json()["id"]
        assert requests.get(server.url(f"/v1/profiles/{cid}"), headers=auth, timeout=5).ok
        actions = [e[1]["action"] for e in redis_client.xrange(KEYS.audit_log())]
        assert actions == ["create"]  # the read is held back (10 s interval)
    finally:
        stop_live_server(server)  # SIGTERM: gunicorn stops the worker normally
    actions = [e[1]["action"] for e in redis_client.xrange(KEYS.audit_log())]
    assert actions == ["create", "read"]
