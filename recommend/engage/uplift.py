"""How the next-best actions do per experiment group: acceptance per action and group
(adaptive, control) with Wilson 95% intervals, and the uplift of adaptive over control with
Newcombe's interval. Input: the daily per-group counters ``ContactPolicy`` keeps
(``SharedKeys.action_outcomes``, see ``recommend/engage/adaptive.py``); and the same per
segment key and value (:func:`segment_performance`, from the per-day segment hashes that
``recommend/engage/impressions.py`` describes)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from recommend.engage.adaptive import (
    GROUPS,
    MAX_REPORT_VALUES,
    OPEN_REPORT_KEYS,
    REPORT_KEYS,
    segment_outcomes_key,
)

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95% by default); None without trials."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def days_between(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _group_view(counts: Mapping[str, int]) -> dict[str, Any]:
    shown, accepted = counts.get("shown", 0), counts.get("accepted", 0)
    interval = wilson(accepted, shown)
    return {
        "shown": shown,
        "accepted": accepted,
        "completed": counts.get("completed", 0),
        "acceptance_rate": round(accepted / shown, 4) if shown else None,
        "completion_rate": round(counts.get("completed", 0) / shown, 4) if shown else None,
        "low": round(interval[0], 4) if interval else None,
        "high": round(interval[1], 4) if interval else None,
    }


def _uplift(adaptive: Mapping[str, int], control: Mapping[str, int]) -> dict[str, Any] | None:
    """Adaptive minus control acceptance rate, with Newcombe's 95% interval (from the two
    Wilson intervals); None when a group has no offers."""
    na, nc = adaptive.get("shown", 0), control.get("shown", 0)
    wa, wc = wilson(adaptive.get("accepted", 0), na), wilson(control.get("accepted", 0), nc)
    if wa is None or wc is None:
        return None
    pa, pc = adaptive.get("accepted", 0) / na, control.get("accepted", 0) / nc
    diff = pa - pc
    low = diff - math.sqrt((pa - wa[0]) ** 2 + (wc[1] - pc) ** 2)
    high = diff + math.sqrt((wa[1] - pa) ** 2 + (pc - wc[0]) ** 2)
    return {"difference": round(diff, 4), "low": round(low, 4), "high": round(high, 4)}


def performance(days: Iterable[Mapping[str, str]], action_ids: Iterable[str]) -> dict[str, Any]:
    """Per action and group, and over all actions: offers, acceptance (with its Wilson 95%
    interval), completion, and the uplift of adaptive over control. ``days``: the raw daily
    hashes (``<group>:<action>:<counter>`` -> count)."""
    totals: dict[str, dict[str, dict[str, int]]] = {}
    for aid in action_ids:
        totals[aid] = {g: {} for g in GROUPS}
    for raw in days:
        for field, value in raw.items():
            group, _, rest = field.partition(":")
            aid, _, counter = rest.rpartition(":")
            if group not in GROUPS or not aid:
                continue
            per = totals.setdefault(aid, {g: {} for g in GROUPS})[group]
            per[counter] = per.get(counter, 0) + int(value)
    overall: dict[str, dict[str, int]] = {g: {} for g in GROUPS}
    items = []
    for aid in sorted(totals):
        groups = totals[aid]
        for g in GROUPS:
            for counter, n in groups[g].items():
                overall[g][counter] = overall[g].get(counter, 0) + n
        items.append(
            {
                "action_id": aid,
                "groups": {g: _group_view(groups[g]) for g in GROUPS},
                "uplift": _uplift(groups["adaptive"], groups["control"]),
            }
        )
    return {
        "items": items,
        "total": {
            "groups": {g: _group_view(overall[g]) for g in GROUPS},
            "uplift": _uplift(overall["adaptive"], overall["control"]),
        },
    }


def daily(day_names: Iterable[str], days: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """Per UTC day, over all actions: each group's offers, acceptances and acceptance rate (the
    console's chart of both groups over time). ``days``: the raw daily hashes, in order."""
    out = []
    for name, raw in zip(day_names, days, strict=True):
        groups: dict[str, dict[str, int]] = {g: {"shown": 0, "accepted": 0} for g in GROUPS}
        for field, value in raw.items():
            group, _, rest = field.partition(":")
            counter = rest.rpartition(":")[2]
            if group in groups and counter in ("shown", "accepted"):
                groups[group][counter] += int(value)
        out.append(
            {
                "day": name,
                **{
                    g: {
                        **c,
                        "acceptance_rate": round(c["accepted"] / c["shown"], 4)
                        if c["shown"]
                        else None,
                    }
                    for g, c in groups.items()
                },
            }
        )
    return out


