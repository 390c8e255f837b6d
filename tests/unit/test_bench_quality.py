"""The quality benchmark's shortcut builds the same training matrices as production.

bench/quality.py reads the Online Retail CSV with ``recommend.model.dataset.load_online_retail``
(the
``rapport train --from-csv`` source). Production training reads Redis (``load_from_redis``:
purchases through ``ActivityStore``, products through ``Catalog``). Here a slice of the file
goes both ways, and ``build_matrices`` must give the same interactions, weights and feature
matrices (compared by id, since Redis SCAN order differs from file order).

Also: the ranking rules of ``recommend.model.scoring`` on hand-made numbers.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from profiles.activity import ActivityStore
from profiles.keys import Keys
from recommend.catalog.products import Catalog
from recommend.model import scoring
from recommend.model.dataset import (
    IDS_ONLY,
    FeatureConfig,
    TrainingData,
    build_matrices,
    is_purchase_row,
    load_from_redis,
    load_online_retail,
    online_retail_rows,
)

DATA = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "online_retail"
    / "online_retail.csv.gz"
)
KEYS = Keys("rp")
ROWS = 1500
# the benchmark's chosen configuration (recommend.model.dataset.IDS_ONLY) and one with every
# catalog feature
# profiles store ISO country codes, the CSV country names: country is compared off
CATALOG_FEATURES = replace(FeatureConfig(), user_country=False)


def _slice() -> list[dict[str, str]]:
    if not DATA.exists():
        pytest.skip(f"needs the shared Online Retail file at {DATA}")
    return list(itertools.islice(online_retail_rows(DATA), ROWS))


def _import_into_redis(redis_client, data: TrainingData) -> None:
    """What an importer does: one purchase per (customer, invoice), the catalog."""
    orders: dict[tuple[str, str], list] = defaultdict(list)
    for ln in data.lines:
        orders[(ln.customer_id, ln.order_id)].append(ln)
    activity = ActivityStore(redis_client, KEYS, clock=lambda: 2e9)
    for (cid, order_id), lines in orders.items():
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lines[0].purchased_at))
        activity.record_purchase(
            cid,
            {
                "order_id": order_id,
                "currency": "GBP",
                "purchased_at": when,
                "channel": "web",
                "lines": [
                    {
                        "product_id": ln.product_id,
                        "quantity": int(ln.quantity),
                        "unit_price": f"{ln.unit_price:.2f}",
                    }
                    for ln in lines
                ],
            },
        )
    products = [{k: v for k, v in p.items() if v not in (None, "")} for p in data.products.values()]
    catalog = Catalog(redis_client, KEYS)
    for start in range(0, len(products), 500):
        results = catalog.upsert_many(products[start : start + 500])
        assert all(r["status"] in ("created", "updated") for r in results), results


def _by_id(m) -> tuple[dict, dict, dict, dict]:
    inter = m.interactions.tocsr()
    weights = m.weights.tocsr()
    pairs = {}
    for u in range(inter.shape[0]):
        for j in range(inter.indptr[u], inter.indptr[u + 1]):
            i = inter.indices[j]
            pairs[(m.user_ids[u], m.item_ids[i])] = (inter.data[j], weights[u, i])

    def features(matrix, ids, names):
        matrix = matrix.tocsr()
        out = {}
        for r, rid in enumerate(ids):
            cols = matrix.indices[matrix.indptr[r] : matrix.indptr[r + 1]]
            vals = matrix.data[matrix.indptr[r] : matrix.indptr[r + 1]]
            out[rid] = {names[c]: round(float(v), 6) for c, v in zip(cols, vals, strict=True)}
        return out

    return (
        pairs,
        features(m.user_features, m.user_ids, m.user_feature_names),
        features(m.item_features, m.item_ids, m.item_feature_names),
        {"reference": m.reference_time},
    )


@pytest.mark.parametrize("config", [IDS_ONLY, CATALOG_FEATURES], ids=["ids_only", "catalog"])
def test_csv_shortcut_and_redis_path_build_the_same_matrices(redis_client, config):
    rows = _slice()
    from_csv = load_online_retail(rows)
    assert len(from_csv.lines) == sum(1 for r in rows if is_purchase_row(r)) > 500
    _import_into_redis(redis_client, from_csv)
    from_redis = load_from_redis(redis_client, KEYS)

    assert len(from_redis.lines) == len(from_csv.lines)
    a = _by_id(build_matrices(from_csv, from_csv.lines, None, config))
    b = _by_id(build_matrices(from_redis, from_redis.lines, None, config))
    assert a[0].keys() == b[0].keys()
    for pair, (inter, weight) in a[0].items():
        assert b[0][pair][0] == inter
        assert b[0][pair][1] == pytest.approx(weight, rel=1e-5)
    assert a[1] == b[1]
    assert a[2] == b[2]
    assert a[3] == b[3]


def test_discover_scores_add_standardised_trend_and_content():
    model = np.array([3.0, 1.0, 2.0, 0.0])
    trend = np.log1p(np.array([0.0, 9.0, 0.0, 0.0]))
    content = np.array([0.0, 0.0, 0.0, 1.0])
    plain = scoring.discover_scores(model, None, None)
    assert np.argsort(-plain).tolist() == [0, 2, 1, 3]
    with_trend = scoring.discover_scores(model, trend, None, trend_weight=1.0)
    assert np.argmax(with_trend) == 1  # what sells now overtakes the model's favourite
    with_content = scoring.discover_scores(model, None, content, content_weight=2.0)
    assert np.argmax(with_content) == 3
    batch = scoring.discover_scores(np.vstack([model, model]), trend, np.vstack([content, content]))
    assert batch.shape == (2, 4)
    np.testing.assert_allclose(batch[0], scoring.discover_scores(model, trend, content))


def test_blend_scores_keep_repeats_on_top_and_fill_with_new_products():
    discover = np.array([0.0, 5.0, 1.0, 4.0, -1.0])
    orders = np.array([3, 0, 1, 0, 0])
    ranked = np.argsort(-scoring.blend_scores(discover, orders, beta=0.3, gamma=0.5)).tolist()
    assert ranked == [0, 2, 1, 3, 4]  # repeats first, then new products in discover order
    # a large model weight lets strong new products overtake repeats
    ranked = np.argsort(-scoring.blend_scores(discover, orders, beta=1.0, gamma=0.0)).tolist()
    assert ranked == [1, 3, 0, 2, 4]


def test_word_matrix_and_content_scores_find_the_other_colour():
    words = scoring.word_matrix(
        ["LUNCH BAG RED RETROSPOT", "LUNCH BAG PINK POLKADOT", "WHITE METAL LANTERN", None]
    )
    assert words.shape[0] == 4
    np.testing.assert_allclose(
        np.sqrt(np.asarray(words.multiply(words).sum(axis=1)).ravel()), [1, 1, 1, 0], atol=1e-9
    )
    weights = scoring.history_weights({0: 1_000_000.0}, now=1_000_000.0)
    assert weights == {0: 1.0}
    content = scoring.content_scores(weights, words)
    assert content[1] > content[2] == 0.0


def test_trend_counts_distinct_recent_buyers():
    day = scoring.DAY
    purchases = [("a", 0, 10 * day), ("a", 0, 10 * day), ("b", 0, 9 * day), ("c", 1, 1 * day)]
    t = scoring.trend(purchases, 3, reference=10 * day, days=7)
    np.testing.assert_allclose(t, np.log1p([2, 0, 0]))


def test_naive_buy_again_baseline_breaks_ties_by_popularity():
    """bench/quality.py's buy-again baseline: own distinct orders, ties by popularity (not by
    recency), then everything else by popularity below every bought product."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import quality
    import retail

    day = 86400.0
    lines = [
        # u0: A in two orders; B and C once each, C more recently but B more popular
        ("u0", "A", "o1", 1 * day),
        ("u0", "A", "o2", 2 * day),
        ("u0", "B", "o1", 1 * day),
        ("u0", "C", "o3", 9 * day),
        ("u1", "B", "o4", 1 * day),
        ("u2", "B", "o5", 1 * day),
        ("u2", "D", "o5", 1 * day),
        ("u1", "D", "o4", 1 * day),
        ("u3", "D", "o6", 1 * day),
    ]
    from recommend.model.dataset import PurchaseLine

    train = [PurchaseLine(c, p, 1, t, o) for c, p, o, t in lines]
    users, items = ["u0", "u1", "u2", "u3"], ["A", "B", "C", "D"]
    split = quality.Split("t", TrainingData(lines=train, customers={}, products={}), train, [], 0)
    t = retail.task(users, items, [(ln.customer_id, ln.product_id) for ln in train], [])
    counts, _ = quality.order_counts(split, t)
    scores = quality.buy_again_method(t, counts)(np.array([0]))[0]
    ranked = [items[i] for i in np.argsort(-scores)]
    assert ranked == ["A", "B", "C", "D"]  # D: most popular, never bought by u0: last
