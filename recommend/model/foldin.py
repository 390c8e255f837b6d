"""Fold-in: a customer's representation re-estimated from what they did since the model was
trained, with the item representations fixed (no retraining).

Which interactions: the purchase lines after the model's data end (``ModelArrays.data_until``,
the newest purchase the model was trained on), weighted like training weighs them
(``log1p(quantity) * 0.5 ** (age / 60 days)``), and, with the smaller weights
:data:`EVENT_WEIGHTS`, product views and cart adds from the customer's events.

How (chosen by ``bench/replay.py``; docs/benchmarks.md, "Issue 19: fold-in and replay"): a
closed-form weighted ridge fit on the fixed item vectors, implicit-ALS style (Hu, Koren,
Volinsky 2008): every catalog item is a 0 with confidence 1, an interacted item a 1 with
confidence ``1 + ALPHA * w``::

    (V'V + sum_i ALPHA w_i v_i v_i' + LAMBDA I) f = sum_i (1 + ALPHA w_i) v_i

``V'V`` (d, d) is computed once per model, so a fit costs O(n_interactions * d^2 + d^3): about
0.1 ms for 200 purchases at d = 128. Such a fit is on another scale than LightFM's trained
vectors, so it is not used as the vector itself:

- a customer the model knows: ``u = u_trained + SCALE * (f(all history) - f(history the model
  saw))``, the change the new interactions make to the fit, on the trained vector's scale
  (``SCALE`` = median trained-vector norm / median fit norm, estimated at load on the item side:
  the fit of a single item, see :meth:`FoldIn.__init__`). Nothing since training: ``u`` is the
  trained vector exactly;
- a customer the model does not know (created after training) who bought something:
  ``u = SCALE * f(their interactions)``, instead of the feature-only cold start.

The alternative measured, a few BPR steps from the trained vector (:func:`bpr_steps`), is kept
for the benchmark.

Cache: :class:`FoldInCache`, per worker, keyed by customer id and holding the fingerprint of the
interactions the vector was fitted from (model version, the post-training order ids and event
ids): the customer's next write changes the fingerprint, so the next request refits. An erased
customer has no purchases left, so nothing is fitted and the entry is dropped on their next
request; :meth:`FoldInCache.forget` drops it at once, and entries expire after
:data:`CACHE_TTL_S` whatever happens, so no worker keeps a vector made of erased data for long.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from recommend.model.records import DAY, PurchaseLine

ALPHA = 10.0  # confidence per unit of interaction weight
LAMBDA = 1.0  # ridge on top of V'V (whose diagonal is in the thousands at any real catalog)
HALF_LIFE_DAYS = 60.0  # as training weighs purchases (recommend.model.dataset)
EVENT_WEIGHTS = {"product_viewed": 0.1, "product_added_to_cart": 0.3}
MAX_INTERACTIONS = 500  # the newest distinct products a fit uses
CACHE_SIZE = 10_000
CACHE_TTL_S = 300.0


def interaction_weights(
    purchases: Iterable[PurchaseLine],
    item_index: Mapping[str, int],
    now: float,
    *,
    after: float | None = None,
    events: Iterable[tuple[str, str, float]] = (),
) -> dict[int, float]:
    """item index -> weight: ``log1p(quantity) * 0.5 ** (age / 60 days)`` summed over purchase
    lines (only those after ``after`` when given), plus :data:`EVENT_WEIGHTS` per (product,
    event type, time) event. Products the model does not know are skipped."""
    out: dict[int, float] = {}
    for ln in purchases:
        if after is not None and ln.purchased_at <= after:
            continue
        i = item_index.get(ln.product_id)
        if i is None:
            continue
        age = max(now - ln.purchased_at, 0.0) / DAY
        w = math.log1p(max(ln.quantity, 0.0)) * 0.5 ** (age / HALF_LIFE_DAYS)
        out[i] = out.get(i, 0.0) + w
    for pid, kind, at in events:
        i = item_index.get(pid)
        weight = EVENT_WEIGHTS.get(kind)
        if i is None or weight is None or (after is not None and at <= after):
            continue
        out[i] = out.get(i, 0.0) + weight * 0.5 ** (max(now - at, 0.0) / DAY / HALF_LIFE_DAYS)
    if len(out) > MAX_INTERACTIONS:
        kept = sorted(out, key=lambda i: -out[i])[:MAX_INTERACTIONS]
        out = {i: out[i] for i in kept}
    return out


class FoldIn:
    """The per-model part of fold-in: the Gram matrix (d, d) float64 of the trained item
    vectors and the scale of a fit to the trained user vectors. The item vectors themselves
    are passed to each call (serving's arrays may be shared memory maps,
    ``recommend.model.shared_arrays``: nothing here keeps a second copy)."""

    def __init__(self, item_vectors: np.ndarray, user_vectors: np.ndarray):
        v = np.asarray(item_vectors, dtype=np.float64)
        self.n_items = len(v)
        self.gram = v.T @ v + LAMBDA * np.eye(v.shape[1])
        self.scale = self._scale(v, np.asarray(user_vectors, dtype=np.float64))

    def _scale(self, v: np.ndarray, users: np.ndarray) -> float:
        """Median trained user norm / median norm of a one-item fit (weight 1) over a seeded
        sample of items: puts a fit on the trained vectors' scale."""
        if not len(users) or not len(v):
            return 1.0
        rng = np.random.default_rng(0)
        sample = rng.choice(len(v), size=min(64, len(v)), replace=False)
        norms = [float(np.linalg.norm(self.fit({int(i): 1.0}, v))) for i in sample]
        fit_norm = float(np.median(norms)) or 1.0
        return float(np.median(np.linalg.norm(users, axis=1))) / fit_norm

    def fit(self, weights: Mapping[int, float], item_vectors: np.ndarray) -> np.ndarray:
        """(d,) float64 ridge fit for interactions ``weights`` (item index -> weight; items
        past the trained ones, new since training, are left out)."""
        kept = {i: w for i, w in weights.items() if i < self.n_items}
        if not kept:
            return np.zeros(self.gram.shape[0])
        idx = np.fromiter(kept.keys(), dtype=np.int64, count=len(kept))
        c = ALPHA * np.fromiter(kept.values(), dtype=np.float64, count=len(kept))
        vi = np.asarray(item_vectors[idx], dtype=np.float64)
        a = self.gram + (vi.T * c) @ vi
        return np.linalg.solve(a, vi.T @ (1.0 + c))

    def vector(
        self,
        trained: np.ndarray | None,
        before: Mapping[int, float],
        after: Mapping[int, float],
        item_vectors: np.ndarray,
    ) -> np.ndarray | None:
        """The folded-in representation (float32): ``trained + scale * (f(before + after) -
        f(before))`` for a known customer, ``scale * f(before + after)`` for a new one; None
        when there is nothing since training the model knows (use the trained vector or cold
        start)."""
        if not any(i < self.n_items for i in after):
            return None
        both = dict(before)
        for i, w in after.items():
            both[i] = both.get(i, 0.0) + w
        if trained is None:
            return (self.scale * self.fit(both, item_vectors)).astype(np.float32)
        delta = self.fit(both, item_vectors) - self.fit(before, item_vectors)
        return (np.asarray(trained, dtype=np.float64) + self.scale * delta).astype(np.float32)


