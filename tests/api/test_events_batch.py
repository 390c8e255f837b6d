"""POST /v1/events resolves and records a whole batch together (issue 7): per item, the same
results as posting the items one at a time.

Two worlds with the same shape live side by side in one database (ids and emails suffixed
``-a`` / ``-b``): world a gets every batch in one request, world b the same items one request
each; their per-item results must match item for item.
"""

from __future__ import annotations

import pytest

AT = "2024-03-01T10:00:00Z"


def world(app, api, sfx):
    """Customers ``ada``, ``cat`` and ``old`` (merged into ``ada``: an alias), ids ending in
    ``sfx``."""
    profiles = app.extensions["rapport"].profiles
    for name in ("ada", "cat", "old"):
        profiles.create({"email": f"{name}{sfx}@example.com"}, customer_id=f"{name}{sfx}")
    resp = api.post(f"/v1/profiles/ada{sfx}/merge", json={"source_id": f"old{sfx}"})
    assert resp.status_code == 201, resp.json


def view(mid, sfx, **customer):
    customer = {k: v.format(sfx=sfx) for k, v in customer.items()}
    return {"message_id": mid, "type": "view", "customer": customer, "at": AT, "product_id": "P1"}


def purchase(mid, sfx, order_id, currency="EUR", quantity=1, **customer):
    event = {k: v for k, v in view(mid, sfx, **customer).items() if k != "product_id"}
    return {
        **event,
        "type": "purchase",
        "order_id": order_id,
        "currency": currency,
        "channel": "app",
        "lines": [{"product_id": "P1", "quantity": quantity, "unit_price": "9.99"}],
    }


def batch(sfx):
    ada, old, cat = "ada{sfx}", "old{sfx}", "cat{sfx}"
    return [
        view("m1", sfx, profile_id=ada),
        view("m1", sfx, profile_id=ada),  # duplicate within the batch
        view("m2", sfx, profile_id=old),  # an alias: recorded for ada
        view("m3", sfx, email="ADA{sfx}@example.com"),
        view("m4", sfx, profile_id="nobody{sfx}"),  # no such profile
        view("m5", sfx, profile_id="not an id!"),
        purchase("p1", sfx, "o-1", profile_id=ada),
        purchase("p2", sfx, "o-1", currency="USD", profile_id=old),  # o-1 with another body
        purchase("p1", sfx, "o-1", profile_id=cat),  # the same ids for another customer
        purchase("p1", sfx, "o-1", profile_id=ada),  # a replay of the message
        purchase("p3", sfx, "o-2", quantity=-1, profile_id=ada),  # invalid event
        view("m1", sfx, email="cat{sfx}@example.com"),
        view("m6", sfx, email="nobody{sfx}@example.com"),
        view("m7", sfx, phone="not a phone"),
        view("m8", sfx, email="ada{sfx}@example.com"),  # the same email again
        {**view("m9", sfx, profile_id=ada), "type": "teleport"},
        {"message_id": "m10", "type": "view", "at": AT, "product_id": "P1"},
        {
            "message_id": "m11",
            "type": "support_contact",
            "customer": {"profile_id": cat.format(sfx=sfx)},
            "at": AT,
            "contact_id": "T-1",
            "status": "opened",
        },
    ]


def comparable(results, sfx):
    return [
        {**{k: v for k, v in r.items() if k != "index"},
         "customer_id": (r.get("customer_id") or "").removesuffix(sfx)}
        for r in results
    ]  # fmt: skip


def post(api, events):
    resp = api.post("/v1/events", json={"events": events})
    assert resp.status_code == 200, resp.json
    return resp.json


def one_by_one(api, events):
    return [post(api, [e])["results"][0] for e in events]


@pytest.fixture
def worlds(app, api):
    world(app, api, "-a")
    world(app, api, "-b")


def test_a_batch_gives_the_results_of_its_items_one_by_one(api, worlds):
    together = post(api, batch("-a"))
    alone = one_by_one(api, batch("-b"))
    assert comparable(together["results"], "-a") == comparable(alone, "-b")
    assert [r["index"] for r in together["results"]] == list(range(len(batch("-a"))))
    assert [(r["status"], r.get("field")) for r in together["results"]] == [
        ("accepted", None), ("duplicate", None), ("accepted", None), ("accepted", None),
        ("rejected", "customer.profile_id"), ("rejected", "customer.profile_id"),
        ("accepted", None), ("rejected", "order_id"), ("accepted", None), ("duplicate", None),
        ("rejected", "lines.0.quantity"), ("accepted", None), ("rejected", "customer.email"),
        ("rejected", "customer.phone"), ("accepted", None), ("rejected", "type"),
        ("rejected", "customer"), ("accepted", None),
    ]  # fmt: skip
    assert [r.get("customer_id") for r in together["results"][:4]] == ["ada-a"] * 4
    assert (together["accepted"], together["duplicate"], together["rejected"]) == (8, 2, 8)

    # across batches: the same batch again gives the same results both ways
    again = post(api, batch("-a"))
    again_alone = one_by_one(api, batch("-b"))
    assert comparable(again["results"], "-a") == comparable(again_alone, "-b")
    assert (again["accepted"], again["duplicate"]) == (0, 10)

    for name in ("ada", "cat"):
        a = api.get(f"/v1/profiles/{name}-a").json["traits"]
        b = api.get(f"/v1/profiles/{name}-b").json["traits"]
        assert a == b
        a_events = api.get(f"/v1/profiles/{name}-a/purchases").json["items"]
        assert a_events == api.get(f"/v1/profiles/{name}-b/purchases").json["items"]
    assert api.get("/v1/profiles/ada-a").json["traits"]["total_spend"] == {"EUR": "9.99"}
    assert api.get("/v1/profiles/cat-a").json["traits"]["open_support_contacts"] == 1


def test_many_customers_in_one_batch(api, app):
    profiles = app.extensions["rapport"].profiles
    ids = [f"c{i:03d}" for i in range(120)]
    for cid in ids:
        profiles.create({}, customer_id=cid)
    events = [
        purchase(f"p{k}", "", f"o{k}", profile_id=ids[k % len(ids)]) if k % 7 == 0
        else view(f"m{k % 240}", "", profile_id=ids[k % len(ids)])
        for k in range(500)
    ]  # fmt: skip
    out = post(api, events)
    seen, expected = set(), []
    for k, e in enumerate(events):  # (customer, message id) pairs: the second is a duplicate
        key = (ids[k % len(ids)], e["message_id"])
        expected.append("duplicate" if key in seen else "accepted")
        seen.add(key)
    assert "duplicate" in expected
    assert [r["status"] for r in out["results"]] == expected
    assert [r["customer_id"] for r in out["results"]] == [ids[k % len(ids)] for k in range(500)]
    counts = {cid: 0 for cid in ids}
    for k in range(500):
        if k % 7 == 0:
            counts[ids[k % len(ids)]] += 1
    for cid in ids[:5]:
        assert api.get(f"/v1/profiles/{cid}").json["traits"]["order_count"] == counts[cid]
