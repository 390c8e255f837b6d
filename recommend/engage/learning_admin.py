"""Admin operations on the learning of next-best actions: resetting one action's learned
counters, and the experiment settings (control share, salt) stored in Redis.

**Reset** (``reset_learning``) zeroes what the adaptive propensity learned about one action:
its segment counters (``SharedKeys.action_segments`` fields ``<action>|...``) and its
per-group daily outcome buckets (``SharedKeys.action_outcomes``, every retained day, and the
per-segment ones of ``adaptive.segment_outcomes_key``; a day's admitted values stay). The
customers' feedback records, cooldowns and contact logs stay (they are the history, and the
contact policy needs them), and so do the action's global statistics (``action_stats``, the
catalogue's report and the root of the back-off).

**Experiment** (``SharedKeys.action_experiment``, a hash ``control_share``, ``salt``): set by
an admin, it overrides ``RAPPORT_NBA_CONTROL_SHARE`` / ``RAPPORT_NBA_SALT``; the ranking reads it
in its one pipeline, the feedback path at most once a second (``AdaptivePropensity.apply``).
A damaged stored value is ignored with a warning (the configured default applies).
"""

from __future__ import annotations

import time
from typing import Any

from recommend.engage.adaptive import GROUPS, RETAIN_DAYS, day_of, segment_outcomes_key

OUTCOME_COUNTERS = ("shown", "accepted", "completed")
_SCAN_COUNT = 1000


def reset_learning(client: Any, keys: Any, action_id: str, now: float | None = None) -> dict:
    """Zero one action's segment counters and per-group outcome buckets; returns how many
    fields were removed (``segment_fields``, ``outcome_fields``)."""
    now = time.time() if now is None else now
    segments = keys.action_segments()
    pattern = _escape(action_id) + "|*"
    fields = [f for f, _ in client.hscan_iter(segments, match=pattern, count=_SCAN_COUNT)]
    removed_segments = 0
    for start in range(0, len(fields), _SCAN_COUNT):
        removed_segments += int(client.hdel(segments, *fields[start : start + _SCAN_COUNT]))
    buckets = [f"{g}:{action_id}:{c}" for g in GROUPS for c in OUTCOME_COUNTERS]
    pipe = client.pipeline(transaction=False)
    for back in range(RETAIN_DAYS + 1):
        pipe.hdel(keys.action_outcomes(day_of(now - back * 86400)), *buckets)
    removed_outcomes = sum(int(n) for n in pipe.execute())
    removed_outcomes += _reset_segment_outcomes(client, keys, action_id, now)
    return {
        "action_id": action_id,
        "segment_fields": removed_segments,
        "outcome_fields": removed_outcomes,
    }


def _reset_segment_outcomes(client: Any, keys: Any, action_id: str, now: float) -> int:
    """Remove the action's per-segment outcome fields from every retained day; returns how
    many (the days' hashes that exist are scanned)."""
    names = [
        segment_outcomes_key(keys, day_of(now - back * 86400)) for back in range(RETAIN_DAYS + 1)
    ]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.exists(name)
    removed = 0
    for name, exists in zip(names, pipe.execute(), strict=True):
        if not exists:
            continue
        for group in GROUPS:
            match = _escape(f"{group}:{action_id}:") + "*"
            fields = [f for f, _ in client.hscan_iter(name, match=match, count=_SCAN_COUNT)]
            for start in range(0, len(fields), _SCAN_COUNT):
                removed += int(client.hdel(name, *fields[start : start + _SCAN_COUNT]))
    return removed


def _escape(text: str) -> str:
    """``text`` with the glob characters of ``HSCAN MATCH`` escaped."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def write_experiment(
    client: Any, keys: Any, *, control_share: float | None, salt: str | None
) -> dict[str, str]:
    """Store the given settings (None: unchanged); returns the stored hash."""
    values: dict[str, str] = {}
    if control_share is not None:
        values["control_share"] = repr(float(control_share))
    if salt is not None:
        values["salt"] = salt
    pipe = client.pipeline(transaction=False)
    if values:
        pipe.hset(keys.action_experiment(), mapping=values)
    pipe.hgetall(keys.action_experiment())
    return dict(pipe.execute()[-1])
