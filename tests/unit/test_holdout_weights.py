"""The trend weight chosen per training run on its own holdout (recommend.model.holdout_weights)
and applied by serving (issue 19: the weight validation chose is the one training ships)."""

from __future__ import annotations

import random

import numpy as np

from recommend.model import holdout_weights, scoring
from recommend.model.dataset import DAY, IDS_ONLY, PurchaseLine, TrainingData
from recommend.model.job import save_result
from recommend.model.recommender import Recommender
from recommend.model.training import TrainConfig, format_report, train
from tests.recsys import FAST, START, products, synthetic


def test_trends_by_day_match_the_serving_trend_at_each_reference():
    data = synthetic(n_customers=40)
    items = sorted(data.products)
    index = {p: i for i, p in enumerate(items)}
    times = sorted(ln.purchased_at for ln in data.lines)
    days = np.array([times[10], times[len(times) // 2], times[-1]])
    got = holdout_weights.trends_by_day(data.lines, index, days, 7.0)
    purchases = [(ln.customer_id, index[ln.product_id], ln.purchased_at) for ln in data.lines]
    for k, ref in enumerate(days):
        want = scoring.trend(purchases, len(items), float(ref), 7.0)
        np.testing.assert_allclose(got[k], want)
        assert want.sum() > 0  # the check is not of empty windows


def hot_item_data(n_customers: int = 90, seed: int = 5) -> TrainingData:
    """Purchases driven by what sells now: in every 10-day season one product is hot, and each
    customer's orders (the latest too) mostly buy the product hot at the time."""
    rng = random.Random(seed)
    catalog = products(per_category=10)
    ids = sorted(catalog)
    lines = []
    for u in range(n_customers):
        cid = f"H{u:03d}"
        for o in range(5):
            when = START + rng.uniform(0, 190) * DAY
            hot = ids[int((when - START) / DAY / 10) % len(ids)]
            basket = {hot} | {rng.choice(ids) for _ in range(2)}
            for pid in sorted(basket):
                lines.append(PurchaseLine(cid, pid, 1.0, when, f"{cid}-{o}", 1.0))
    return TrainingData(lines=lines, customers={}, products=catalog)


def test_training_chooses_a_trend_weight_on_its_holdout_and_serving_applies_it(tmp_path):
    config = TrainConfig(epochs=3, no_components=8, seed=1)
    result = train(hot_item_data(), config, IDS_ONLY, progress=False)
    chosen = result.scoring
    assert chosen["chosen_on"] == "holdout" and chosen["trend_days"] == scoring.TREND_DAYS
    precision = chosen["holdout_precision"]
    assert set(precision) == {f"{w:g}" for w in holdout_weights.TREND_WEIGHT_GRID}
    # what sells now predicts the held-out orders: a trend weight beats none, and the best
    # one is chosen
    assert chosen["trend_weight"] > 0
    assert precision[f"{chosen['trend_weight']:g}"] == max(precision.values())
    assert precision[f"{chosen['trend_weight']:g}"] > precision["0"]
    # stored with the artifact, applied by serving
    artifact = save_result(result, tmp_path, "v1")
    assert artifact.metadata["params"]["scoring"]["trend_weight"] == chosen["trend_weight"]
    rec = Recommender(artifact)
    assert rec.trend_weight == chosen["trend_weight"]
    assert rec.item_trend is not None and rec.trend_term is not None
    np.testing.assert_allclose(
        rec.trend_term, chosen["trend_weight"] * scoring.standardise(rec.item_trend)
    )
    assert "trend weight chosen on the holdout" in format_report(result)


def test_an_artifact_without_a_choice_ships_the_default_weight():
    assert scoring.trend_weight_of({"params": {"loss": "warp"}}) == scoring.TREND_WEIGHT
    assert scoring.trend_weight_of({}) == scoring.TREND_WEIGHT
    assert scoring.trend_weight_of({"params": {"scoring": {"trend_weight": 0.5}}}) == 0.5


def test_ties_choose_the_smaller_weight():
    # a model and data where the trend cannot change the ranking: nothing sold in the week
    # before any held-out order, so every weight scores the same
    data = synthetic(n_customers=40)
    spread = [
        PurchaseLine(ln.customer_id, ln.product_id, ln.quantity, START + i * 30 * DAY, ln.order_id)
        for i, ln in enumerate(sorted(data.lines, key=lambda ln: ln.order_id))
    ]
    sparse = TrainingData(lines=spread, customers=data.customers, products=data.products)
    result = train(sparse, FAST, IDS_ONLY, progress=False)
    precision = result.scoring["holdout_precision"]
    if len(set(precision.values())) == 1:
        assert result.scoring["trend_weight"] == 0.0
    else:  # the windows were not all empty after all: still the best one
        assert precision[f"{result.scoring['trend_weight']:g}"] == max(precision.values())