def bpr_steps(
    start: np.ndarray,
    positives: Mapping[int, float],
    item_vectors: np.ndarray,
    item_bias: np.ndarray,
    *,
    epochs: int = 5,
    learning_rate: float = 0.05,
    negatives: int = 8,
    seed: int = 0,
) -> np.ndarray:
    """The alternative measured in ``bench/replay.py``: a few BPR SGD epochs on the user vector
    alone (items fixed) from ``start``, each positive against ``negatives`` sampled items."""
    u = np.asarray(start, dtype=np.float64).copy()
    if not positives:
        return u.astype(np.float32)
    rng = np.random.default_rng(seed)
    pos = np.fromiter(positives.keys(), dtype=np.int64, count=len(positives))
    w = np.fromiter(positives.values(), dtype=np.float64, count=len(positives))
    vp = np.asarray(item_vectors[pos], dtype=np.float64)
    for _ in range(epochs):
        neg = rng.integers(0, len(item_vectors), size=(len(pos), negatives))
        vn = np.asarray(item_vectors[neg], dtype=np.float64)  # (P, K, d)
        x = (vp @ u + item_bias[pos])[:, None] - (vn @ u + item_bias[neg])
        g = (1.0 / (1.0 + np.exp(x))) * w[:, None]  # (P, K) d(log sigmoid)/dx
        u += learning_rate * (
            (g.sum(axis=1)[:, None] * vp).sum(axis=0) - np.einsum("pk,pkd->d", g, vn)
        )
    return u.astype(np.float32)


class FoldInCache:
    """Per-worker LRU of folded-in vectors: customer id -> (fingerprint, vector, stored at).
    Thread-safe; a stale fingerprint or an entry older than ``ttl`` seconds is a miss."""

    def __init__(
        self,
        size: int = CACHE_SIZE,
        ttl: float = CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.size, self.ttl, self.clock = size, ttl, clock
        self._entries: OrderedDict[str, tuple[object, np.ndarray | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, customer_id: str, fingerprint: object, build: Callable[[], np.ndarray | None]
    ) -> np.ndarray | None:
        """The cached vector for this fingerprint, else ``build()`` (stored)."""
        now = self.clock()
        with self._lock:
            hit = self._entries.get(customer_id)
            if hit is not None and hit[0] == fingerprint and now - hit[2] < self.ttl:
                self._entries.move_to_end(customer_id)
                return hit[1]
        vector = build()
        with self._lock:
            self._entries[customer_id] = (fingerprint, vector, now)
            self._entries.move_to_end(customer_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return vector

    def forget(self, customer_id: str) -> None:
        """Drop the customer's entry (erasure; a request that finds nothing to fold in)."""
        with self._lock:
            self._entries.pop(customer_id, None)

    def fingerprint(self, customer_id: str) -> object:
        """The fingerprint the customer's entry was built for (None without one)."""
        with self._lock:
            hit = self._entries.get(customer_id)
            return None if hit is None else hit[0]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._entries
