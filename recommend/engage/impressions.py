"""Impressions of next-best actions: what was shown, counted once per request, and the check
that feedback answers something shown.

**Outcome model.** Serving next-best actions records an *impression* of every item in the
answer: in the customer's slot the time each action was last shown
(``profiles/contact_log.py``, ``Keys.impressions``), and per experiment group and UTC day the
counter ``<group>:<action>:shown`` of ``SharedKeys.action_outcomes`` (one registered Lua script
with the request's marker key in the same slot, so a retried request id counts once), after the
answer is computed. Feedback on an action is matched
to the customer's impression of it within the window (``RAPPORT_NBA_IMPRESSION_WINDOW_S``,
default 24 h): an impression with no feedback within the window simply stays an impression
without an acceptance, so the groups' acceptance is ``accepted / impressions``.

Feedback ``accepted`` or ``dismissed`` needs an impression within the window or earlier
feedback of the customer on the action (a follow-up); otherwise it is 422 (``action_id``).
``completed`` (the agent carried the action out, suggested or not) and the product feedback
of the recommendations panel need none: with no matching impression they count as their
own impression (so ``accepted <= shown`` holds per group and day).

**Per segment.** The same script call also counts each impression per segment key and value
(``adaptive.REPORT_KEYS``: the eight dimensions and the model's pairs tier.channel and
frequency.recency) in the day's segment hash (``adaptive.segment_outcomes_key``, same slot):
``<group>:<action>:shown:<key>:<value>``. The keys with an open set of values
(``OPEN_REPORT_KEYS``: country, context, category) admit at most ``MAX_REPORT_VALUES`` (50)
distinct values per UTC day, first come (``=<key>:<value>`` marks one, ``#<key>`` counts
them); a value past them is counted as ``other``. The others have at most 20 values by
construction (tier 6, channel 3, frequency 4, recency 5, support 2, tier.channel 18,
frequency.recency 20). Feedback (``AdaptivePropensity.queue_count``,
in the feedback pipeline, which cannot read) is counted under its own value; the report folds
a value its day did not admit into ``other``, so a day's shown and accepted agree per value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import InvalidInput
from recommend.engage.adaptive import (
    MAX_REPORT_VALUES,
    OPEN_REPORT_KEYS,
    RETAIN_DAYS,
    day_of,
    report_values,
    segment_outcomes_key,
)

DAY = 86400
REQUEST_TTL = DAY  # a request id counts its impressions once within this time

# KEYS: the day's outcome hash, the request's marker, the day's segment hash (one slot)
# ARGV: marker ttl ('0': no marker), retain seconds, values per key, n, n fields to increment,
#       then triples (field prefix, segment key, value): <prefix>:<key>:<value admitted or other>
COUNT_LUA = """
if ARGV[1] ~= '0' then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
    return 0
  end
end
local n = tonumber(ARGV[4])
for i = 5, 4 + n do
  redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
local cap, seen = tonumber(ARGV[3]), {}
local OPEN = {OPEN_KEYS}
for i = 5 + n, #ARGV, 3 do
  local key, value = ARGV[i + 1], ARGV[i + 2]
  local mark = '=' .. key .. ':' .. value
  local got = seen[mark]
  if not got then
    got = value
    if OPEN[key] and value ~= 'other' and redis.call('HEXISTS', KEYS[3], mark) == 0 then
      if tonumber(redis.call('HGET', KEYS[3], '#' .. key) or '0') < cap then
        redis.call('HSET', KEYS[3], mark, '1')
        redis.call('HINCRBY', KEYS[3], '#' .. key, 1)
      else
        got = 'other'
      end
    end
    seen[mark] = got
  end
  redis.call('HINCRBY', KEYS[3], ARGV[i] .. ':' .. key .. ':' .. got, 1)
end
if #ARGV > 4 + n then
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return 1
""".replace("OPEN_KEYS", ", ".join(f"[{key!r}] = true" for key in OPEN_REPORT_KEYS))


def count(
    script: Any,
    keys: Any,
    *,
    group: str,
    action_ids: Sequence[str],
    request_id: str | None,
    now: float,
    segments: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Count the per-group daily impressions of one answer (once per ``request_id``) with
    ``script``, the registered :data:`COUNT_LUA` (one call in the day key's slot); with
    ``segments`` (action id -> ``adaptive.segment_of``), also per segment key and value."""
    day = day_of(now)
    marker = keys.action_impression_request(day, request_id or "-")
    fields = [f"{group}:{aid}:shown" for aid in action_ids]
    triples: list[str] = []
    for aid in action_ids:
        segment = (segments or {}).get(aid)
        if segment is not None:
            for key, value in report_values(segment).items():
                triples += (f"{group}:{aid}:shown", key, value)
    ttl = str(REQUEST_TTL) if request_id else "0"
    head = [ttl, str(RETAIN_DAYS * DAY), str(MAX_REPORT_VALUES), str(len(fields))]
    script(
        keys=[keys.action_outcomes(day), marker, segment_outcomes_key(keys, day)],
        args=[*head, *fields, *triples],
    )


def check_shown(
    action_id: str,
    outcome: str,
    *,
    shown_at: float | None,
    earlier_feedback: bool,
    duplicate: bool,
    now: float,
    window: float,
) -> bool:
    """Whether the feedback matches an impression within ``window`` s before ``now``; raises
    422 (``action_id``) for ``accepted``/``dismissed`` feedback on an action the customer was
    never shown (nor gave feedback on). ``window`` 0: no impression is required."""
    impressed = shown_at is not None and (window <= 0 or now - shown_at <= window)
    if impressed or duplicate or earlier_feedback or outcome == "completed" or window <= 0:
        return impressed
    raise InvalidInput(
        f"action {action_id} was not shown to this customer in the last {window:g} s",
        field="action_id",
    )
