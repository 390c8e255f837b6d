"""The recommender's fast paths (scores once per request, percentiles by counting, integer
category codes, per-model trend and popularity terms, a read-only top-N selection) give the
results of a straightforward reference: every score over the whole catalog with the
``recommend.model.scoring`` formulas, a full sort (highest first, lower item index first among equal
scores), then the filters. Items, order, scores, reasons and sources must be equal."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from recommend.model import scoring
from recommend.model.dataset import DAY, IDS_ONLY, PurchaseLine
from recommend.model.job import save_result
from recommend.model.recommender import CustomerContext, Filters, Recommender
from recommend.model.training import train
from tests.recsys import CATEGORIES, END, FAST, products, synthetic, trained

NOW = END + 10 * DAY


@pytest.fixture(scope="module", params=["features", "ids-only"])
def rec(request, tmp_path_factory):
    result = (
        trained()
        if request.param == "features"
        else train(synthetic(), FAST, IDS_ONLY, progress=False)
    )
    base = Recommender(save_result(result, tmp_path_factory.mktemp("m"), "v1"), clock=lambda: NOW)
    new = [
        {**products()["P205"], "product_id": "NEW1", "description": "BRAND NEW BAG"},
        {**products()["P011"], "product_id": "NEW2", "description": "NEW CANDLE"},
    ]
    return base.with_new_items(new)


@pytest.fixture(scope="module")
def catalog():
    out = products()
    out["NEW1"] = {**out["P205"], "product_id": "NEW1"}
    out["NEW2"] = {**out["P011"], "product_id": "NEW2"}
    for n, pid in enumerate(sorted(out)):
        if n % 7 == 3:
            out[pid] = {**out[pid], "in_stock": False}
    return out


def ranked(rec, scores, exclude, filters, limit, catalog):
    """Reference selection: full sort, then exclusions, category and the catalog filters."""
    out = []
    for i in np.lexsort((np.arange(len(scores)), -np.asarray(scores, dtype=np.float64))):
        pid = rec.item_ids[i]
        if pid in exclude or not np.isfinite(scores[i]):
            continue
        if filters.category and rec.item_categories[i] != filters.category:
            continue
        if filters.accepts(catalog.get(pid)):
            out.append((pid, round(float(scores[i]), 6)))
            if len(out) == limit:
                break
    return out


def reference(rec, ctx, strategy, filters, limit, catalog):
    """(product id, score) of each item, computed the slow, obvious way."""
    vector, basis = rec.user_vector(ctx)
    bought = {ln.product_id for ln in ctx.purchases}
    if strategy == "buy_again":
        # own products: log1p(distinct orders) + tiebreak * weighted mean of timing, model
        # percentile and popularity percentile; then the blend's other products, then popular
        scores = rec.item_vectors @ vector + rec.item_bias
        ordered, pop_sorted = np.sort(scores), np.sort(rec.popularity)
        rows = []
        for c in scoring_candidates(rec, ctx):
            if not filters.accepts(catalog.get(c.product_id)):
                continue
            i = rec.item_index.get(c.product_id)
            n = len(scores) - 1
            pct = np.searchsorted(ordered, scores[i]) / n if i is not None else 0.5
            pop = np.searchsorted(pop_sorted, rec.popularity[i]) / n if i is not None else 0.0
            tw, mw = rec.buy_again_timing_weight, rec.blend_config.model_weight
            pw = rec.buy_again_popularity_weight
            mix = (tw * c.timing + mw * pct + pw * pop) / (tw + mw + pw)
            rows.append((np.log1p(c.order_count) + rec.buy_again_tiebreak * mix, c.product_id))
        rows.sort(key=lambda t: (-t[0], t[1]))
        own = [(pid, round(float(s), 6)) for s, pid in rows[:limit]]
        if len(own) < limit:
            have = {pid for pid, _ in own}
            fill = reference(rec, ctx, "blend", filters, limit + len(own), catalog)
            own += [row for row in fill if row[0] not in have][: limit - len(own)]
        return own
    content = None
    if ctx.purchases:
        last: dict[int, float] = {}
        for ln in ctx.purchases:
            i = rec.item_index[ln.product_id]
            last[i] = max(last.get(i, -np.inf), ln.purchased_at)
        content = scoring.content_scores(scoring.history_weights(last, NOW), rec.item_words)
    discover = scoring.discover_scores(
        rec.item_vectors @ vector + rec.item_bias,
        rec.item_trend,
        content,
        trend_weight=rec.trend_weight,  # the weight this artifact's training run chose
    )
    if basis == "cold" and ctx.preferred_categories:
        span = float(discover.max() - discover.min()) + 1.0
        discover = discover + span * np.isin(rec.item_categories, ctx.preferred_categories)
    if strategy == "discover":
        out = ranked(rec, discover, bought, filters, limit, catalog)
    else:
        orders: dict[int, set] = {}
        for ln in ctx.purchases:
            orders.setdefault(rec.item_index[ln.product_id], set()).add(ln.order_id)
        counts = np.zeros(len(rec.item_ids))
        for i, o in orders.items():
            counts[i] = len(o)
        out = ranked(rec, scoring.blend_scores(discover, counts), set(), filters, limit, catalog)
    if len(out) < limit:
        row = rec.country_index.get(ctx.country) if ctx.country else None
        pop = rec.popularity
        if row is not None and rec.country_popularity[row].sum() > 0:
            pop = rec.country_popularity[row] + rec.popularity / (rec.popularity.max() + 1)
        have = {pid for pid, _ in out} | bought
        out += ranked(rec, pop, have, filters, limit - len(out), catalog)
    return out


def scoring_candidates(rec, ctx):
    from recommend.model.repurchase import repurchase_candidates

    return repurchase_candidates(ctx.purchases, NOW, rec.blend_config)


def contexts():
    lines = synthetic().lines
    out = []
    for cid in ("C001", "C006", "C011"):
        mine = [ln for ln in lines if ln.customer_id == cid]
        out.append(CustomerContext(cid, country="France", purchases=mine, has_profile=True))
    late = [PurchaseLine("C001", "NEW1", 1, NOW - DAY, "late"), *out[0].purchases]
    out.append(CustomerContext("C001", purchases=late, has_profile=True))
    for prefs in ([CATEGORIES[0]], [CATEGORIES[2], CATEGORIES[3], "unknown"]):
        out.append(
            CustomerContext("new", country="Germany", preferred_categories=prefs, has_profile=True)
        )
    out.append(
        CustomerContext(
            "new2",
            country="United Kingdom",
            preferred_categories=[CATEGORIES[1]],
            purchases=[PurchaseLine("new2", "P100", 1, NOW - 5 * DAY, "o1")],
            has_profile=True,
        )
    )
    return out


FILTERS = [
    Filters(),
    Filters(category="bags"),
    Filters(in_stock_only=False, max_price=Decimal("3.50")),
    Filters(category="christmas", min_price=Decimal("2")),
    Filters(category="no such category"),
]


@pytest.mark.parametrize("strategy", ["blend", "discover", "buy_again"])
def test_recommendations_equal_the_reference(rec, catalog, strategy):
    def lookup(ids):
        return {p: catalog[p] for p in ids if p in catalog}

    checked = 0
    for ctx in contexts():
        vector, _ = rec.user_vector(ctx)
        assert vector is not None
        for filters in FILTERS:
            for limit in (1, 10, 50):
                got = rec.recommend(
                    ctx, strategy=strategy, limit=limit, filters=filters, lookup=lookup
                )["items"]
                want = reference(rec, ctx, strategy, filters, limit, catalog)
                assert [(it["product_id"], it["score"]) for it in got] == want
                assert all(it["reason"] and it["model_version"] == "v1" for it in got)
                checked += bool(want)
    assert checked > 20


def test_popular_equals_the_reference(rec, catalog):
    def lookup(ids):
        return {p: catalog[p] for p in ids if p in catalog}

    for country in (None, "France", "Germany", "Atlantis"):
        for filters in FILTERS:
            got = rec.popular(country, limit=20, filters=filters, exclude={"P000"}, lookup=lookup)
            ctx = CustomerContext(None, country=country)
            row = rec.country_index.get(country) if country else None
            pop = rec.popularity
            if row is not None and rec.country_popularity[row].sum() > 0:
                pop = rec.country_popularity[row] + rec.popularity / (rec.popularity.max() + 1)
            want = ranked(rec, pop, {"P000"}, filters, 20, catalog)
            assert [(it["product_id"], it["score"]) for it in got] == want, ctx


def test_category_codes_follow_the_catalog(rec):
    assert rec.item_category_codes.shape == (len(rec.item_ids),)
    for category, code in rec.category_code.items():
        np.testing.assert_array_equal(
            rec.category_mask([category]), rec.item_categories == category
        )
        np.testing.assert_array_equal(
            rec.category_items[code], np.flatnonzero(rec.item_categories == category)
        )
    assert not rec.category_mask(["no such category"]).any()
