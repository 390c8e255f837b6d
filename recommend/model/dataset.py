"""Training data: purchases, customers and products, turned into LightFM matrices.

Sources (``recommend/model/sources.py``, re-exported here; all produce a :class:`TrainingData`):

- :func:`load_from_redis` — production: every purchase (``ActivityStore.iter_all_purchases``),
  profile features (country or locale, tier, preferred categories) and the catalog;
- :func:`load_online_retail` — the UCI Online Retail CSV (benchmarks, ``rapport train
  --from-csv``), with the usual purchase filter and
  :func:`recommend.catalog.categories.derive_category`;
- or build one in memory (tests).

Interaction weight of one (customer, product) pair, summed over its purchase lines::

    w = sum over lines of  q(quantity) * 0.5 ** (age_days / half_life_days)

with ``q = log1p`` by default (a wholesaler's 480 units are not 480 times the signal of 1),
``age_days`` counted back from the newest purchase in the data, and ``half_life_days`` 90 (a
purchase a season ago counts half). Weights are then scaled to mean 1, so the learning rate
means the same whatever the data size. ``FeatureConfig`` switches every part.

User features: ``country:<c>``, ``locale:<l>``, ``tier:<t>``, ``pref:<category>`` (from the
profile, else the customer's top categories in the training purchases). Item features:
``cat:<category>``, ``brand:<b>``, ``price:<band>``, ``word:<w>`` (description words used by at
least ``min_word_items`` products), ``tag:<t>``. Both keep LightFM's identity feature, so known
customers and products have their own vector and new ones are built from features alone.

Holdout: :func:`split_holdout` keeps each customer's most recent order(s) for evaluation (time
based per customer); :func:`split_by_time` cuts at one instant (the benchmark protocol).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from lightfm.data import Dataset

from recommend.catalog.categories import description_words
from recommend.model.records import DAY, PurchaseLine, TrainingData
from recommend.model.sources import (
    is_purchase_row,
    load_from_redis,
    load_online_retail,
    online_retail_rows,
    parse_time,
    profile_features,
    purchase_lines,
    read_profiles,
)

# re-exported: training code and benchmarks import these from here
__all__ = [
    "DAY",
    "FeatureConfig",
    "IDS_ONLY",
    "Matrices",
    "PurchaseLine",
    "TrainingData",
    "build_matrices",
    "interaction_weight",
    "is_purchase_row",
    "item_feature_names",
    "load_from_redis",
    "load_online_retail",
    "online_retail_rows",
    "parse_time",
    "price_band",
    "profile_features",
    "purchase_lines",
    "read_profiles",
    "split_by_time",
    "split_holdout",
    "user_feature_names",
    "word_vocabulary",
]

STOPWORDS = frozenset(
    "OF SET AND THE IN WITH W/ W A TO FOR ON S/ S/2 S/3 S/4 S/6 PACK ASSORTED DESIGN".split()
)


@dataclass(frozen=True)
class FeatureConfig:
    """How interactions and features are built (R2 tunes these)."""

    half_life_days: float | None = 90.0  # None: no recency decay
    quantity: str = "log1p"  # "log1p" | "binary" | "linear"
    user_country: bool = True
    user_locale: bool = True
    user_tier: bool = True
    user_categories: bool = True
    history_categories: int = 3  # top categories from history when the profile has none
    item_category: bool = True
    item_brand: bool = True
    item_price_band: bool = True
    item_words: bool = True
    item_tags: bool = True
    min_word_items: int = 3
    price_bands: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
    metadata_weight: float = 1.0  # weight of each metadata feature next to the identity (1.0)
    user_identity: bool = True
    item_identity: bool = True


# the tuned production default (``rapport train``; docs/benchmarks.md): interactions only,
# recency half-life 60 days; cold start comes from the trained embeddings
# (recommend.model.coldstart)
IDS_ONLY = FeatureConfig(
    half_life_days=60.0,
    user_country=False,
    user_locale=False,
    user_tier=False,
    user_categories=False,
    item_category=False,
    item_brand=False,
    item_price_band=False,
    item_words=False,
    item_tags=False,
)


@dataclass
class Matrices:
    """LightFM inputs. Shapes: interactions/weights (n_users, n_items) COO; user_features
    (n_users, n_user_features) CSR; item_features (n_items, n_item_features) CSR; test
    (n_users, n_items) CSR of held-out pairs (or None)."""

    dataset: Dataset
    user_ids: list[str]
    item_ids: list[str]
    user_feature_names: list[str]
    item_feature_names: list[str]
    interactions: sp.coo_matrix
    weights: sp.coo_matrix
    user_features: sp.csr_matrix
    item_features: sp.csr_matrix
    test: sp.csr_matrix | None
    reference_time: float
    item_categories: list[str]
    user_countries: list[str]

    @property
    def train_csr(self) -> sp.csr_matrix:
        return self.interactions.tocsr()


# -- weights ------------------------------------------------------------------------------------
def interaction_weight(
    quantity: float, age_days: float, half_life_days: float | None, mode: str = "log1p"
) -> float:
    """Weight of one purchase line (see the module docstring)."""
    if mode == "binary":
        q = 1.0
    elif mode == "linear":
        q = max(quantity, 0.0)
    else:
        q = math.log1p(max(quantity, 0.0))
    if half_life_days:
        q *= 0.5 ** (max(age_days, 0.0) / half_life_days)
    return q


# -- splits -------------------------------------------------------------------------------------
def split_holdout(
    lines: list[PurchaseLine], *, holdout_orders: int = 1, min_orders: int = 2
) -> tuple[list[PurchaseLine], list[PurchaseLine]]:
    """Hold out each customer's ``holdout_orders`` most recent orders (customers with at least
    ``min_orders`` orders); returns ``(train, test)``."""
    orders: dict[str, dict[str, float]] = defaultdict(dict)
    for ln in lines:
        key = ln.order_id or repr(ln.purchased_at)
        prev = orders[ln.customer_id].get(key)
        orders[ln.customer_id][key] = (
            ln.purchased_at if prev is None else min(prev, ln.purchased_at)
        )
    held: dict[str, set[str]] = {}
    for cid, by_order in orders.items():
        if len(by_order) >= max(min_orders, holdout_orders + 1):
            newest = sorted(by_order, key=lambda o: (by_order[o], o))[-holdout_orders:]
            held[cid] = set(newest)
    train: list[PurchaseLine] = []
    test: list[PurchaseLine] = []
    for ln in lines:
        key = ln.order_id or repr(ln.purchased_at)
        (test if key in held.get(ln.customer_id, ()) else train).append(ln)
    return train, test


def split_by_time(
    lines: list[PurchaseLine], cutoff: float
) -> tuple[list[PurchaseLine], list[PurchaseLine]]:
    """Lines before ``cutoff`` (epoch s) train, the rest test."""
    train = [ln for ln in lines if ln.purchased_at < cutoff]
    test = [ln for ln in lines if ln.purchased_at >= cutoff]
    return train, test


# -- features -----------------------------------------------------------------------------------
def price_band(price: float | str | None, bands: tuple[float, ...]) -> str | None:
    if price in (None, ""):
        return None
    value = float(price)
    for edge in bands:
        if value < edge:
            return f"price:<{edge:g}"
    return f"price:>={bands[-1]:g}" if bands else None


def item_feature_names(
    product: dict[str, Any], config: FeatureConfig, vocabulary: set[str] | None
) -> list[str]:
    """Metadata feature names of one product (no identity feature)."""
    out: list[str] = []
    if config.item_category and product.get("category"):
        out.append(f"cat:{product['category']}")
    if config.item_brand and product.get("brand"):
        out.append(f"brand:{product['brand']}")
    if config.item_price_band:
        band = price_band(product.get("price"), config.price_bands)
        if band:
            out.append(band)
    if config.item_words:
        text = product.get("description") or product.get("name") or ""
        for w in dict.fromkeys(description_words(text)):
            if vocabulary is None or w in vocabulary:
                out.append(f"word:{w.lower()}")
    if config.item_tags:
        out.extend(f"tag:{t.lower()}" for t in product.get("tags") or ())
    return out


def user_feature_names(customer: dict[str, Any] | None, config: FeatureConfig) -> list[str]:
    """Metadata feature names of one customer from profile features (no identity feature)."""
    customer = customer or {}
    out: list[str] = []
    if config.user_country and customer.get("country"):
        out.append(f"country:{customer['country']}")
    if config.user_locale and customer.get("locale"):
        out.append(f"locale:{customer['locale']}")
    if config.user_tier and customer.get("tier"):
        out.append(f"tier:{customer['tier']}")
    if config.user_categories:
        out.extend(f"pref:{c}" for c in customer.get("preferred_categories") or ())
    return list(dict.fromkeys(out))


def word_vocabulary(products: Iterable[dict[str, Any]], min_items: int) -> set[str]:
    counts: Counter[str] = Counter()
    for p in products:
        text = p.get("description") or p.get("name") or ""
        counts.update(set(description_words(text)))
    return {
        w
        for w, n in counts.items()
        if n >= min_items and w not in STOPWORDS and not w.isdigit() and len(w) > 1
    }


def _weighted(names: list[str], weight: float) -> dict[str, float]:
    return {n: weight for n in names}


def build_matrices(
    data: TrainingData,
    train: list[PurchaseLine],
    test: list[PurchaseLine] | None = None,
    config: FeatureConfig | None = None,
) -> Matrices:
    """Build the LightFM matrices from ``train`` lines (users: customers with a training line;
    items: every catalog product plus any bought product); ``test`` pairs of known users and
    items become the ``test`` matrix."""
    config = config or FeatureConfig()
    if not train:
        raise ValueError("no purchases to train on")
    reference = max(ln.purchased_at for ln in train)
    user_ids = list(dict.fromkeys(ln.customer_id for ln in train))
    item_ids = list(dict.fromkeys([*data.products, *(ln.product_id for ln in train)]))
    products = {pid: data.products.get(pid, {"product_id": pid}) for pid in item_ids}
    vocab = word_vocabulary(products.values(), config.min_word_items) if config.item_words else None
    user_meta = _user_meta(data, train, products, user_ids, config)
    item_meta = {pid: item_feature_names(p, config, vocab) for pid, p in products.items()}

    ds = Dataset(
        user_identity_features=config.user_identity, item_identity_features=config.item_identity
    )
    ds.fit(
        user_ids,
        item_ids,
        user_features=sorted({f for fs in user_meta.values() for f in fs}),
        item_features=sorted({f for fs in item_meta.values() for f in fs}),
    )
    interactions, weights = _build_interactions(ds, train, reference, config)
    uf, itf = _build_features(ds, user_meta, item_meta, config)

    umap, ufmap, imap, ifmap = ds.mapping()
    return Matrices(
        dataset=ds,
        user_ids=_inverse(umap),
        item_ids=_inverse(imap),
        user_feature_names=_inverse(ufmap),
        item_feature_names=_inverse(ifmap),
        interactions=interactions,
        weights=weights,
        user_features=uf,
        item_features=itf,
        test=_test_matrix(test, umap, imap),
        reference_time=reference,
        item_categories=[products[p].get("category") or "other" for p in _inverse(imap)],
        user_countries=[(data.customers.get(c) or {}).get("country") or "" for c in _inverse(umap)],
    )


def _user_meta(
    data: TrainingData,
    train: list[PurchaseLine],
    products: dict[str, dict[str, Any]],
    user_ids: list[str],
    config: FeatureConfig,
) -> dict[str, list[str]]:
    """Each user's feature names; customers whose profile has no preferred categories get
    their top categories from their training history."""
    history_cats: dict[str, Counter[str]] = defaultdict(Counter)
    for ln in train:
        history_cats[ln.customer_id][products[ln.product_id].get("category") or "other"] += 1
    user_meta: dict[str, list[str]] = {}
    for cid in user_ids:
        customer = dict(data.customers.get(cid) or {})
        if not customer.get("preferred_categories") and config.history_categories:
            top = history_cats[cid].most_common(config.history_categories)
            customer["preferred_categories"] = [c for c, _ in top]
        user_meta[cid] = user_feature_names(customer, config)
    return user_meta


def _build_interactions(
    ds: Dataset, train: list[PurchaseLine], reference: float, config: FeatureConfig
) -> tuple[sp.coo_matrix, sp.coo_matrix]:
    """Interactions and weights (summed per pair, decayed, scaled to mean 1)."""
    pair_weight: dict[tuple[str, str], float] = defaultdict(float)
    for ln in train:
        age = (reference - ln.purchased_at) / DAY
        pair_weight[(ln.customer_id, ln.product_id)] += interaction_weight(
            ln.quantity, age, config.half_life_days, config.quantity
        )
    mean = sum(pair_weight.values()) / len(pair_weight)
    scale = 1.0 / mean if mean > 0 else 1.0
    interactions, weights = ds.build_interactions(
        (u, i, max(w * scale, 1e-6)) for (u, i), w in pair_weight.items()
    )
    return interactions, weights


def _build_features(
    ds: Dataset,
    user_meta: dict[str, list[str]],
    item_meta: dict[str, list[str]],
    config: FeatureConfig,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """User and item feature matrices (normalised, metadata weighted)."""
    uf = (
        ds.build_user_features(
            ((cid, _weighted(fs, config.metadata_weight)) for cid, fs in user_meta.items() if fs),
            normalize=True,
        )
        if (config.user_identity or all(user_meta.values()))
        else None
    )
    itf = (
        ds.build_item_features(
            ((pid, _weighted(fs, config.metadata_weight)) for pid, fs in item_meta.items() if fs),
            normalize=True,
        )
        if (config.item_identity or all(item_meta.values()))
        else None
    )
    if uf is None or itf is None:
        raise ValueError("without identity features every user and item needs a feature")
    return uf, itf


def _test_matrix(
    test: list[PurchaseLine] | None, umap: dict[str, int], imap: dict[str, int]
) -> sp.csr_matrix | None:
    """Binary (n_users, n_items) matrix of the ``test`` pairs of known users and items."""
    if test is None:
        return None
    rows, cols = [], []
    for ln in test:
        u, i = umap.get(ln.customer_id), imap.get(ln.product_id)
        if u is not None and i is not None:
            rows.append(u)
            cols.append(i)
    test_csr = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(umap), len(imap))
    )
    test_csr.data[:] = 1.0  # duplicates summed: keep it binary
    return test_csr


def _inverse(mapping: dict[str, int]) -> list[str]:
    out = [""] * len(mapping)
    for key, idx in mapping.items():
        out[idx] = key
    return out
