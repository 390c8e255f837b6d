"""The audit log: who (API key id and name) read, changed, exported, merged, unmerged or erased
which profile, and when.

One Redis stream (``Keys.audit_log``), not per customer, so erasing a customer keeps the record
that the erasure happened. Entries hold ids only (profile id, key id, key name, route), never
an email, phone or name, so there is nothing in them to erase. Retention: every append trims
entries older than ``retention_seconds`` (``XADD ... MINID ~``).

Reads are audited write-behind when ``flush_seconds`` > 0: ``record(..., defer=True)`` puts the
entry in this process's buffer and a background thread appends the buffer in one pipeline at
most ``flush_seconds`` later, so a read costs no round trip of its own (one ``XADD`` was a
third of a profile read's Redis work). Every other entry is written at once, in the same
pipeline as whatever is buffered before it, and a process sends one such pipeline at a time
(taking the buffer and running the pipeline under one lock, so the flusher's held-back reads
cannot land after a newer change a request wrote meanwhile): a process's entries reach the
stream in the order they were logged. Reading the log (:meth:`read`) flushes first. What can
be lost: on ``kill -9`` of a worker, the reads of the last ``flush_seconds``; a normal exit
flushes. If Redis refuses the flush, the entries stay buffered (up to ``_BUFFER_MAX``, then
the oldest are dropped and counted in ``dropped``) and go with the next flush.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, cast

import redis
from redis.typing import EncodableT, FieldT

from profiles.keys import Keys

ACTIONS = (
    "read",
    "create",
    "update",
    "identify",
    "export",
    "merge",
    "unmerge",
    "erase",
    "admin",  # an admin change that touches no profile (profile_id ''; route is the path)
)
_SCAN_BATCH = 500
_SCAN_MAX = 200_000  # entries looked at per query at most (a filter over the stream)
_BUFFER_MAX = 100_000  # deferred entries held while Redis refuses them

log = logging.getLogger("rapport.audit")
_HOLDING: weakref.WeakSet[AuditLog] = weakref.WeakSet()  # logs that may hold entries back
_FIRST_USE = threading.Lock()  # a log's buffer is set up once per process

# One entry's fields as XADD takes them (ours are all str -> str; redis-py's parameter is a
# dict of its wider field/value types, and a dict[str, str] is not one: dict is invariant).
Fields = dict[FieldT, EncodableT]


@atexit.register
def _flush_all_at_exit() -> None:
    for audit in list(_HOLDING):
        audit.flush_at_exit()


class AuditLog:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        clock: Callable[[], float] = time.time,
        retention_seconds: float = 365 * 86400,
        flush_seconds: float = 0.0,
    ):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self.retention_seconds = retention_seconds
        self.flush_seconds = flush_seconds
        self.dropped = 0
        self._pid = -1  # the buffer and its thread belong to one process (gunicorn forks)
        self._buffer: deque[Fields] = deque()
        self._lock = threading.Lock()  # guards the buffer
        self._send = threading.Lock()  # one writer at a time, held while its pipeline runs
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None

    def record(
        self,
        action: str,
        profile_ids: Iterable[str],
        *,
        key_id: str,
        key_name: str,
        route: str,
        status: int,
        request_id: str = "",
        defer: bool = False,
    ) -> None:
        """Append one entry per profile id (a merge touches two); ``defer``: write-behind
        (see the module doc), when this log has a flush interval."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action}")
        now = self.clock()
        entries: list[Fields] = [
            {
                "at": f"{now:.3f}",
                "action": action,
                "profile_id": profile_id,
                "key_id": key_id,
                "key_name": key_name,
                "route": route,
                "status": str(status),
                "request_id": request_id,
            }
            for profile_id in dict.fromkeys(p for p in profile_ids if p or action == "admin")
        ]
        if defer and self.flush_seconds > 0:
            self._hold(entries)
            return
        self._write(entries)

    def flush(self) -> None:
        """Write whatever this process holds back (raises ``redis.RedisError`` if Redis
        refuses; the entries then stay buffered)."""
        self._write([])

    def _write(self, entries: list[Fields]) -> None:
        # ``_send`` is held from taking the buffer until the pipeline has run: one writer at a
        # time, so entries reach the stream in the order they were logged. (Taking the buffer
        # and sending it after letting go let the flusher's reads land after a newer change
        # another thread wrote at once.) ``_lock`` only guards the buffer, so deferring a read
        # never waits for a round trip.
        self._own_process()
        with self._send:
            with self._lock:
                held = list(self._buffer)
                self._buffer.clear()
            if not held and not entries:
                return
            min_id = max(0, int((self.clock() - self.retention_seconds) * 1000))
            pipe = self.redis.pipeline(transaction=False)
            for fields in (*held, *entries):
                pipe.xadd(self.keys.audit_log(), fields, minid=min_id, approximate=True)
            try:
                pipe.execute()
            except redis.RedisError:
                with self._lock:  # keep what was held back, in order, ahead of newer entries
                    self._buffer.extendleft(reversed(held))
                    self._cap()
                raise

    def _cap(self) -> None:
        while len(self._buffer) > _BUFFER_MAX:
            self._buffer.popleft()
            self.dropped += 1

    def _own_process(self) -> None:
        """Set up the buffer and locks on first use in this process (or a forked child: a
        child does not write its parent's entries, and a lock another parent thread held at
        the fork would stay held in the child)."""
        if self._pid == os.getpid():
            return
        with _FIRST_USE:
            if self._pid != os.getpid():
                self._buffer = deque()
                self._lock = threading.Lock()
                self._send = threading.Lock()
                self._flusher = None
                _HOLDING.add(self)
                self._pid = os.getpid()

    def _hold(self, entries: list[Fields]) -> None:
        self._own_process()
        with self._lock:
            self._buffer.extend(entries)
            self._cap()
            if self._flusher is None:  # started on demand; it ends after a quiet minute
                self._flusher = threading.Thread(target=self._flush_loop, daemon=True)
                self._flusher.start()
        self._wake.set()

    def _flush_loop(self) -> None:
        while True:
            if not self._wake.wait(timeout=60):
                with self._lock:
                    if not self._buffer:
                        self._flusher = None
                        return
            time.sleep(self.flush_seconds)  # gather what arrives meanwhile into one pipeline
            self._wake.clear()
            try:
                self.flush()
            except redis.RedisError as exc:
                log.error("audit entries not written yet: %s", exc.__class__.__name__)
                time.sleep(min(1.0, 10 * self.flush_seconds))
                self._wake.set()
            except Exception:  # the flusher must outlive any surprise; it logs and goes on
                log.exception("audit flush failed")

    def flush_at_exit(self) -> None:
        try:
            self.flush()
        except redis.RedisError as exc:
            log.error("audit entries lost at exit: %s", exc.__class__.__name__)

    def read(
        self, profile_id: str | None = None, limit: int = 100, action: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; only entries about ``profile_id`` and/or of ``action`` when given (this
        process's held-back entries are written first)."""
        self.flush()
        out: list[dict[str, Any]] = []
        end, seen = "+", 0
        while len(out) < limit and seen < _SCAN_MAX:
            batch = cast(  # the client decodes responses (service.redis_connect builds it so)
                "list[tuple[str, dict[str, str]]]",
                self.redis.xrevrange(self.keys.audit_log(), max=end, count=_SCAN_BATCH),
            )
            if not batch:
                break
            for entry_id, fields in batch:
                if (profile_id is None or fields.get("profile_id") == profile_id) and (
                    action is None or fields.get("action") == action
                ):
                    out.append(_entry(entry_id, fields))
                    if len(out) == limit:
                        break
            seen += len(batch)
            end = "(" + batch[-1][0]
        return out


def _entry(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    return {
        "id": entry_id,
        "at": float(fields.get("at", 0)),
        "action": fields.get("action", ""),
        "profile_id": fields.get("profile_id", ""),
        "key_id": fields.get("key_id", ""),
        "key_name": fields.get("key_name", ""),
        "route": fields.get("route", ""),
        "status": int(fields.get("status", 0) or 0),
        "request_id": fields.get("request_id", ""),
    }
