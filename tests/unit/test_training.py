"""Dataset building, evaluation and LightFM training on a small synthetic slice (seconds)."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommend.catalog.categories import derive_category
from recommend.model.dataset import (
    DAY,
    FeatureConfig,
    PurchaseLine,
    build_matrices,
    interaction_weight,
    load_online_retail,
    split_holdout,
)
from recommend.model.training import (
    TrainConfig,
    evaluate,
    format_report,
    plot_learning_curve,
    train,
)
from tests.recsys import FAST, synthetic


def test_weight_is_log_quantity_halved_every_half_life():
    assert interaction_weight(1, 0, 90) == pytest.approx(math.log(2))
    assert interaction_weight(1, 90, 90) == pytest.approx(math.log(2) / 2)
    assert interaction_weight(9, 180, 90) == pytest.approx(math.log(10) / 4)
    assert interaction_weight(9, 180, None, "binary") == 1.0


def test_holdout_keeps_each_customers_latest_order():
    lines = [
        PurchaseLine("a", "x", 1, 10.0, "o1"),
        PurchaseLine("a", "y", 1, 20.0, "o2"),
        PurchaseLine("a", "z", 1, 20.0, "o2"),
        PurchaseLine("b", "x", 1, 30.0, "o3"),  # one order only: all training
    ]
    train_lines, test_lines = split_holdout(lines)
    assert {(ln.customer_id, ln.product_id) for ln in test_lines} == {("a", "y"), ("a", "z")}
    assert {ln.order_id for ln in train_lines} == {"o1", "o3"}


def test_matrices_have_features_and_summed_weights():
    data = synthetic(n_customers=20)
    m = build_matrices(data, data.lines, None, FeatureConfig())
    assert m.interactions.shape == (20, 60)
    assert m.user_features.shape[0] == 20 and m.item_features.shape[0] == 60
    assert "cat:bags" in m.item_feature_names
    assert "country:France" in m.user_feature_names
    assert any(f.startswith("pref:") for f in m.user_feature_names)
    # one entry per (customer, product) pair, weights scaled to mean 1
    assert m.interactions.nnz == len({(ln.customer_id, ln.product_id) for ln in data.lines})
    assert m.weights.data.mean() == pytest.approx(1.0, rel=1e-4)
    # rows are normalised (LightFM's Dataset does it)
    assert np.allclose(np.asarray(m.item_features.sum(axis=1)).ravel(), 1.0)


def test_evaluate_on_a_hand_made_case():
    train_m = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    test_m = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float32))
    scores = np.array([[9.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]])
    got = evaluate(lambda rows: scores[rows], train_m, test_m, k=2)
    # user 0: item 0 excluded (seen) and not a target; target 1 ranked first -> 1 hit of 2
    # user 1: target 3 ranked last of 4 -> no hit, AUC 0
    assert got["precision"] == pytest.approx((1 / 2 + 0) / 2)
    assert got["recall"] == pytest.approx((1 + 0) / 2)
    assert got["auc"] == pytest.approx((1.0 + 0.0) / 2)
    assert got["coverage"] == pytest.approx(3 / 4)  # items 1, 2 (user 0) and 0, 1 (user 1)
    all_items = evaluate(lambda rows: scores[rows], train_m, test_m, k=2, exclude_seen=False)
    assert all_items["precision"] == pytest.approx((2 / 2 + 0) / 2)


def test_train_beats_popularity_and_reports_every_epoch():
    data = synthetic()
    result = train(data, FAST, progress=False)
    assert [h["epoch"] for h in result.history] == list(range(1, FAST.epochs + 1))
    model, pop = result.metrics["model"], result.metrics["popularity"]
    assert set(model) >= {"precision", "recall", "auc", "coverage"}
    assert model["precision"] > pop["precision"]
    assert model["auc"] > 0.6
    assert model["coverage"] > pop["coverage"]
    # refit: the saved model was trained on every purchase (all customers are known)
    assert len(result.matrices.user_ids) == len(data.customers)
    assert result.matrices.interactions.nnz > result.counts["interactions"]
    report = format_report(result)
    assert "popularity" in report and "precision@10" in report


def test_training_is_deterministic():
    data = synthetic(n_customers=40)
    config = TrainConfig(epochs=3, no_components=8, seed=1, refit=False)
    a = train(data, config, progress=False)
    b = train(data, config, progress=False)
    assert np.array_equal(a.model.item_embeddings, b.model.item_embeddings)
    assert a.metrics == b.metrics


def test_too_little_data_is_a_clear_error():
    data = synthetic(n_customers=3)
    data.lines = [ln for ln in data.lines if ln.order_id.endswith("O0")]
    with pytest.raises(ValueError, match="at least two orders"):
        train(data, FAST, progress=False)


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    history = [{"epoch": e, "precision": 0.1 * e, "recall": 0.1, "auc": 0.7} for e in (1, 2, 3)]
    path = plot_learning_curve(history, tmp_path / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


ONLINE_RETAIL_HEADER = (
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
)


def test_online_retail_loader_filters_and_derives_categories(tmp_path):
    rows = [
        ONLINE_RETAIL_HEADER,
        "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,"
        "United Kingdom",
        "536365,22633,HAND WARMER UNION JACK,6,2010-12-01 08:26:00,1.85,17850.0,United Kingdom",
        'C536379,D,"Discount, big",-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom',
        "536380,22961,JAM MAKING SET PRINTED,24,2010-12-01 09:41:00,1.45,,United Kingdom",
        "536381,POST,POSTAGE,1,2010-12-01 09:41:00,18.0,12583.0,France",
        "536382,21212,PACK OF 72 RETROSPOT CAKE CASES,24,2010-12-02 10:00:00,0.55,12583.0,France",
    ]
    path = tmp_path / "retail.csv.gz"
    path.write_bytes(gzip.compress("\n".join(rows).encode()))
    data = load_online_retail(path)
    assert [ln.product_id for ln in data.lines] == ["85123A", "22633", "21212"]
    assert data.customers == {
        "17850": {"country": "United Kingdom"},
        "12583": {"country": "France"},
    }
    assert data.products["85123A"]["category"] == "candles & lights"
    assert data.products["21212"]["category"] == "kitchen & tea"
    assert data.products["85123A"]["price"] == "2.55"
    assert data.lines[2].purchased_at - data.lines[0].purchased_at == pytest.approx(DAY + 5640)


@pytest.mark.parametrize(
    ("description", "category"),
    [
        ("CHRISTMAS CARD SNOWMAN", "christmas"),
        ("WHITE HANGING HEART T-LIGHT HOLDER", "candles & lights"),
        ("JUMBO BAG RED RETROSPOT", "bags"),
        ("SET OF 3 CAKE TINS PANTRY DESIGN", "kitchen & tea"),
        ("PACK OF 12 HEARTS DESIGN TISSUES", "cards & wrap"),
        ("", "other"),
        ("Discount", "other"),
    ],
)
def test_category_keyword_table(description, category):
    assert derive_category(description) == category


def test_warp_kos_trains_without_sample_weights():
    """LightFM refuses sample weights for WARP-kOS: fit_epochs must not pass them."""
    from dataclasses import replace

    from recommend.model.training import fit_weights

    data = synthetic(n_customers=40)
    config = replace(FAST, loss="warp-kos", epochs=2, refit=False)
    m = build_matrices(data, data.lines, None, FeatureConfig())
    assert fit_weights(m, config) is None
    assert fit_weights(m, replace(config, loss="warp")) is m.weights
    result = train(data, config, progress=False)
    assert len(result.history) == 2
    assert np.all(np.isfinite(result.model.item_embeddings))


def test_artifact_arrays_carry_trend_descriptions_and_cold_start_tables():
    from recommend.model.dataset import IDS_ONLY
    from recommend.model.training import artifact_arrays

    data = synthetic(n_customers=40)
    result = train(data, FAST, IDS_ONLY, progress=False)
    arrays = artifact_arrays(result)
    items = list(arrays["item_ids"])
    # the trend counts distinct buyers in the last 7 days of the data
    newest = max(ln.purchased_at for ln in data.lines)
    recent: dict[str, set] = {}
    for ln in data.lines:
        if ln.purchased_at > newest - 7 * DAY:
            recent.setdefault(ln.product_id, set()).add(ln.customer_id)
    expected = [math.log1p(len(recent.get(p, ()))) for p in items]
    np.testing.assert_allclose(arrays["item_trend"], expected, rtol=1e-6)
    assert arrays["item_descriptions"][0] == data.products[items[0]]["description"]
    names = list(arrays["cold_user_feature_names"])
    assert "country:France" in names and "pref:bags" in names
    assert arrays["cold_user_feature_vectors"].shape == (len(names), FAST.no_components)
    assert "cat:bags" in list(arrays["cold_item_feature_names"])
    assert all(a.dtype.kind != "O" for a in arrays.values())
