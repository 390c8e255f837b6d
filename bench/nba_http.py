"""The served policies of ``bench/nba_adaptive.py`` over the HTTP API (``--http``).

Each of ``global``, ``adaptive`` and ``beta`` gets its own key prefix on the bench's Redis and
its own app (``create_app``, the Flask test client: the whole middleware, auth, validation and
the views), configured as deployed except for the shares: ``global`` ranks everyone by the
global rate (control share 1), the others nobody (control share 0, 10% exploration). The
simulated customers are stored as profiles (tier, country, locale) with purchases that give
them the order count and recency of the simulator, so the segments the service derives are
the simulator's. Every decision is ``GET /v1/profiles/{id}/next-best-actions?limit=1&channel=``
(which records the impression) and ``POST .../next-best-actions/{action}/feedback`` with the
drawn outcome, both checked for their status. CPU is this process's, so it includes the
server's work for both requests.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import redis

from profiles.activity import ActivityStore
from profiles.keys import Keys
from profiles.store import ProfileStore
from recommend.engage.actions import ActionCatalog

DAY = 86_400.0


def store_customers(client: redis.Redis, keys: Keys, people: list[dict]) -> None:
    """Profiles and purchases for the simulated ``people`` (ids ``sim-N``)."""
    now = time.time()
    activity = ActivityStore(client, keys)
    profiles = ProfileStore(client, keys, activity=activity)
    batch: list[tuple[str, dict[str, Any]]] = []
    for person in people:
        p = person["profile"]
        doc = {"first_name": "Customer", "loyalty_tier": p["loyalty_tier"],
               "country": p["country"], "locale": p["locale"]}  # fmt: skip
        profiles.create(doc, customer_id=person["id"])
        orders, days = person["traits"]["order_count"], person["traits"]["days_since_last_purchase"]
        for k in range(orders):
            at = now - (days or 0) * DAY - k * 14 * DAY - 3600
            lines = [{"product_id": f"P{k % 50}", "quantity": 1, "unit_price": "9.90"}]
            batch.append((person["id"], {"order_id": f"{person['id']}-{k}", "lines": lines,
                                         "currency": "EUR", "purchased_at": at,
                                         "channel": "web"}))  # fmt: skip
        if len(batch) >= 500:
            _record(activity, batch)
            batch = []
    _record(activity, batch)


def _record(activity: ActivityStore, batch: list[tuple[str, dict[str, Any]]]) -> None:
    for result in activity.record_purchases(batch):
        if isinstance(result, Exception):
            raise RuntimeError(f"seeding a purchase failed: {result}")


class HttpArm:
    """One served policy through the API; the same counters as ``nba_adaptive.Arm``."""

    def __init__(self, name: str, client: redis.Redis, redis_url: str, seed: int,
                 people: list[dict], catalogue: list[dict], tmp: Path, true_p,
                 actions: tuple[str, ...], control_share: float | None = None) -> None:  # fmt: skip
        from service import create_app
        from service.auth import ApiKeyStore

        self.name, self.true_p, self.actions = name, true_p, actions
        prefix = f"benchhttp{name}"
        keys = Keys(prefix)
        ActionCatalog(client, keys, time.time).replace_all(catalogue)
        store_customers(client, keys, people)
        app = create_app({
            "redis_url": redis_url, "key_prefix": prefix, "log_level": "WARNING",
            "data_dir": tmp / name, "model_dir": tmp / name / "models", "rate_limit": "off",
            "key_concurrency": 0, "nba_model": "beta" if name == "beta" else "logistic",
            "nba_control_share": control_share if control_share is not None
            else 1.0 if name == "global" else 0.0,
            "nba_explore_share": 0.0 if name == "global" else 0.1,
        })  # fmt: skip
        self.http = app.test_client()
        token = ApiKeyStore(client, keys).create("nba-bench", "admin")[1]
        self.headers = {"Authorization": f"Bearer {token}"}
        self.rng = random.Random(seed + 1)
        self.pick_cpu = self.cpu = 0.0
        self.accepted, self.expected, self.regret = 0, 0.0, 0.0
        self.checkpoints: list[tuple[int, float, float, float]] = []
        self.curve: list[tuple[int, float]] = []
        self.group: str | None = None  # the group the service put the last customer in

    def get(self, url: str) -> dict:
        resp = self.http.get(url, headers=self.headers)
        if resp.status_code != 200:
            raise RuntimeError(f"{self.name}: GET {url} {resp.status_code} {resp.json}")
        return resp.json

    def step(self, n: int, person: dict, channel: str) -> None:
        cid, profile = person["id"], person["profile"]
        probs = {a: self.true_p(a, profile["loyalty_tier"], channel, profile["country"])
                 for a in self.actions}  # fmt: skip
        started = time.process_time()
        url = f"/v1/profiles/{cid}/next-best-actions?limit=1&channel={channel}"
        served = self.get(url)
        chosen, self.group = served["items"][0]["action_id"], served["group"]
        self.pick_cpu += time.process_time() - started
        p = probs[chosen]
        accepted = self.rng.random() < p
        self.accepted += accepted
        self.expected += p
        self.regret += max(probs.values()) - p
        body = {"feedback_id": f"{self.name}-{n}", "agent_id": "bench", "channel": channel,
                "outcome": "accepted" if accepted else "dismissed"}  # fmt: skip
        resp = self.http.post(f"/v1/profiles/{cid}/next-best-actions/{chosen}/feedback",
                              json=body, headers=self.headers)  # fmt: skip
        if resp.status_code != 201:
            raise RuntimeError(f"{self.name}: POST feedback {resp.status_code} {resp.json}")
        self.cpu += time.process_time() - started
