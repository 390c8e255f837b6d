"""The audit log: who (API key id and name) read, changed, exported, merged, unmerged or erased
which profile, and when.

One Redis stream (``Keys.audit_log``), not per customer, so erasing a customer keeps the record
that the erasure happened. Entries hold ids only (profile id, key id, key name, route), never
an email, phone or name, so there is nothing in them to erase. Retention: every append trims
entries older than ``retention_seconds`` (``XADD ... MINID ~``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import redis

from profiles.keys import Keys

ACTIONS = ("read", "create", "update", "identify", "export", "merge", "unmerge", "erase")
_SCAN_BATCH = 500
_SCAN_MAX = 200_000  # entries looked at per query at most (a filter over the stream)


class AuditLog:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        clock: Callable[[], float] = time.time,
        retention_seconds: float = 365 * 86400,
    ):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self.retention_seconds = retention_seconds

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
    ) -> None:
        """Append one entry per profile id (a merge touches two)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action}")
        now_ms = int(self.clock() * 1000)
        min_id = max(0, now_ms - int(self.retention_seconds * 1000))
        pipe = self.redis.pipeline(transaction=False)
        for profile_id in dict.fromkeys(p for p in profile_ids if p):
            pipe.xadd(
                self.keys.audit_log(),
                {
                    "at": f"{now_ms / 1000:.3f}",
                    "action": action,
                    "profile_id": profile_id,
                    "key_id": key_id,
                    "key_name": key_name,
                    "route": route,
                    "status": str(status),
                    "request_id": request_id,
                },
                minid=min_id,
                approximate=True,
            )
        pipe.execute()

    def read(self, profile_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; only entries about ``profile_id`` when given."""
        out: list[dict[str, Any]] = []
        end, seen = "+", 0
        while len(out) < limit and seen < _SCAN_MAX:
            batch = self.redis.xrevrange(self.keys.audit_log(), max=end, count=_SCAN_BATCH)
            if not batch:
                break
            for entry_id, fields in batch:
                if profile_id is None or fields.get("profile_id") == profile_id:
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
