"""Recommendations that move between retrains (issue 19), over HTTP on a real small model and a
real Redis: fold-in of purchases recorded after training (known and new customers, gone after
erasure), and the live purchase counters behind the trend term and the popular lists."""

from __future__ import annotations

import time

import numpy as np
import pytest

from profiles.store import ProfileStore
from recommend.model import scoring
from recommend.model.live_trend import day_of, window_counts
from recommend.model.recommender import Recommender
from tests.recsys import END, install_model, load_catalog, products, purchase, record_purchase

# products of the synthetic catalog (tests/recsys.py): category 3 is "christmas"
CHRISTMAS = [pid for pid, p in products().items() if p["category"] == "christmas"]


@pytest.fixture
def served(app):
    load_catalog(app)
    install_model(app, "v1")
    rec = app.extensions["rapport"].models.current.recommender
    assert isinstance(rec, Recommender) and rec.live is not None
    rec.live.ttl = 0.0  # read the counters on every request (they are cached 5 s by default)
    return app


def _rec(app) -> Recommender:
    rec = app.extensions["rapport"].models.current.recommender
    assert isinstance(rec, Recommender)
    return rec


def _picks(api, cid: str, strategy: str = "discover") -> dict:
    resp = api.get(f"/v1/profiles/{cid}/recommendations?strategy={strategy}&limit=10")
    assert resp.status_code == 200, resp.json
    return resp.json


def _christmas(body: dict) -> int:
    return sum(1 for it in body["items"] if it["category"] == "christmas")


def _buy(api, cid: str, order_id: str, when: float, pids: list[str]) -> None:
    body = purchase(order_id, when, *pids, quantity=6)
    body["purchased_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    resp = api.post(f"/v1/profiles/{cid}/purchases", json=body)
    assert resp.status_code == 201, resp.json


def _least_christmas_customer(app) -> str:
    """A customer the model knows who bought no christmas product in training."""
    from tests.recsys import synthetic

    seen: dict[str, set[str]] = {}
    for ln in synthetic().lines:
        seen.setdefault(ln.customer_id, set()).add(ln.product_id)
    return next(c for c, ps in sorted(seen.items()) if not ps & set(CHRISTMAS))


def _history_into_redis(app, cid: str) -> None:
    from tests.recsys import synthetic

    st = app.extensions["rapport"]
    ProfileStore(st.redis, st.keys).create({}, customer_id=cid)
    orders: dict[str, list] = {}
    for ln in synthetic().lines:
        if ln.customer_id == cid:
            orders.setdefault(ln.order_id, []).append(ln)
    for oid, lines in orders.items():
        p = purchase(oid, lines[0].purchased_at, *[ln.product_id for ln in lines])
        record_purchase(st.redis, st.keys, cid, p)


def test_a_purchase_after_training_changes_a_known_customers_picks(api, served):
    cid = _least_christmas_customer(served)
    _history_into_redis(served, cid)
    before = _picks(api, cid)
    assert before["basis"] == "known"
    assert cid not in _rec(served).fold_in_cache  # nothing since training: the trained vector
    _buy(api, cid, "after-1", END + 86_400, CHRISTMAS[:6])
    after = _picks(api, cid)
    assert after["basis"] == "known" and cid in _rec(served).fold_in_cache
    # the six christmas products bought are excluded, yet more of the rest rank in the top 10
    assert _christmas(after) > _christmas(before), (before, after)
    assert not {it["product_id"] for it in after["items"]} & set(CHRISTMAS[:6])
    cached = _rec(served).fold_in_cache.fingerprint(cid)
    assert _picks(api, cid) == after  # no write since: the cached vector, the same picks
    _buy(api, cid, "after-2", END + 2 * 86_400, CHRISTMAS[6:8])
    _picks(api, cid)
    assert _rec(served).fold_in_cache.fingerprint(cid) != cached  # the write invalidated it


def test_a_new_customer_who_bought_gets_a_folded_vector_and_erasure_removes_it(api, served):
    st = served.extensions["rapport"]
    ProfileStore(st.redis, st.keys).create({"country": "DE"}, customer_id="late")
    cold = _picks(api, "late")
    assert cold["basis"] in ("cold", "popularity")
    _buy(api, "late", "late-1", time.time() - 60, CHRISTMAS[:5])
    folded = _picks(api, "late")
    assert folded["basis"] == "folded" and "late" in _rec(served).fold_in_cache
    assert _christmas(folded) >= 5 > _christmas(cold), (cold, folded)
    assert api.delete("/v1/profiles/late").status_code == 200
    assert api.get("/v1/profiles/late/recommendations").status_code == 404
    # the same id created again: nothing of the erased purchases is used, nor kept in the cache
    ProfileStore(st.redis, st.keys).create({"country": "DE"}, customer_id="late")
    again = _picks(api, "late")
    ProfileStore(st.redis, st.keys).create({"country": "DE"}, customer_id="twin")
    twin = _picks(api, "twin")  # a customer who never bought, with the same profile
    assert again["basis"] == twin["basis"] != "folded"
    assert again["items"] == twin["items"]
    assert "late" not in _rec(served).fold_in_cache


def _trend_counts(rec: Recommender, now: float) -> np.ndarray:
    """The 7-day buyers the discover trend term is computed from (live_trend.window_counts)."""
    assert rec.live is not None and rec.item_trend is not None
    return window_counts(
        rec.live,
        rec.item_index,
        len(rec.item_ids),
        now=now,
        data_until=rec.data_until,
        frozen=np.expm1(rec.item_trend),
        window_days=scoring.TREND_DAYS,
    )


def test_live_counters_move_the_trend_and_the_popular_lists(api, served):
    st = served.extensions["rapport"]
    rec = _rec(served)
    quiet = "P314"  # the least popular christmas product of the synthetic data
    i = rec.item_index[quiet]
    now = time.time()
    trend_before = _trend_counts(rec, now)
    popular = api.get("/v1/recommendations/popular?limit=3").json["items"]
    assert quiet not in [it["product_id"] for it in popular]
    profiles = ProfileStore(st.redis, st.keys)
    for n in range(40):
        profiles.create({"country": "DE"}, customer_id=f"buyer{n}")
        _buy(api, f"buyer{n}", f"b{n}", now - 3600, [quiet])
    trend_after = _trend_counts(rec, now)
    assert trend_after[i] == trend_before[i] + 40  # the discover trend's buyers moved
    term = rec.current_trend_term(now)  # None when this model's trend weight is 0
    assert term is None or term[i] == term.max()
    popular = api.get("/v1/recommendations/popular?limit=3").json["items"]
    assert popular[0]["product_id"] == quiet
    # the counters are one hash per shard and UTC day, summed by the reader; per country too
    # (the profile's country: the synthetic model's countries are names, not codes, so the
    # popular list by country is not asked here)
    bought = day_of(now - 3600)  # the purchases' UTC day (yesterday in the hour after midnight)
    day = rec.live.days(bought, day_of(now), day_of(now))[bought]
    assert day["p"][quiet] == 40 and day["DE"][quiet] == 40
    # a replayed purchase (same order id and body) counts nothing
    _buy_again = api.post(
        "/v1/profiles/buyer0/purchases",
        json={
            **purchase("b0", now - 3600, quiet, quantity=6),
            "purchased_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
        },
    )
    assert _buy_again.status_code == 200
    bought = day_of(now - 3600)  # the purchases' UTC day (yesterday in the hour after midnight)
    day = rec.live.days(bought, day_of(now), day_of(now))[bought]
    assert day["p"][quiet] == 40