# -- per segment ---------------------------------------------------------------------------------
def read_segment_days(client: Any, keys: Any, days: Iterable[str]) -> list[dict[str, str]]:
    """The per-day segment hashes of ``days`` (one pipeline)."""
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.hgetall(segment_outcomes_key(keys, day))
    return list(pipe.execute())


def _segment_counts(days: Iterable[Mapping[str, str]], key: str) -> dict[tuple[str, str], dict]:
    """(action, value) -> group -> counter -> count for one segment key; a value of an open
    key its day did not admit counts as ``other``."""
    totals: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
    for raw in days:
        for field, count in raw.items():
            parts = field.split(":", 4)
            if len(parts) < 5 or parts[0] not in GROUPS or parts[3] != key:
                continue
            group, aid, counter, _, value = parts
            if key in OPEN_REPORT_KEYS and value != "other" and f"={key}:{value}" not in raw:
                value = "other"
            per = totals.setdefault((aid, value), {g: {} for g in GROUPS})[group]
            per[counter] = per.get(counter, 0) + int(count)
    return totals


def segment_performance(
    days: Iterable[Mapping[str, str]], action_ids: Iterable[str], key: str
) -> list[dict[str, Any]]:
    """Per action and value of segment ``key`` (one of ``adaptive.REPORT_KEYS``), per group:
    offers, acceptance with its Wilson interval, completion, and the uplift of adaptive over
    control. Over the range at most ``MAX_REPORT_VALUES`` values are named (most offers first;
    ties by name), the others are summed into ``other``. ``days``: the raw segment hashes."""
    if key not in REPORT_KEYS:
        raise ValueError(key)
    totals = _segment_counts(days, key)
    offers: dict[str, int] = {}
    for (_, value), groups in totals.items():
        offers[value] = offers.get(value, 0) + sum(g.get("shown", 0) for g in groups.values())
    named = sorted((v for v in offers if v != "other"), key=lambda v: (-offers[v], v))
    keep = set(named[:MAX_REPORT_VALUES])
    merged: dict[str, dict[str, dict[str, dict[str, int]]]] = {aid: {} for aid in action_ids}
    for (aid, value), groups in totals.items():
        into = merged.setdefault(aid, {}).setdefault(
            value if value in keep else "other", {g: {} for g in GROUPS}
        )
        for g, counters in groups.items():
            for counter, n in counters.items():
                into[g][counter] = into[g].get(counter, 0) + n
    return [
        {
            "action_id": aid,
            "values": [
                {
                    "value": value,
                    "groups": {g: _group_view(groups[g]) for g in GROUPS},
                    "uplift": _uplift(groups["adaptive"], groups["control"]),
                }
                for value, groups in sorted(
                    merged[aid].items(), key=lambda kv: (kv[0] == "other", kv[0])
                )
            ],
        }
        for aid in sorted(merged)
    ]


def segment_report(
    client: Any, keys: Any, days: list[str], action_ids: list[str], segment: str
) -> dict[str, Any]:
    """The ``segment``/``segments`` part of the performance report (one more read)."""
    by_segment = read_segment_days(client, keys, days)
    return {"segment": segment, "segments": segment_performance(by_segment, action_ids, segment)}
