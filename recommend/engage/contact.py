"""The contact policy: feedback on suggestions, cooldowns, a shared daily budget, statistics.

The rule (what makes suggestions respectful rather than pushy):

1. **Offers.** Feedback ``accepted`` or ``dismissed`` means the agent offered the suggestion
   to the customer. ``completed`` means it was carried out: right after an ``accepted`` offer
   of the same action (within the action's cooldown) it is a follow-up, not a new offer;
   otherwise (the agent just did it) it counts as an offer that was accepted.
2. **Cooldown per action and customer.** After any feedback on an action, that action is not
   suggested to that customer again for the action's ``cooldown_days``.
3. **Daily contact budget per customer and channel** (default 3), shared by actions and
   product suggestions: every offer on a channel that is not a pure ``service`` action (a
   sales, retention or feedback action, or any offer that names a product) uses one unit of
   that channel's budget for the customer's local calendar day (their profile's timezone,
   else UTC). With the budget used up, nothing more is offered on that channel today; with
   one unit left, at most one offer is listed. Service actions (resolving the customer's own
   open issue) are never rationed.
4. **Offered products rest.** A product that was offered (accepted or declined) is not
   suggested again for ``product_rest_days`` (default 30), on any channel.

Feedback is idempotent by the client's feedback id: the same id with the same body answers
the stored record again; with a different body it is a conflict. The per-customer writes (the
feedback record, the action state, the contact log, offered products) are one Lua script in
the customer's hash-tag slot (``profiles/contact_log.py`` stores them); the global statistics
are incremented only when the script reports a new record. (A crash between the two leaves the
statistics one short, never double.)

Statistics per action (global): ``shown`` (offers), ``accepted`` (accepted, or completed as a
new offer), ``dismissed``, ``completed``; ``acceptance_rate = accepted / shown``. In the same
pipeline: the counters per action and customer segment that the adaptive propensity learns
from (when the caller passes the customer's ``segment``), and the offers and outcomes per
experiment group and day (``recommend/engage/adaptive.py``).

Impressions (what the ranking showed; ``recommend/engage/impressions.py``): recorded by
:meth:`ContactPolicy.record_impressions`; :meth:`ContactPolicy.check_shown` matches feedback
to them within ``impression_window`` seconds (0: none needed) and rejects an offer outcome on
an action never shown (422, ``action_id``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, cast

import redis

from core.channels import CHANNELS, zone
from core.errors import InvalidInput
from profiles.contact_log import ContactLog, ContactState
from profiles.keys import Keys
from recommend.engage import impressions, logistic
from recommend.engage.adaptive import AdaptivePropensity
from recommend.errors import FeedbackConflict

OUTCOMES = ("accepted", "dismissed", "completed")
# Feedback on a product suggested outside the actions (the recommendations panel) is recorded
# as an offer of this built-in action, so it shares the budget and the resting rule.
PRODUCT_SUGGESTION: dict[str, Any] = {
    "id": "product-suggestion",
    "title": "A product from the recommendations",
    "category": "sales",
    "cooldown_days": 0,
}
COUNTERS = ("shown", "accepted", "dismissed", "completed")
DAY = 86400.0
RETAIN_DAYS = 400  # contact log and offered products older than this are trimmed


def start_of_local_day(now: float, timezone: str | None) -> float:
    """Epoch seconds of the customer's local midnight (UTC when the zone is unknown)."""
    tz = zone(timezone) or UTC
    local = datetime.fromtimestamp(now, tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


class ContactPolicy:
    """Feedback, cooldowns, the shared daily contact budget and per-action statistics."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        clock: Callable[[], float],
        *,
        daily_budget: int = 3,
        product_rest_days: int = 30,
        learning: AdaptivePropensity | None = None,
        impression_window: float = DAY,
    ):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self.daily_budget = daily_budget
        self.product_rest_days = product_rest_days
        self.log = ContactLog(client, keys)
        self.learning = learning or AdaptivePropensity()
        # feedback matches an impression this many seconds old at most; 0: none is required
        self.impression_window = impression_window
        self._count_impressions = client.register_script(impressions.COUNT_LUA)
        self._learn = client.register_script(logistic.UPDATE_LUA)

    def refresh_experiment(self, now: float | None = None, max_age: float = 1.0) -> None:
        """Re-read the admin's experiment settings when older than ``max_age`` s (the ranking
        reads them with every answer; see ``recommend/engage/learning_admin.py``)."""
        now = self.clock() if now is None else now
        applied = self.learning.applied_at
        if applied is None or not 0 <= now - applied < max_age:
            stored = cast("dict[str, str]", self.redis.hgetall(self.keys.action_experiment()))
            self.learning.apply(stored, now)

    # -- impressions (recommend/engage/impressions.py) -----------------------------------------
    def record_impressions(
        self,
        customer_id: str,
        group: str,
        action_ids: list[str],
        request_id: str | None,
        segments: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """The impressions of one answer: the customer's (one pipeline) and the group's daily
        counts, per segment too (one script call, counted once per request id)."""
        if not action_ids:
            return
        now = self.clock()
        pipe = self.redis.pipeline(transaction=False)
        ttl = int(self.impression_window) or int(DAY)
        self.log.queue_impressions(pipe, customer_id, action_ids, now, ttl)
        pipe.execute()
        impressions.count(
            self._count_impressions,
            self.keys,
            group=group,
            action_ids=action_ids,
            request_id=request_id,
            now=now,
            segments=segments,
        )

    def check_shown(self, customer_id: str, action_id: str, feedback_id: str, outcome: str) -> bool:
        """Whether feedback on ``action_id`` matches an impression within the window; 422
        (``action_id``) for an offer outcome on an action never shown (see impressions.py)."""
        shown_at, earlier, known = self.log.feedback_context(customer_id, action_id, feedback_id)
        return impressions.check_shown(
            action_id,
            outcome,
            shown_at=shown_at,
            earlier_feedback=earlier,
            duplicate=known,
            now=self.clock(),
            window=self.impression_window,
        )

    # -- writes -------------------------------------------------------------------------------
    def record_feedback(
        self,
        customer_id: str,
        action: dict,
        *,
        feedback_id: str,
        outcome: str,
        agent_id: str,
        channel: str = "chat",
        note: str | None = None,
        product_id: str | None = None,
        segment: dict[str, str] | None = None,
        impressed: bool = False,
    ) -> tuple[dict, bool]:
        """Record feedback on ``action`` for a customer; returns (record, created?).
        ``segment``: the customer's segment (``adaptive.segment_of``), counted for learning;
        ``impressed``: it answers a recorded impression (already counted as shown per group)."""
        if outcome not in OUTCOMES:
            raise InvalidInput(f"outcome is one of {', '.join(OUTCOMES)}", field="outcome")
        if channel not in CHANNELS:
            raise InvalidInput(f"channel is one of {', '.join(CHANNELS)}", field="channel")
        now = self.clock()
        body = {
            "action_id": action["id"],
            "outcome": outcome,
            "agent_id": agent_id,
            "channel": channel,
            "note": note,
            "product_id": product_id,
        }
        fingerprint = json.dumps(body, sort_keys=True)
        record = {"feedback_id": feedback_id, **body, "at": now, "fingerprint": fingerprint}
        cooldown = float(action.get("cooldown_days") or 0) * DAY
        stored = self.log.record(
            customer_id,
            record,
            rationed=action.get("category") != "service" or bool(product_id),
            follow_up_window=max(cooldown, DAY),
            trim_before=now - RETAIN_DAYS * DAY,
        )
        if not stored.created:
            if stored.fingerprint != fingerprint:
                raise FeedbackConflict(
                    f"feedback id {feedback_id} was already used with a different body",
                    field="feedback_id",
                )
            return stored.record, False
        self._count(customer_id, action["id"], outcome, stored.new_offer, segment, now, impressed)
        return stored.record, True

    def _count(
        self,
        customer_id: str,
        action_id: str,
        outcome: str,
        new_offer: bool,
        segment: dict[str, str] | None,
        now: float,
        impressed: bool = False,
    ) -> None:
        self.refresh_experiment(now)
        key = self.keys.action_stats()
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(key, f"{action_id}:shown", f"{action_id}:accepted")  # before this offer
        accepted = outcome == "accepted" or (outcome == "completed" and new_offer)
        if new_offer:
            pipe.hincrby(key, f"{action_id}:shown", 1)
        if accepted:
            pipe.hincrby(key, f"{action_id}:accepted", 1)
        if outcome in ("dismissed", "completed"):
            pipe.hincrby(key, f"{action_id}:{outcome}", 1)
        self.learning.queue_count(
            pipe,
            self.keys,
            customer_id=customer_id,
            action_id=action_id,
            segment=segment,
            shown=new_offer,
            accepted=accepted,
            completed=outcome == "completed",
            now=now,
            impressed=impressed,
        )
        before = pipe.execute()[0]
        if new_offer:  # the logistic model learns from each offer's first outcome
            job = self.learning.learn_args(
                self.keys, action_id=action_id, segment=segment, accepted=accepted, stats=before
            )
            if job is not None:
                self._learn(keys=job[0], args=job[1])

    # -- reads --------------------------------------------------------------------------------
    def customer_state(self, customer_id: str, timezone: str | None) -> dict[str, Any]:
        """What the ranking needs, in one round trip: last feedback per action, offers per
        channel today, and products resting since their offer."""
        pipe = self.redis.pipeline(transaction=False)
        read = self.queue_customer_state(pipe, customer_id, timezone)
        return read(pipe.execute())

    def queue_customer_state(
        self, pipe: Any, customer_id: str, timezone: str | None
    ) -> Callable[[list[Any]], dict[str, Any]]:
        """Queue the reads of :meth:`customer_state` on ``pipe`` (three commands, one slot);
        returns the function that turns those three results into the state."""
        now = self.clock()
        read = self.log.queue_state(
            pipe, customer_id, start_of_local_day(now, timezone), self.rest_start(now)
        )
        return lambda results: _customer_state(read(results))

    def rest_start(self, now: float | None = None) -> float:
        """Epoch seconds since when an offered product still rests (rule 4)."""
        return (self.clock() if now is None else now) - self.product_rest_days * DAY

    def budget(self, customer_id: str, channel: str, timezone: str | None) -> dict[str, int]:
        used = self.customer_state(customer_id, timezone)["used_today"].get(channel, 0)
        return self.budget_view(channel, used)

    def budget_view(self, channel: str, used: int) -> dict[str, Any]:
        return {
            "channel": channel,
            "limit": self.daily_budget,
            "used": used,
            "remaining": max(0, self.daily_budget - used),
        }

    def in_cooldown(self, action: dict, last: dict | None, now: float) -> float | None:
        """When the cooldown ends (epoch s), or None if the action may be suggested."""
        if not last:
            return None
        ends = float(last.get("at", 0)) + float(action.get("cooldown_days") or 0) * DAY
        return ends if ends > now else None

    def filter_products(self, customer_id: str, product_ids: Iterable[str]) -> list[str]:
        """``product_ids`` without those resting after a recent offer (for recommendation
        endpoints that want to honour the same rule)."""
        resting = self.customer_state(customer_id, None)["resting_products"]
        return [p for p in product_ids if p not in resting]

    def stats(self, action_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """``{action id: {shown, accepted, dismissed, completed, acceptance_rate}}``."""
        # The client decodes responses (decode_responses=True): every field and value is a str.
        raw = cast("dict[str, str]", self.redis.hgetall(self.keys.action_stats()))
        return parse_stats(raw, action_ids)

    def feedback_history(self, customer_id: str) -> list[dict]:
        """Every feedback record of a customer, oldest first (export)."""
        return self.log.feedback_history(customer_id)


def parse_stats(raw: dict[str, str], action_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """The statistics from the raw counters hash (see :meth:`ContactPolicy.stats`)."""
    out: dict[str, dict[str, Any]] = {}
    for aid in action_ids or ():
        out[aid] = dict.fromkeys(COUNTERS, 0)
    for field, value in raw.items():
        aid, _, counter = field.rpartition(":")
        if counter in COUNTERS:
            out.setdefault(aid, dict.fromkeys(COUNTERS, 0))[counter] = int(value)
    for entry in out.values():
        shown = entry["shown"]
        entry["acceptance_rate"] = round(entry["accepted"] / shown, 4) if shown else None
    return out


def _customer_state(state: ContactState) -> dict[str, Any]:
    used = dict.fromkeys(CHANNELS, 0)
    for channel in state.offer_channels:
        if channel in used:
            used[channel] += 1
    return {
        "last_feedback": state.last_feedback,
        "used_today": used,
        "resting_products": state.offered_products,
    }
