"""Recommendations over HTTP on a real small model: strategies, filters, cold start, popular,
similar, the fallback without a model, and validation."""

from __future__ import annotations

import pytest

from profiles.store import ProfileStore
from tests.recsys import END, install_model, load_catalog, purchase, record_purchase, synthetic


@pytest.fixture
def served(app):
    load_catalog(app)
    install_model(app, "v1")
    return app


def _history_into_redis(app, customer_id: str) -> set[str]:
    st = app.extensions["rapport"]
    bought = set()
    by_order: dict[str, list] = {}
    for ln in synthetic().lines:
        if ln.customer_id == customer_id:
            by_order.setdefault(ln.order_id, []).append(ln)
    for order_id, lines in by_order.items():
        record_purchase(
            st.redis,
            st.keys,
            customer_id,
            purchase(order_id, lines[0].purchased_at, *[ln.product_id for ln in lines]),
        )
        bought |= {ln.product_id for ln in lines}
    return bought


def test_scope_and_validation(api_as, api, served):
    assert api_as("profiles:read").get("/v1/profiles/C001/recommendations").status_code == 403
    for query, field in [
        ("limit=51", "limit"),
        ("strategy=magic", "strategy"),
        ("min_price=abc", "min_price"),
        ("in_stock_only=maybe", "in_stock_only"),
        ("min_price=5&max_price=1", "min_price"),
    ]:
        resp = api.get(f"/v1/profiles/C001/recommendations?{query}")
        assert resp.status_code == 422, query
        assert resp.json["errors"][0]["field"] == field


def test_discover_honours_a_purchase_recorded_after_training(api, served):
    bought = _history_into_redis(served, "C001")
    resp = api.get("/v1/profiles/C001/recommendations?strategy=discover&limit=10")
    assert resp.status_code == 200
    body = resp.json
    assert body["basis"] == "known" and body["model_version"] == "v1"
    ids = [it["product_id"] for it in body["items"]]
    assert len(ids) == 10 and not set(ids) & bought
    top = ids[0]
    st = served.extensions["rapport"]
    record_purchase(st.redis, st.keys, "C001", purchase("after-training", END + 86400, top))
    again = api.get("/v1/profiles/C001/recommendations?strategy=discover&limit=10").json
    assert top not in [it["product_id"] for it in again["items"]]


def test_buy_again_and_blend(api, served):
    bought = _history_into_redis(served, "C002")
    limit = len(bought) + 5
    again = api.get(f"/v1/profiles/C002/recommendations?strategy=buy_again&limit={limit}")
    items = again.json["items"]
    # the customer's own products first (all of them), then fill items marked by source
    own = [it for it in items if it["source"] == "buy_again"]
    assert items[: len(own)] == own and {it["product_id"] for it in own} == bought
    assert own[0]["reason"].startswith("bought")
    fill = items[len(own) :]
    assert len(items) == limit and fill
    assert all(
        it["source"] in ("discover", "popular") and it["product_id"] not in bought for it in fill
    )
    # blend ranks repeats and new products on one scale (recommend.model.scoring.blend_scores):
    # with more slots than the customer has products, both kinds appear, repeats first
    blend = api.get(f"/v1/profiles/C002/recommendations?limit={len(bought) + 10}").json
    assert blend["strategy"] == "blend"
    sources = [it["source"] for it in blend["items"]]
    assert set(sources) == {"buy_again", "discover"}
    assert sources[0] == "buy_again"


def test_filters(api, served):
    _history_into_redis(served, "C001")
    resp = api.get(
        "/v1/profiles/C001/recommendations?category=bags&max_price=3.00&limit=5&strategy=discover"
    )
    items = resp.json["items"]
    assert items and all(it["category"] == "bags" and float(it["price"]) <= 3 for it in items)
    first = items[0]["product_id"]
    api.put(
        f"/v1/products/{first}",
        json={
            "name": "gone",
            "category": "bags",
            "in_stock": False,
            "price": "1.50",
            "currency": "GBP",
        },
    )
    after = api.get(
        "/v1/profiles/C001/recommendations?category=bags&max_price=3.00&limit=5&strategy=discover"
    ).json["items"]
    assert first not in [it["product_id"] for it in after]


def test_cold_start_profile_gets_its_preferred_category_first(api, served):
    st = served.extensions["rapport"]
    ProfileStore(st.redis, st.keys).create(
        {"country": "FR", "preferences": {"categories": ["christmas"]}}, customer_id="newbie"
    )
    body = api.get("/v1/profiles/newbie/recommendations?limit=5").json
    assert body["basis"] == "cold"
    assert [it["category"] for it in body["items"]] == ["christmas"] * 5


