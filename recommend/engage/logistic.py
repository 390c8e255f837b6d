"""The online Bayesian logistic model of next-best actions' propensity (the default model of
``recommend/engage/adaptive.py``; ``RAPPORT_NBA_MODEL=beta`` keeps the Beta back-off).

Chapelle & Li, "An Empirical Evaluation of Thompson Sampling" (2011), Algorithm 3, one
observation per batch, with an offset: for one action and a customer's segment,

    logit p = logit g + Σ_i w_i x_i

where ``g`` is the action's global rate ``(accepted + 1) / (shown + 2)`` and ``x`` is one-hot
over an intercept (``<action>|bias|all``) and the eight segment keys' values
(``<action>|tier.channel|gold.chat``, ... : the counters' field prefixes, ``adaptive.suffixes``).
Each weight has an independent Gaussian posterior ``N(m_i, 1/q_i)`` with the prior ``N(0, 1)``,
so an action nobody has answered yet, or a segment never seen, scores its global rate, and the
weights learn how a segment differs from it. The posterior is kept as one field
``<prefix>:w`` = ``"<m> <q>"`` per feature in the counters' hash
(``SharedKeys.action_segments``), read in the ranking's existing round trip.

**Update** (:data:`UPDATE_LUA`, one script call after the feedback pipeline, atomic in the
hash's slot, so concurrent feedback from many workers never races): the Laplace
approximation of one labelled offer, ``y`` = +1 accepted (or completed on a new offer), -1
dismissed: ``w = m + y s x / q`` with ``s = σ(-y w·x)`` solved by Newton, then ``m = w`` and
``q_i += p (1 - p)`` with ``p = σ(logit g + w·x)``. The model learns from each offer's first
outcome, as the counters do; a later follow-up on the same offer changes the counters only.

**Thompson sampling**: an exploring decision ranks by ``logit g + Σ w_i`` with every ``w_i``
drawn from its posterior; the others by the means.

**Damaged state** (a weight that is not a number): the action falls back to its global rate
for that decision, with a warning in the log; the update script treats it as the prior.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("rapport.actions")

PRIOR_PRECISION = 1.0  # lambda: N(0, 1/lambda) per weight
BIAS = "|bias|all"  # the intercept's suffix

# KEYS: the segments hash. ARGV: y (1 or -1), the offset logit g, the prior precision, then
# the field prefixes of the observation's features. Writes <prefix>:w = "<mean> <precision>".
UPDATE_LUA = """
local y, offset, lam = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #ARGV - 3
local names, m, q = {}, {}, {}
local base, v = offset, 0
local function num(value, default)
  local x = tonumber(value)
  if x == nil or x ~= x or x == math.huge or x == -math.huge then return default end
  return x
end
for i = 1, n do
  names[i] = ARGV[i + 3]
  local got = redis.call('HGET', KEYS[1], names[i] .. ':w')
  local a, b = nil, nil
  if got then a, b = string.match(got, '^(%S+) (%S+)$') end
  m[i] = num(a, 0)
  q[i] = num(b, lam)
  if q[i] <= 0 then m[i], q[i] = 0, lam end
  base = base + m[i]
  v = v + 1 / q[i]
end
local function sig(z)
  if z >= 0 then return 1 / (1 + math.exp(-z)) end
  local e = math.exp(z)
  return e / (1 + e)
end
local s = 0.5
for _ = 1, 30 do
  local t = sig(-y * base - s * v)
  local step = (s - t) / (1 + v * t * (1 - t))
  s = s - step
  if math.abs(step) < 1e-12 then break end
end
local z = offset
for i = 1, n do
  m[i] = m[i] + y * s / q[i]
  z = z + m[i]
end
local p = sig(z)
local out = {}
for i = 1, n do
  out[#out + 1] = names[i] .. ':w'
  out[#out + 1] = string.format('%.17g %.17g', m[i], q[i] + p * (1 - p))
end
redis.call('HSET', KEYS[1], unpack(out))
return n
"""


def prefixes(action_id: str, ends: Sequence[str]) -> list[str]:
    """The feature prefixes of one action: the intercept, then one per segment key."""
    return [f"{action_id}{BIAS}", *(f"{action_id}{end}" for end in ends)]


def fields(action_id: str, ends: Sequence[str]) -> list[str]:
    """The hash fields holding one action's posterior for a segment (``ends``: its suffixes)."""
    return [f"{action_id}{BIAS}:w", *(f"{action_id}{end}:w" for end in ends)]


def parse_weight(name: str, value: Any, weights: dict[str, tuple[float, float]]) -> bool:
    """Add one ``:w`` reply (``"<m> <q>"``, or ``None``: the prior) to ``weights`` under its
    prefix; False when it is damaged."""
    if value is None:
        return True
    try:
        m, q = (float(x) for x in value.split(" "))
    except (AttributeError, TypeError, ValueError):
        return False
    if not (math.isfinite(m) and math.isfinite(q) and q > 0):
        return False
    weights[name[:-2]] = (m, q)
    return True


def score(
    weights: Mapping[str, tuple[float, float]],
    damaged: set[str],
    action_id: str,
    ends: Sequence[str],
    offset: float,
    rng: random.Random | None = None,
) -> tuple[float, float] | None:
    """``(mean logit, sampled logit)`` of one action for one segment (sampled only with
    ``rng``, else equal to the mean); ``None`` when its state is damaged (the caller falls
    back to the global rate, with a warning)."""
    mean = sample = offset
    prior = (0.0, PRIOR_PRECISION)
    for prefix in prefixes(action_id, ends):
        if prefix in damaged:
            log.warning("damaged learning weight %s: using the global rate", prefix)
            return None
        m, q = weights.get(prefix, prior)
        mean += m
        if rng is not None:
            sample += rng.gauss(m, q**-0.5)
    return mean, (sample if rng is not None else mean)


def update_args(accepted: bool, offset: float, action_id: str, ends: Sequence[str]) -> list[Any]:
    """The ARGV of :data:`UPDATE_LUA` for one labelled offer."""
    y = 1 if accepted else -1
    return [y, repr(offset), repr(PRIOR_PRECISION), *prefixes(action_id, ends)]
