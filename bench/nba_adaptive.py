"""Benchmark: next-best actions that learn from feedback, against a seeded simulator.

Customers are drawn like the demo's profiles: loyalty tier, country and channel (plus an
order count and days since the last purchase, which the truth below ignores). Five service
actions (value 10 each, no cooldown, no rules, so the ranking is by propensity alone) have a
hidden acceptance probability that depends on the customer's features:

    logit p(action | customer) = BASE[action] + TIER[action][tier]
                                 + CHANNEL[action][channel] + COUNTRY[action][country]

(the tables are printed). Each decision ranks the catalogue for one customer through the real
``NextBestActions.rank`` (top 1), draws the outcome from the true probability and records it
through the real ``ContactPolicy.record_feedback`` (accepted or dismissed, with the customer's
segment) on a private ``redis-server``, one key prefix per policy so each learns only from its
own offers. Policies:

* random: a uniform pick among the eligible actions;
* global: today's ranking by the global rate ``(accepted + 1) / (shown + 2)`` (the control);
* adaptive: the service's default model, the online Bayesian logistic model per action
  (recommend/engage/logistic.py: its weights in Redis, updated by the feedback's script, an
  offset at the action's global rate) with the default exploration share 0.1 and a seeded RNG;
* beta: the service's other model (``RAPPORT_NBA_MODEL=beta``), Beta posteriors per segment
  with back-off (recommend/engage/adaptive.py), the same exploration share;
* logistic-ts: a reference implementation of the logistic model in this process (Chapelle &
  Li, "An Empirical Evaluation of Thompson Sampling", 2011, Algorithm 3) on one-hot features of
  the same segment keys (``adaptive.SEGMENT_KEYS``) plus an intercept, no offset, a diagonal
  Gaussian posterior (prior N(0, 1)) updated by the Laplace approximation after every
  observation (batch of one), and the same exploration budget: 10% of the decisions rank by a
  posterior sample (Thompson), the others by the posterior mean. Its weights live in the
  bench's memory (no Redis);
* oracle: the action with the highest true probability.

Reported: cumulative acceptance (realised, and expected = mean true p of the picks) and
expected regret against the oracle, after every quarter of the decisions, the share of the
global-to-oracle gap each learned policy closes, and the CPU per decision of
every policy (this process's CPU time: choosing, and choosing plus recording the outcome; the
Redis server's CPU is not in it). A final run serves adaptive with the default
10% control group and compares the measured uplift (``adaptive.performance``) to the truth.

    .venv/bin/python bench/nba_adaptive.py [--decisions 20000] [--seed 7] \
        [--png docs/img/nba_adaptive.png]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.nba_http import HttpArm
from profiles.keys import Keys
from recommend.engage.actions import ActionCatalog, NextBestActions
from recommend.engage.adaptive import SEGMENT_KEYS, AdaptivePropensity, day_of, segment_of
from recommend.engage.contact import ContactPolicy
from recommend.engage.facts import build_facts
from recommend.engage.uplift import performance
from service.redis_server import RedisServer, redis_server_binary

TIERS = {"none": 0.40, "bronze": 0.25, "silver": 0.20, "gold": 0.10, "platinum": 0.05}
CHANNELS = {"chat": 0.60, "email": 0.25, "phone": 0.15}
COUNTRIES = {"DE": 0.30, "AT": 0.15, "GB": 0.20, "FR": 0.15, "US": 0.20}
ACTIONS = ("discount", "loyalty-thanks", "callback", "newsletter", "local-event")
BASE = {
    "discount": -0.4,
    "loyalty-thanks": -1.6,
    "callback": -1.4,
    "newsletter": -1.5,
    "local-event": -1.5,
}
TIER = {
    "loyalty-thanks": {"none": -1.0, "bronze": 0.0, "silver": 1.0, "gold": 2.2, "platinum": 2.6},
    "discount": {"gold": -0.6, "platinum": -0.8},
}
CHANNEL = {
    "callback": {"phone": 2.2, "chat": -0.5},
    "newsletter": {"email": 2.0, "phone": -1.0},
    "discount": {"email": -0.3},
}
COUNTRY = {
    "local-event": {"DE": 1.6, "AT": 1.9, "US": -1.0},
    "discount": {"GB": 0.3},
}
POLICIES = ("random", "global", "adaptive", "beta", "logistic-ts", "oracle")
HTTP_POLICIES = ("global", "adaptive", "beta")  # through the API with --http
LEARNED = ("adaptive", "beta", "logistic-ts")  # the gap each closes is reported
SERVED = ("adaptive", "beta")  # ranked and recorded through the service's code


def true_p(action: str, tier: str, channel: str, country: str) -> float:
    x = BASE[action] + TIER.get(action, {}).get(tier, 0.0)
    x += CHANNEL.get(action, {}).get(channel, 0.0) + COUNTRY.get(action, {}).get(country, 0.0)
    return 1 / (1 + math.exp(-x))


def draw(rng: random.Random, table: dict[str, float]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def customers(rng: random.Random, n: int) -> list[dict]:
    out = []
    for i in range(n):
        orders = min(40, int(rng.expovariate(1 / 4)))
        profile = {
            "name": f"Customer {i}",
            "loyalty_tier": draw(rng, TIERS),
            "country": draw(rng, COUNTRIES),
            "locale": "en",
        }
        traits = {
            "order_count": orders,
            "days_since_last_purchase": rng.randint(0, 400) if orders else None,
        }
        out.append({"id": f"sim-{i}", "profile": profile, "traits": traits})
    return out


def decisions(rng: random.Random, people: list[dict], n: int) -> list[tuple[dict, str]]:
    """The same sequence of (customer, channel) for every policy."""
    return [(rng.choice(people), draw(rng, CHANNELS)) for _ in range(n)]


def catalogue() -> list[dict]:
    return [
        {"id": a, "title": a, "category": "service", "value": 10, "cooldown_days": 0}
        for a in ACTIONS
    ]


class LogisticTS:
    """Online Bayesian logistic regression per action with a diagonal Gaussian posterior
    (Chapelle & Li 2011, Algorithm 3, one observation per batch) and Thompson sampling in a
    share of the decisions. Features: an intercept and one-hot ``key=value`` per segment key."""

    def __init__(self, actions: tuple[str, ...], seed: int, explore_share: float = 0.1):
        self.actions = actions
        self.mean: dict[str, dict[str, float]] = {a: {} for a in actions}
        self.precision: dict[str, dict[str, float]] = {a: {} for a in actions}
        self.prior_precision = 1.0  # lambda: N(0, 1/lambda) per weight
        self.explore_share = explore_share
        self.rng = random.Random(seed)

    @staticmethod
    def features(segment: dict[str, str]) -> list[str]:
        return ["bias"] + [
            f"{'.'.join(key)}={'.'.join(segment[d] for d in key)}" for key in SEGMENT_KEYS
        ]

    def pick(self, segment: dict[str, str]) -> str:
        x = self.features(segment)
        explore = self.rng.random() < self.explore_share
        lam = self.prior_precision
        best, best_score = self.actions[0], -math.inf
        for action in self.actions:
            m, q = self.mean[action], self.precision[action]
            if explore:  # a weight sample from N(m_i, 1/q_i)
                score = sum(self.rng.gauss(m.get(f, 0.0), q.get(f, lam) ** -0.5) for f in x)
            else:
                score = sum(m.get(f, 0.0) for f in x)
            if score > best_score:
                best, best_score = action, score
        return best

    def update(self, action: str, segment: dict[str, str], accepted: bool) -> None:
        """The Laplace update of one observation: w = argmin 1/2 sum q_i (w_i - m_i)^2 +
        log(1 + exp(-y w.x)), then m = w, q_i += x_i^2 p (1 - p) with p = sigmoid(w.x). For
        binary x the minimiser is w = m + y s x / q, with s = sigmoid(-y w.x) solved by Newton."""
        x = self.features(segment)
        m, q = self.mean[action], self.precision[action]
        lam = self.prior_precision
        y = 1.0 if accepted else -1.0
        base = sum(m.get(f, 0.0) for f in x)
        v = sum(1.0 / q.get(f, lam) for f in x)
        s = 0.5
        for _ in range(20):  # g(s) = s - sigmoid(-y (base + y s v)) = 0, g increasing
            t = _sigmoid(-y * base - s * v)
            g, dg = s - t, 1.0 + v * t * (1.0 - t)
            step = g / dg
            s -= step
            if abs(step) < 1e-10:
                break
        for f in x:
            m[f] = m.get(f, 0.0) + y * s / q.get(f, lam)
        p = _sigmoid(sum(m[f] for f in x))
        for f in x:
            q[f] = q.get(f, lam) + p * (1.0 - p)


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


class Arm:
    """One policy on its own key prefix: ranks, draws the outcome, records the feedback."""

    def __init__(self, name: str, client: redis.Redis, seed: int, control_share: float = 0.0):
        self.name = name
        keys = Keys(f"bench{name.replace('-', '')}")
        clock = time.time
        self.learning = AdaptivePropensity(
            control_share=control_share,
            explore_share=0.1,
            salt="bench",
            seed=seed,
            model="beta" if name == "beta" else "logistic",
        )
        self.policy = ContactPolicy(client, keys, clock, learning=self.learning)
        self.catalog = ActionCatalog(client, keys, clock)
        self.catalog.replace_all(catalogue())
        learning = self.learning if name.startswith(SERVED) else None
        self.nba = NextBestActions(self.catalog, self.policy, clock, learning=learning)
        self.keys = keys
        self.rng = random.Random(seed + 1)
        self.logistic = LogisticTS(ACTIONS, seed) if name == "logistic-ts" else None
        self.pick_cpu = 0.0  # process CPU seconds spent choosing
        self.cpu = 0.0  # choosing and recording the outcome
        self.accepted = 0
        self.expected = 0.0
        self.regret = 0.0
        self.checkpoints: list[tuple[int, float, float, float]] = []
        self.curve: list[tuple[int, float]] = []  # (decisions, expected cumulative acceptance)

    def pick(self, facts: dict, probs: dict[str, float]) -> str:
        if self.name == "oracle":
            return max(ACTIONS, key=lambda a: probs[a])
        if self.name == "random":
            return self.rng.choice(ACTIONS)
        if self.logistic is not None:
            return self.logistic.pick(segment_of(facts))
        items = self.nba.rank(facts, channel=facts["context"]["channel"], limit=1)["items"]
        return items[0]["action_id"]

    def step(self, n: int, person: dict, channel: str) -> None:
        profile = person["profile"]
        context = {"name": None, "channel": channel}
        facts = build_facts(person["id"], profile, person["traits"], context=context)
        tier, country = profile["loyalty_tier"], profile["country"]
        probs = {a: true_p(a, tier, channel, country) for a in ACTIONS}
        started = time.process_time()
        chosen = self.pick(facts, probs)
        self.pick_cpu += time.process_time() - started
        accepted = self.rng.random() < probs[chosen]
        self.accepted += accepted
        self.expected += probs[chosen]
        self.regret += max(probs.values()) - probs[chosen]
        if self.name == "global" or self.name.startswith(SERVED):
            action = self.catalog.get(chosen)
            self.policy.record_feedback(
                person["id"],
                action,
                feedback_id=f"{self.name}-{n}",
                outcome="accepted" if accepted else "dismissed",
                agent_id="bench",
                channel=channel,
                segment=segment_of(facts, action),
            )
        elif self.logistic is not None:
            self.logistic.update(chosen, segment_of(facts), accepted)
        self.cpu += time.process_time() - started


def print_truth() -> None:
    print("hidden truth: logit p = BASE + TIER + CHANNEL + COUNTRY (missing entries are 0)")
    for action in ACTIONS:
        print(
            f"  {action:15s} base {BASE[action]:+.1f}  tier {TIER.get(action, {})}  "
            f"channel {CHANNEL.get(action, {})}  country {COUNTRY.get(action, {})}"
        )
    print(f"  customers: tier {TIERS}, country {COUNTRIES}; channel per decision {CHANNELS}")


def run(client: redis.Redis, args: argparse.Namespace) -> dict[str, Arm]:
    rng = random.Random(args.seed)
    people = customers(rng, args.customers)
    sequence = decisions(rng, people, args.decisions)
    marks = {args.decisions * q // 4 for q in (1, 2, 3, 4)}
    every = max(1, args.decisions // 100)
    arms = {}
    for name in POLICIES:
        if args.http and name in HTTP_POLICIES:
            print(f"  {name}: storing {len(people):,} customers, starting its app ...", flush=True)
            arm: Any = HttpArm(name, client, args.redis_url, args.seed, people, catalogue(),
                               args.tmp, true_p, ACTIONS)  # fmt: skip
        else:
            arm = Arm(name, client, args.seed)
        started = time.perf_counter()
        for n, (person, channel) in enumerate(sequence, 1):
            arm.step(n, person, channel)
            if n in marks:
                arm.checkpoints.append((n, arm.accepted / n, arm.expected / n, arm.regret))
            if n % every == 0:
                arm.curve.append((n, arm.expected / n))
        print(f"  {name}: {time.perf_counter() - started:.1f} s", flush=True)
        arms[name] = arm
    return arms


def control_run(client: redis.Redis, args: argparse.Namespace) -> None:
    """Adaptive as deployed (10% control): the measured uplift against the truth.

    With ``--http`` the decisions go through the API and the measured figures are the admin
    API's (``GET /v1/actions/performance``); otherwise the ranking code and ``performance``
    are called in-process.
    """
    rng = random.Random(args.seed)
    people = customers(rng, args.customers)
    sequence = decisions(rng, people, args.decisions)
    if args.http:
        arm: Any = HttpArm("deployed", client, args.redis_url, args.seed, people, catalogue(),
                           args.tmp, true_p, ACTIONS, control_share=0.1)  # fmt: skip
    else:
        arm = Arm("adaptive-deployed", client, args.seed, control_share=0.1)
    truth = {"adaptive": [0.0, 0], "control": [0.0, 0]}
    for n, (person, channel) in enumerate(sequence, 1):
        before = arm.expected
        arm.step(n, person, channel)
        group = arm.group if args.http else arm.learning.group_of(person["id"])
        truth[group][0] += arm.expected - before
        truth[group][1] += 1
    if args.http:
        total = arm.get("/v1/actions/performance")["total"]
    else:
        raw = client.hgetall(arm.keys.action_outcomes(day_of(time.time())))
        total = performance([raw], ACTIONS)["total"]
    rates = {g: truth[g][0] / max(1, truth[g][1]) for g in truth}
    up = total["uplift"]
    print()
    where = "through the HTTP API" if args.http else "in-process"
    print(f"deployed with a 10% control group ({args.decisions:,} decisions, {where}):")
    for g in ("adaptive", "control"):
        view = total["groups"][g]
        print(
            f"  {g:8s} offers {view['shown']:6,}  measured acceptance {view['acceptance_rate']:.4f}"
            f" [{view['low']:.4f}, {view['high']:.4f}]  truth (mean p) {rates[g]:.4f}"
        )
    true_uplift = rates["adaptive"] - rates["control"]
    inside = up["low"] <= true_uplift <= up["high"]
    print(
        f"  uplift measured {up['difference']:+.4f} [{up['low']:+.4f}, {up['high']:+.4f}], "
        f"truth {true_uplift:+.4f}: {'inside' if inside else 'OUTSIDE'} the interval"
    )


def report(arms: dict[str, Arm], args: argparse.Namespace) -> None:
    print()
    print(f"{args.decisions:,} decisions, {args.customers:,} customers, seed {args.seed}")
    print("| decisions | policy | acceptance (realised) | acceptance (expected) | regret |")
    print("|---:|---|---:|---:|---:|")
    for i in range(len(arms["oracle"].checkpoints)):
        for name in POLICIES:
            n, realised, expected, regret = arms[name].checkpoints[i]
            print(f"| {n:,} | {name} | {realised:.4f} | {expected:.4f} | {regret:,.0f} |")
    final = {name: arms[name].checkpoints[-1][2] for name in POLICIES}
    gap = final["oracle"] - final["global"]
    print()
    for name in LEARNED:
        closed = (final[name] - final["global"]) / gap if gap > 0 else float("nan")
        print(
            f"{name} closes {closed:.0%} of the global-to-oracle gap in expected cumulative "
            f"acceptance (goal: at least 50%)"
        )
    print()
    print("| policy | CPU per decision: choose (ms) | choose and record (ms) |")
    print("|---|---:|---:|")
    for name in POLICIES:
        arm = arms[name]
        n = arm.checkpoints[-1][0]
        print(f"| {name} | {1000 * arm.pick_cpu / n:.3f} | {1000 * arm.cpu / n:.3f} |")


def plot(arms: dict[str, Arm], path: Path, args: argparse.Namespace) -> None:
    """The expected cumulative acceptance of every policy over the decisions, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name in POLICIES:
        xs, ys = zip(*arms[name].curve, strict=True)
        ax.plot(xs, ys, label=name)
    ax.set_xlabel("decisions")
    ax.set_ylabel("cumulative acceptance (expected)")
    ax.set_title(f"Next-best actions: {args.decisions:,} decisions, seed {args.seed}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    print(f"curve written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-control-run", action="store_true")
    parser.add_argument("--png", type=Path, help="write the acceptance curve here (matplotlib)")
    parser.add_argument(
        "--http",
        action="store_true",
        help="global, adaptive and beta rank and record through the HTTP API (bench/nba_http.py)",
    )
    args = parser.parse_args()
    print_truth()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis", binary=redis_server_binary("path"))
        server.start()
        try:
            client = redis.Redis.from_url(server.url, decode_responses=True)
            args.redis_url, args.tmp = server.url, Path(tmp)
            arms = run(client, args)
            report(arms, args)
            if args.png:
                plot(arms, args.png, args)
            if not args.no_control_run:
                control_run(client, args)
        finally:
            server.stop()
    print()
    print(
        f"command: .venv/bin/python bench/nba_adaptive.py --decisions {args.decisions} "
        f"--customers {args.customers} --seed {args.seed}"
        + (f" --png {args.png}" if args.png else "")
        + (" --http" if args.http else "")
    )


if __name__ == "__main__":
    main()
