"""Adaptive propensity of next-best actions: learned per action and customer segment from the
agents' feedback, with Thompson sampling and a control group.

**Segments.** Eight dimensions of the facts (``recommend/engage/facts.py``), each with a fixed,
small set of values (:func:`segment_of`):

============  ==========================================================  ===================
dimension     values                                                      at most
============  ==========================================================  ===================
tier          none, bronze, silver, gold, platinum, other                 6
channel       chat, email, phone                                          3
country       ISO 3166 alpha-2 (else the locale's region), none, other    ~250
context       one of the action's ``contexts``, none, other               contexts + 2
frequency     orders 0, 1, 2-4, 5+                                        4
recency       last purchase <30d, 30-89d, 90-179d, 180d+, never           5
category      the preferred (else favourite) category, none               the catalog's
support       open (an open support contact), none                        2
============  ==========================================================  ===================

Counters (``shown``, ``accepted``) are kept for eight segment keys per action, arranged as
back-off chains: ``tier → tier.channel``, ``frequency → frequency.recency``, and ``country``,
``context``, ``category``, ``support`` alone. They live in one shared hash
(``SharedKeys.action_segments``), incremented in the same pipeline as the global statistics
(``ContactPolicy._count``). Its size is bounded by actions × (6 + 18 + 4 + 20 + countries +
contexts + categories + 2) × 2 fields: about 700 fields per action with every country seen.

**Model** (``model``, ``RAPPORT_NBA_MODEL``). ``logistic`` (the default): an online Bayesian
logistic model per action over the same segment keys, offset at the action's global rate, its
weights in the same hash (``recommend/engage/logistic.py``). ``beta``: each chain is a
hierarchy of Beta posteriors, the root's prior the global rate ``(accepted + 1) / (shown +
2)``, each finer segment's prior its parent's estimate from the offers outside it, with
``PSEUDO_COUNT`` pseudo-offers; the leaves add up in log-odds, ``logit p = logit g + Σ (logit
leaf - logit g)``. Both keep the counters for the reasons and the report. Exploration
(``RAPPORT_NBA_EXPLORE_SHARE``) ranks by a posterior sample (Thompson sampling); a seeded RNG
or a share of 0 makes the ranking deterministic (tests). docs/greetings-and-actions.md.

**Control group.** ``RAPPORT_NBA_CONTROL_SHARE`` (default 0.1) of the customers, chosen by a
stable hash of the customer id and ``RAPPORT_NBA_SALT``, get the global-rate ranking; the
answer says which ``group``. Offers and outcomes are also counted per group and UTC day
(``SharedKeys.action_outcomes``, kept ``RETAIN_DAYS``) for ``recommend/engage/uplift.py``, and
per group, segment key (``REPORT_KEYS``) and value (:func:`segment_outcomes_key`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from core.channels import CHANNELS
from recommend.engage import logistic
from recommend.engage.segment_labels import reason as _reason

log = logging.getLogger("rapport.actions")

PSEUDO_COUNT = 20.0  # pseudo-offers of a segment's prior (its parent's estimate)
MIN_REASON_OFFERS = 10  # a segment needs this many offers to be named in a reason
RETAIN_DAYS = 400  # per-group daily counters expire after this many days
GROUPS = ("adaptive", "control")
MODELS = ("logistic", "beta")  # RAPPORT_NBA_MODEL: engage/logistic.py, or the Beta back-off

TIERS = ("bronze", "silver", "gold", "platinum")
DIMENSIONS = (
    "tier",
    "channel",
    "country",
    "context",
    "frequency",
    "recency",
    "category",
    "support",
)
# back-off chains, coarse to fine; every segment key is counted
CHAINS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("tier",), ("tier", "channel")),
    (("frequency",), ("frequency", "recency")),
    (("country",),),
    (("context",),),
    (("category",),),
    (("support",),),
)
SEGMENT_KEYS: tuple[tuple[str, ...], ...] = tuple(key for chain in CHAINS for key in chain)
# the keys of the per-segment outcome counts (the report's ``segment``): every dimension alone
# and the model's two pairs; at most MAX_REPORT_VALUES values per key and day, then "other"
REPORT_KEYS: tuple[str, ...] = (*DIMENSIONS, "tier.channel", "frequency.recency")
OPEN_REPORT_KEYS = ("country", "context", "category")  # the others have <= 20 values by design
MAX_REPORT_VALUES = 50
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9 _&-]{0,31}$")


# -- segments ------------------------------------------------------------------------------
def segment_of(facts: Mapping, action: Mapping | None = None) -> dict[str, str]:
    """The customer's value of every dimension (bounded: see the module's table). ``facts``
    carry ``context`` (name, channel); ``action`` bounds the context to its ``contexts``."""
    profile = facts.get("profile") or {}
    traits = facts.get("traits") or {}
    context = facts.get("context") or {}
    tier = str(profile.get("tier") or "").casefold()
    channel = context.get("channel")
    name = context.get("name")
    allowed = (action or {}).get("contexts") or ()
    return {
        "tier": tier if tier in TIERS else ("none" if not tier else "other"),
        "channel": channel if channel in CHANNELS else "chat",
        "country": _country(profile),
        "context": "none" if not name else (name if name in allowed else "other"),
        "frequency": _frequency(traits.get("order_count")),
        "recency": _recency(traits.get("days_since_last_purchase")),
        "category": _category(facts),
        "support": "open" if _int(traits.get("open_support_contacts")) > 0 else "none",
    }


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _country(profile: Mapping) -> str:
    country = str(profile.get("country") or "").strip().upper()
    if not country:
        locale = str(profile.get("locale") or "").replace("_", "-")
        region = locale.split("-")[1] if "-" in locale else ""
        country = region.upper()
    if not country:
        return "none"
    return country if _COUNTRY.match(country) else "other"


def _frequency(orders: Any) -> str:
    n = _int(orders)
    return "0" if n <= 0 else "1" if n == 1 else "2-4" if n < 5 else "5+"


def _recency(days: Any) -> str:
    if days is None:
        return "never"
    d = _int(days)
    return "<30d" if d < 30 else "30-89d" if d < 90 else "90-179d" if d < 180 else "180d+"


def _category(facts: Mapping) -> str:
    prefs = (facts.get("preferences") or {}).get("categories")
    favourites = (facts.get("traits") or {}).get("favourite_categories")
    for source in (prefs, favourites):
        if isinstance(source, list | tuple) and source:
            value = str(source[0]).strip().casefold()
            return value if _CATEGORY.match(value) else "other"
    return "none"


_KEY_NAMES = tuple(".".join(key) for key in SEGMENT_KEYS)


def suffixes(segment: Mapping[str, str]) -> tuple[str, ...]:
    """``|<segment key>|<values>`` per entry of ``SEGMENT_KEYS`` (an action id before it
    makes the field prefix)."""
    return tuple(
        f"|{name}|{'.'.join([segment[d] for d in key])}"
        for name, key in zip(_KEY_NAMES, SEGMENT_KEYS, strict=True)
    )


def report_values(segment: Mapping[str, str]) -> dict[str, str]:
    """The value of every ``REPORT_KEYS`` key for a segment (``gold.chat`` for tier.channel)."""
    return {key: ".".join(segment[d] for d in key.split(".")) for key in REPORT_KEYS}


def segment_outcomes_key(keys: Any, day: str) -> str:
    """Hash of one UTC day's per-segment outcomes, in the slot of ``keys.action_outcomes(day)``
    (its hash tag): ``<group>:<action>:<counter>:<segment key>:<value>`` -> count, and the
    values admitted per key (``=<key>:<value>``, ``#<key>``; see ``impressions.py``)."""
    return f"{{{keys.action_outcomes(day)}}}:segments"


def segment_field(action_id: str, key: Sequence[str], segment: Mapping[str, str]) -> str:
    """The hash field prefix of one action and segment key: ``<action>|tier.channel|gold.chat``."""
    return f"{action_id}|{'.'.join(key)}|{'.'.join(segment[d] for d in key)}"


def parse_counters(
    raw: Mapping[str, Any],
) -> tuple[dict[str, int], tuple[dict[str, tuple[float, float]], set[str]]]:
    """Counters (field -> count; missing: 0) and the logistic model's weights (prefix -> (m,
    q), damaged prefixes) from HMGET replies. A damaged counter (not an integer) counts as
    none, with a warning: the estimate falls back to the coarser segments; a damaged weight
    makes its action fall back to the global rate (``logistic.score``)."""
    counters: dict[str, int] = {}
    weights: dict[str, tuple[float, float]] = {}
    damaged: set[str] = set()
    for name, value in raw.items():
        if name.endswith(":w"):
            if not logistic.parse_weight(name, value, weights):
                damaged.add(name[:-2])
            continue
        try:
            counters[name] = int(value) if value is not None else 0
        except (TypeError, ValueError):
            log.warning("damaged learning counter %s: using the coarser rates", name)
    return counters, (weights, damaged)


# -- groups --------------------------------------------------------------------------------
def bucket(customer_id: str, salt: str) -> float:
    """A stable number in [0, 1) for a customer and an experiment salt."""
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def day_of(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


# -- the model -----------------------------------------------------------------------------
def _logit(p: float) -> float:
    p = min(1 - 1e-6, max(1e-6, p))
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


class AdaptivePropensity:
    """The learned propensity of the actions without a product, the control group and the
    counters' writes (see the module)."""

    def __init__(
        self,
        *,
        control_share: float = 0.1,
        explore_share: float = 0.1,
        salt: str = "rapport",
        seed: int | None = None,
        pseudo_count: float = PSEUDO_COUNT,
        model: str = "logistic",
    ):
        if model not in MODELS:
            raise ValueError(f"model is one of {', '.join(MODELS)}")
        if not 0 <= control_share <= 1:
            raise ValueError("control_share must be in [0, 1]")
        if not 0 <= explore_share <= 1:
            raise ValueError("explore_share must be in [0, 1]")
        self.control_share = control_share
        self.explore_share = explore_share
        self.salt = salt
        self.defaults = (control_share, salt)  # the configured ones, before an override
        self.applied_at: float | None = None
        self.pseudo_count = pseudo_count
        self.model = model
        self.rng = random.Random(seed)

    def group_of(self, customer_id: str | None) -> str:
        """``control`` (the global-rate ranking) or ``adaptive``; an unknown caller: control."""
        if not customer_id:
            return "control"
        return "control" if bucket(customer_id, self.salt) < self.control_share else "adaptive"

    def apply(self, stored: Mapping[str, Any] | None, now: float | None = None) -> None:
        """Apply the admin's experiment settings (``SharedKeys.action_experiment``) over the
        configured defaults; a damaged value is ignored with a warning."""
        control, salt = self.defaults
        stored = stored or {}
        if stored.get("control_share") is not None:
            try:
                share = float(stored["control_share"])
                if not 0 <= share <= 1:
                    raise ValueError(share)
                control = share
            except (TypeError, ValueError):
                log.warning("damaged experiment control_share: using the configured one")
        if stored.get("salt"):
            salt = str(stored["salt"])
        self.control_share, self.salt = control, salt
        self.applied_at = now

    def explores(self) -> bool:
        """Whether this decision explores (Thompson samples) rather than takes the means."""
        return self.explore_share > 0 and self.rng.random() < self.explore_share

    def fields(
        self, action_ids: Iterable[str], segments: Mapping[str, Mapping[str, str]]
    ) -> list[str]:
        """The counter (and logistic weight) fields to read for ``action_ids`` (``segments``:
        the segment per id)."""
        out: list[str] = []
        known: dict[str, tuple[str, ...]] = {}  # only the context differs between actions
        for aid in action_ids:
            segment = segments[aid]
            ends = known.get(segment["context"])
            if ends is None:
                ends = known[segment["context"]] = suffixes(segment)
            for end in ends:
                out += (f"{aid}{end}:shown", f"{aid}{end}:accepted")
            if self.model == "logistic":
                out += logistic.fields(aid, ends)
        return out

    def estimate(
        self,
        global_stats: Mapping[str, Any] | None,
        counters: Mapping[str, int],
        action_id: str,
        segment: Mapping[str, str],
        *,
        explore: bool = False,
        weights: tuple[Mapping[str, tuple[float, float]], set[str]] | None = None,
    ) -> dict[str, Any]:
        """``{mean, propensity, exploring, reason}`` of one action for one segment.
        ``counters``: field -> count (missing fields are 0); ``weights``: the logistic model's
        state (from :func:`parse_counters`), used when the model is ``logistic``."""
        stats = global_stats or {}
        acc, shown = int(stats.get("accepted", 0)), int(stats.get("shown", 0))
        g = (acc + 1) / (shown + 2)
        mean_logit = sample_logit = _logit(g)
        # the reason names the segment furthest from the global rate (ties: the earlier
        # chain, then the finer segment)
        best: tuple[tuple[float, int, int], tuple[int, int, Sequence[str]]] | None = None
        logit_g = mean_logit
        for c, chain in enumerate(CHAINS):
            alpha, beta, found = self._chain(g, counters, action_id, segment, chain)
            mean_logit += _logit(alpha / (alpha + beta)) - logit_g
            if explore and self.model == "beta":
                sample_logit += _logit(self.rng.betavariate(alpha, beta)) - logit_g
            for level, gap, named in found:
                if best is None or (gap, -c, level) > best[0]:
                    best = ((gap, -c, level), named)
        if self.model == "logistic" and weights is not None:
            scored = logistic.score(
                *weights, action_id, suffixes(segment), logit_g, self.rng if explore else None
            )
            mean_logit, sample_logit = scored or (logit_g, logit_g)
        mean = _sigmoid(mean_logit)
        propensity = _sigmoid(sample_logit) if explore else mean
        reason = _reason(*best[1], segment) if best else None
        exploring = explore and propensity > mean
        if exploring:
            reason = (
                f"exploring: a sample from what is known ({propensity:.0%}, "
                f"estimate {mean:.0%}) to learn more"
            )
        return {"mean": mean, "propensity": propensity, "exploring": exploring, "reason": reason}

    def _chain(
        self,
        g: float,
        counters: Mapping[str, int],
        action_id: str,
        segment: Mapping[str, str],
        chain: Sequence[Sequence[str]],
    ) -> tuple[float, float, list[tuple[int, float, tuple[int, int, Sequence[str]]]]]:
        """The Beta posterior (alpha, beta) of a chain's finest segment, and the segments
        with enough offers to be named: (level, distance from ``g``, (accepted, offers,
        segment key))."""
        k = self.pseudo_count
        prior, parent = g, (0, 0, g)  # parent: its accepted, offers and prior
        alpha = beta = 0.0
        found = []
        for level, key in enumerate(chain):
            prefix = f"{action_id}|{'.'.join(key)}|{'.'.join([segment[d] for d in key])}"
            n = max(0, counters.get(prefix + ":shown", 0))
            a = min(n, max(0, counters.get(prefix + ":accepted", 0)))
            if level:  # the parent's estimate without this segment's own offers
                rest_n = max(0, parent[1] - n)
                rest_a = min(rest_n, max(0, parent[0] - a))
                prior = (rest_a + k * parent[2]) / (rest_n + k)
            alpha, beta = a + k * prior, (n - a) + k * (1 - prior)
            parent = (a, n, prior)
            if n >= MIN_REASON_OFFERS:
                found.append((level, round(abs(a / n - g), 6), (a, n, key)))
        return alpha, beta, found

    # -- writes ------------------------------------------------------------------------------
    def learn_args(
        self,
        keys: Any,
        *,
        action_id: str,
        segment: Mapping[str, str] | None,
        accepted: bool,
        stats: Sequence[Any],
    ) -> tuple[list[str], list[Any]] | None:
        """KEYS and ARGV of the logistic model's update (``logistic.UPDATE_LUA``) for one new
        offer's outcome; ``stats``: the action's global ``shown``, ``accepted`` before it.
        ``None``: nothing to learn (the Beta model, or no segment)."""
        if self.model != "logistic" or segment is None:
            return None
        shown, acc = (_int(v) for v in stats)
        offset = _logit((acc + 1) / (shown + 2))
        return [keys.action_segments()], logistic.update_args(
            accepted, offset, action_id, suffixes(segment)
        )

    def queue_count(
        self,
        pipe: Any,
        keys: Any,
        *,
        customer_id: str,
        action_id: str,
        segment: Mapping[str, str] | None,
        shown: bool,
        accepted: bool,
        completed: bool,
        now: float,
        impressed: bool = False,
    ) -> None:
        """Queue the segment and per-group daily increments of one new feedback on ``pipe``.
        ``impressed``: the offer answers an impression, already counted as ``shown`` for the
        day and group (``recommend/engage/impressions.py``); otherwise it counts as its own."""
        if segment is not None and (shown or accepted):
            key = keys.action_segments()
            for seg_key in SEGMENT_KEYS:
                prefix = segment_field(action_id, seg_key, segment)
                if shown:
                    pipe.hincrby(key, f"{prefix}:shown", 1)
                if accepted:
                    pipe.hincrby(key, f"{prefix}:accepted", 1)
        group = self.group_of(customer_id)
        day_key = keys.action_outcomes(day_of(now))
        counts = {"shown": shown and not impressed, "accepted": accepted, "completed": completed}
        values = report_values(segment) if segment is not None else {}
        per_segment = segment_outcomes_key(keys, day_of(now))
        for counter, yes in counts.items():
            if yes:
                pipe.hincrby(day_key, f"{group}:{action_id}:{counter}", 1)
                for name, value in values.items():  # as is; the report folds unadmitted ones
                    field = f"{group}:{action_id}:{counter}:{name}:{value}"
                    pipe.hincrby(per_segment, field, 1)
        pipe.expire(day_key, int(RETAIN_DAYS * 86400))
        if values:
            pipe.expire(per_segment, int(RETAIN_DAYS * 86400))
