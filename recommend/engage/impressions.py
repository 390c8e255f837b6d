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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.errors import InvalidInput
from recommend.engage.adaptive import RETAIN_DAYS, day_of

DAY = 86400
REQUEST_TTL = DAY  # a request id counts its impressions once within this time

# KEYS: the day's outcome hash, the request's marker ('' request id: no marker)
# ARGV: marker ttl, retain seconds, fields to increment...
COUNT_LUA = """
if ARGV[1] ~= '0' then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
    return 0
  end
end
for i = 3, #ARGV do
  redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def count(
    script: Any,
    keys: Any,
    *,
    group: str,
    action_ids: Sequence[str],
    request_id: str | None,
    now: float,
) -> None:
    """Count the per-group daily impressions of one answer (once per ``request_id``) with
    ``script``, the registered :data:`COUNT_LUA` (one call in the day key's slot)."""
    day = day_of(now)
    marker = keys.action_impression_request(day, request_id or "-")
    fields = [f"{group}:{aid}:shown" for aid in action_ids]
    ttl = str(REQUEST_TTL) if request_id else "0"
    script(keys=[keys.action_outcomes(day), marker], args=[ttl, str(RETAIN_DAYS * DAY), *fields])


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
