"""Audit entries reach the stream in the order they were logged (profiles/audit.py).

A read is held back (write-behind) and a change is written at once with whatever is held before
it. The flusher thread and a writing request thread both take the buffer; if one of them takes
it and lets go of the lock before its pipeline runs, the other's pipeline can land first, and a
read logged before an update then shows up after it (tests/api/test_audit.py saw ``read`` where
it expected ``update`` under more workers). These tests run many threads that log reads and
changes at once, with a flusher that runs all the time, against a real Redis.
"""

from __future__ import annotations

import sys
import threading
from collections import defaultdict

import pytest

from profiles.audit import AuditLog
from profiles.keys import Keys

_THREADS = 8
_ROUNDS = 500


@pytest.fixture(autouse=True)
def _eager_thread_switches():
    """Switch threads far more often than the default 5 ms, so one thread is often paused
    between taking the buffer and sending it: the window the race needs."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _record(audit: AuditLog, action: str, profile_id: str, *, defer: bool) -> None:
    audit.record(
        action, [profile_id], key_id="k1", key_name="n", route="GET x", status=200, defer=defer
    )


def _run_threads(target, count: int) -> None:
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(t: int) -> None:
        try:
            start.wait()
            target(t)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def _by_thread(redis_client) -> dict[str, list[tuple[str, str]]]:
    """Stream entries grouped by the logging thread (the profile id's ``t<n>`` prefix)."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for _, fields in redis_client.xrange("rp:audit"):
        thread = fields["profile_id"].split("_", 1)[0]
        out[thread].append((fields["action"], fields["profile_id"]))
    return out


def test_reads_and_changes_logged_by_many_threads_land_in_logging_order(redis_client):
    # A flush interval far below a round trip: the flusher takes the buffer all the time, so
    # it races every change a thread writes at once.
    audit = AuditLog(redis_client, Keys(), flush_seconds=0.0001)
    logged: dict[str, list[tuple[str, str]]] = {}

    def work(t: int) -> None:
        mine = logged[f"t{t}"] = []
        for i in range(_ROUNDS):
            pid = f"t{t}_{i}"
            for action, defer in (("read", True), ("read", True), ("update", False)):
                _record(audit, action, pid, defer=defer)
                mine.append((action, pid))

    _run_threads(work, _THREADS)
    audit.flush()
    stored = _by_thread(redis_client)
    assert sum(len(v) for v in stored.values()) == _THREADS * _ROUNDS * 3  # none lost
    for thread, entries in logged.items():
        assert stored[thread] == entries, f"{thread}: the stream order is not the logging order"


def test_no_read_logged_before_a_change_lands_after_it(redis_client):
    # The shape of the API test: one thread reads then updates a profile, while other threads'
    # reads keep the flusher busy.
    audit = AuditLog(redis_client, Keys(), flush_seconds=0.0001)

    def work(t: int) -> None:
        for i in range(_ROUNDS):
            pid = f"t{t}_{i}"
            _record(audit, "read", pid, defer=True)
            if t % 2 == 0:
                _record(audit, "update", pid, defer=False)

    _run_threads(work, _THREADS)
    audit.flush()
    position = {}
    for n, (_, fields) in enumerate(redis_client.xrange("rp:audit")):
        position[(fields["action"], fields["profile_id"])] = n
    late = [
        pid
        for (action, pid), n in position.items()
        if action == "update" and position[("read", pid)] > n
    ]
    assert late == [], f"reads written after the update logged after them: {late[:5]}"