def test_nobody_and_an_erased_customer_are_404_visitors_get_popular(api, served):
    # as GET /v1/profiles/{id} answers: an id without a profile (never created, or erased)
    resp = api.get("/v1/profiles/nobody/recommendations?limit=5")
    assert resp.status_code == 404 and resp.json["type"].endswith("not-found"), resp.json
    cid = api.post("/v1/profiles", json={"email": "new.one@example.com"}).json["id"]
    fresh = api.get(f"/v1/profiles/{cid}/recommendations?limit=5")
    assert fresh.status_code == 200 and len(fresh.json["items"]) == 5  # a new customer: picks
    assert api.delete(f"/v1/profiles/{cid}").status_code == 200
    assert api.get(f"/v1/profiles/{cid}/recommendations").status_code == 404
    popular = api.get("/v1/recommendations/popular?limit=5").json  # visitors nobody knows
    assert len(popular["items"]) == 5 and all(it["source"] == "popular" for it in popular["items"])
    germany = api.get("/v1/recommendations/popular?country=Germany&limit=3").json["items"]
    assert germany[0]["reason"] == "popular in your country (Germany)"


def test_similar_products(api, served):
    items = api.get("/v1/products/P100/similar?limit=5").json["items"]
    assert len(items) == 5 and "P100" not in [it["product_id"] for it in items]
    assert sum(it["category"] == "kitchen & tea" for it in items) >= 4
    api.put(
        "/v1/products/NEWBAG",
        json={
            "name": "BAGS THING NUMBER 5",
            "category": "bags",
            "description": "BAGS THING NUMBER 5",
            "price": "6.50",
            "currency": "GBP",
        },
    )
    new = api.get("/v1/products/NEWBAG/similar?limit=5").json["items"]
    assert new and sum(it["category"] == "bags" for it in new) >= 4
    assert api.get("/v1/products/NOPE/similar").status_code == 404


def test_without_a_model_popularity_or_catalog_serves(api, app):
    load_catalog(app)
    app.extensions["rapport"].profiles.create({"email": "c001@example.com"}, customer_id="C001")
    resp = api.get("/v1/profiles/C001/recommendations?limit=3")
    assert resp.status_code == 200
    body = resp.json
    assert body["model_version"] is None and body["basis"] == "popularity"
    assert len(body["items"]) == 3 and body["items"][0]["reason"] == "from the catalog"
    assert api.get("/readyz").json["checks"]["model"] == "fallback: popularity"
    similar = api.get("/v1/products/P100/similar?limit=3").json["items"]
    assert similar and all(it["category"] == "kitchen & tea" for it in similar)


def test_an_id_that_cannot_be_a_customer_is_404(api, served):
    resp = api.get("/v1/profiles/a%7Bb%7D/recommendations?limit=3")  # never reaches a key name
    assert resp.status_code == 404 and resp.json["status"] == 404


def test_a_product_added_after_training_is_recommended(api, served):
    api.put(
        "/v1/products/FRESH1",
        json={
            "name": "BAGS THING NUMBER 3",
            "description": "BAGS THING NUMBER 3",
            "category": "bags",
            "price": "3.50",
            "currency": "GBP",
        },
    )
    assert served.extensions["rapport"].models.refresh_new_items() == 1
    st = served.extensions["rapport"]
    ProfileStore(st.redis, st.keys).create(
        {"preferences": {"categories": ["bags"]}}, customer_id="bagfan"
    )
    items = api.get(
        "/v1/profiles/bagfan/recommendations?strategy=discover&category=bags&limit=16"
    ).json["items"]
    assert "FRESH1" in [it["product_id"] for it in items]


def test_a_recently_declined_product_rests_and_the_export_holds_the_feedback(api, served):
    st = served.extensions["rapport"]
    st.profiles.create({"email": "c001@example.com"}, customer_id="C001")
    path = "/v1/profiles/C001/recommendations?strategy=discover&limit=5"
    top = api.get(path).json["items"][0]["product_id"]
    body = {"feedback_id": "f1", "outcome": "dismissed", "agent_id": "a1", "product_id": top}
    assert api.post("/v1/profiles/C001/product-feedback", json=body).status_code == 201
    again = [it["product_id"] for it in api.get(path).json["items"]]
    assert top not in again and len(again) == 5
    exported = api.get("/v1/profiles/C001/export").json
    assert [(f["feedback_id"], f["product_id"]) for f in exported["feedback"]] == [("f1", top)]
