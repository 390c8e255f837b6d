"""Merge and unmerge over HTTP: aliases, precedence, records, undo, and crash recovery."""

from __future__ import annotations

import pytest

from profiles.keys import Keys
from tests.redis_text import all_redis_text

KEYS = Keys()
PROBLEM = "application/problem+json"
T0 = 1_790_000_000.0


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def clock(app):
    clock = Clock()
    store = app.extensions["rapport"].profiles
    store.clock = clock
    store.identities.clock = clock
    return clock


def create(api, **fields):
    resp = api.post("/v1/profiles", json=fields)
    assert resp.status_code == 201, resp.json
    return resp.json


def strip(doc):
    """A profile without the fields every write changes."""
    return {k: v for k, v in doc.items() if k not in ("version", "updated_at", "traits")}


@pytest.fixture
def pair(api, clock):
    target = create(
        api,
        email="ada@example.com",
        first_name="Ada",
        preferences={"custom": {"size": "M", "shared": "target"}, "channels": ["chat"]},
        consent={"marketing": {"granted": True, "at": T0 - 1000, "source": "web"}},
    )
    source = create(
        api,
        email="ada.l@work.example",
        phone="+16502530000",
        external_ids=["crm:7"],
        last_name="Lovelace",
        timezone="Europe/London",
        preferences={"custom": {"shared": "source", "pet": "cat"}, "language": "en"},
        consent={
            "marketing": {"granted": False, "at": T0 - 10, "source": "call"},
            "profiling": {"granted": True, "at": T0 - 500, "source": "app"},
        },
    )
    return target, source


def merge(api, target, source):
    resp = api.post(f"/v1/profiles/{target['id']}/merge", json={"source_id": source["id"]})
    assert resp.status_code == 201, resp.json
    return resp.json


def test_merge_moves_identities_with_documented_precedence(api, pair):
    target, source = pair
    record = merge(api, target, source)
    assert record["status"] == "done"
    assert record["source_id"] == source["id"] and record["target_id"] == target["id"]
    assert record["actor"].startswith("apikey:")
    assert record["source"]["profile"]["last_name"] == "Lovelace"
    assert sorted(record["moved"]["identities"]) == [
        "email:ada.l@work.example",
        "ext:crm:7",
        "phone:+16502530000",
    ]

    doc = api.get(f"/v1/profiles/{target['id']}").json
    assert doc["emails"] == ["ada@example.com", "ada.l@work.example"]
    assert doc["email"] == "ada@example.com"  # the target's primary stays primary
    assert doc["phone"] == "+16502530000" and doc["external_ids"] == ["crm:7"]
    assert doc["first_name"] == "Ada" and doc["last_name"] == "Lovelace"  # blanks filled
    assert doc["timezone"] == "Europe/London"
    # preferences: target wins on conflicts, missing keys come from the source
    assert doc["preferences"]["custom"] == {"size": "M", "shared": "target", "pet": "cat"}
    assert doc["preferences"]["channels"] == ["chat"] and doc["preferences"]["language"] == "en"
    # consent: the most recent statement wins, per purpose
    assert doc["consent"]["marketing"] == {"granted": False, "at": T0 - 10, "source": "call"}
    assert doc["consent"]["profiling"]["source"] == "app"
    for query in ("email=ada.l@work.example", "phone=%2B16502530000", "external_id=crm:7"):
        assert api.get(f"/v1/profiles?{query}").json["id"] == target["id"]

    assert api.get(f"/v1/merges/{record['id']}").json["status"] == "done"


def test_read_and_write_by_the_old_id(api, pair):
    target, source = pair
    merge(api, target, source)
    resp = api.get(f"/v1/profiles/{source['id']}")
    assert resp.status_code == 200
    assert resp.json["id"] == target["id"]
    assert resp.headers["Content-Location"] == f"/v1/profiles/{target['id']}"
    assert resp.headers["Rapport-Merged-Into"] == target["id"]
    patched = api.patch(f"/v1/profiles/{source['id']}", json={"loyalty_tier": "silver"})
    assert patched.status_code == 200 and patched.json["id"] == target["id"]
    assert api.get(f"/v1/profiles/{target['id']}").json["loyalty_tier"] == "silver"


def test_merge_errors(api, pair):
    target, source = pair
    self_merge = api.post(f"/v1/profiles/{target['id']}/merge", json={"source_id": target["id"]})
    assert self_merge.status_code == 422
    assert self_merge.json["errors"][0]["field"] == "source_id"
    missing = api.post(f"/v1/profiles/{target['id']}/merge", json={"source_id": "c_nobody"})
    assert missing.status_code == 404
    merge(api, target, source)
    again = api.post(f"/v1/profiles/{target['id']}/merge", json={"source_id": source["id"]})
    assert again.status_code == 409
    assert again.json["merged_into"] == target["id"]
    third = create(api, first_name="Third")
    into_alias = api.post(f"/v1/profiles/{source['id']}/merge", json={"source_id": third["id"]})
    assert into_alias.status_code == 409
    assert target["id"] in into_alias.json["detail"]
    assert api.get("/v1/merges/m_0000000000000000000000").status_code == 404
    assert api.post("/v1/merges/nonsense/unmerge").status_code == 404


def test_unmerge_restores_both_as_they_were(api, pair):
    target, source = pair
    before_target = api.get(f"/v1/profiles/{target['id']}").json
    before_source = api.get(f"/v1/profiles/{source['id']}").json
    record = merge(api, target, source)

    resp = api.post(f"/v1/merges/{record['id']}/unmerge")
    assert resp.status_code == 200
    assert resp.json["status"] == "unmerged" and resp.json["unmerged_by"].startswith("apikey:")

    after_source = api.get(f"/v1/profiles/{source['id']}")
    assert "Rapport-Merged-Into" not in after_source.headers
    assert strip(after_source.json) == strip(before_source)
    assert strip(api.get(f"/v1/profiles/{target['id']}").json) == strip(before_target)
    for query, owner in (
        ("email=ada.l@work.example", source),
        ("phone=%2B16502530000", source),
        ("external_id=crm:7", source),
        ("email=ada@example.com", target),
    ):
        assert api.get(f"/v1/profiles?{query}").json["id"] == owner["id"], query

    twice = api.post(f"/v1/merges/{record['id']}/unmerge")
    assert twice.status_code == 409
    # the record is kept, with the history of both profiles
    assert api.get(f"/v1/merges/{record['id']}").json["status"] == "unmerged"
    exported = api.get(f"/v1/profiles/{source['id']}/export").json
    assert [m["id"] for m in exported["merges"]] == [record["id"]]


def test_unmerge_keeps_post_merge_writes_on_the_side_they_belong_to(api, pair):
    target, source = pair
    record = merge(api, target, source)
    url = f"/v1/profiles/{target['id']}"
    api.patch(
        url,
        json={
            "display_name": "Countess",  # new field: the target's own
            "timezone": "Europe/Paris",  # filled in by the merge, then changed: stays
            "external_ids": ["crm:7", "shop:99"],  # a new identity: stays with the target
            "preferences": {"custom": {"pet": "dog"}},  # merge-added key, changed: stays
        },
    )
    # written through the old id after the merge: it acted on the target, so it stays there
    api.patch(f"/v1/profiles/{source['id']}", json={"loyalty_tier": "gold"})

    assert api.post(f"/v1/merges/{record['id']}/unmerge").status_code == 200
    tdoc = api.get(url).json
    assert tdoc["display_name"] == "Countess" and tdoc["loyalty_tier"] == "gold"
    assert tdoc["timezone"] == "Europe/Paris"
    assert tdoc["preferences"]["custom"] == {"size": "M", "shared": "target", "pet": "dog"}
    assert tdoc["external_ids"] == ["shop:99"]
    assert "last_name" not in tdoc  # filled by the merge and untouched: goes away
    assert tdoc["emails"] == ["ada@example.com"]
    assert tdoc["consent"]["marketing"]["source"] == "web"  # merge-overwritten: restored
    assert "profiling" not in tdoc["consent"]

    sdoc = api.get(f"/v1/profiles/{source['id']}").json
    assert sdoc["id"] == source["id"]
    assert sdoc["external_ids"] == ["crm:7"] and sdoc["last_name"] == "Lovelace"
    assert "loyalty_tier" not in sdoc
    assert api.get("/v1/profiles?external_id=shop:99").json["id"] == target["id"]


def test_identity_dropped_after_the_merge_is_not_given_back(api, pair):
    target, source = pair
    record = merge(api, target, source)
    api.patch(f"/v1/profiles/{target['id']}", json={"external_ids": []})
    newcomer = create(api, external_ids=["crm:7"])
    resp = api.post(f"/v1/merges/{record['id']}/unmerge")
    assert resp.status_code == 200
    assert resp.json["not_restored"] == ["ext:crm:7"]
    assert api.get(f"/v1/profiles/{source['id']}").json["external_ids"] == []
    assert api.get("/v1/profiles?external_id=crm:7").json["id"] == newcomer["id"]


def test_unmerge_after_the_target_was_merged_again_is_409(api, pair):
    target, source = pair
    first = merge(api, target, source)
    third = create(api, first_name="Third")
    merge(api, third, target)
    resp = api.post(f"/v1/merges/{first['id']}/unmerge")
    assert resp.status_code == 409
    assert resp.json["merged_into"] == third["id"]
    # a chain of aliases still resolves
    assert api.get(f"/v1/profiles/{source['id']}").json["id"] == third["id"]


def test_a_merge_that_crashed_half_way_is_finished_by_running_it_again(app, api, pair):
    target, source = pair
    store = app.extensions["rapport"].profiles
    real = store.identities.transfer
    calls = {"n": 0}

    def crash_on_second(identity, from_id, to_id):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("simulated crash")
        return real(identity, from_id, to_id)

    store.identities.transfer = crash_on_second
    with pytest.raises(ConnectionError):
        store.merges.merge(source["id"], target["id"], actor="test")
    store.identities.transfer = real
    (merge_id,) = app.extensions["rapport"].redis.lrange(
        app.extensions["rapport"].keys.customer_merges(target["id"]), 0, -1
    )
    assert api.get(f"/v1/merges/{merge_id}").json["status"] == "merging"
    # the source is frozen meanwhile; its identities still resolve to a profile listing them
    assert api.patch(f"/v1/profiles/{source['id']}", json={"first_name": "X"}).status_code == 409
    assert api.get("/v1/profiles?phone=%2B16502530000").status_code == 200

    record = merge(api, target, source)  # the same request again resumes it
    assert record["id"] == merge_id and record["status"] == "done"
    doc = api.get(f"/v1/profiles/{target['id']}").json
    assert doc["emails"] == ["ada@example.com", "ada.l@work.example"]
    assert doc["preferences"]["custom"] == {"size": "M", "shared": "target", "pet": "cat"}
    for query in ("email=ada.l@work.example", "phone=%2B16502530000", "external_id=crm:7"):
        assert api.get(f"/v1/profiles?{query}").json["id"] == target["id"]


def test_an_unmerge_that_crashed_half_way_can_be_run_again(app, api, pair):
    target, source = pair
    before_source = api.get(f"/v1/profiles/{source['id']}").json
    record = merge(api, target, source)
    store = app.extensions["rapport"].profiles
    real = store.update

    def crash(*args, **kwargs):
        raise ConnectionError("simulated crash")

    store.update = crash  # dies at the 'target' step, after restore and claims
    with pytest.raises(ConnectionError):
        store.merges.unmerge(record["id"], actor="test")
    store.update = real
    assert api.get(f"/v1/merges/{record['id']}").json["status"] == "unmerging"
    resp = api.post(f"/v1/merges/{record['id']}/unmerge")
    assert resp.status_code == 200 and resp.json["status"] == "unmerged"
    assert strip(api.get(f"/v1/profiles/{source['id']}").json) == strip(before_source)
    assert api.get(f"/v1/profiles/{target['id']}").json["emails"] == ["ada@example.com"]


def test_erase_scrubs_merge_records_and_blocks_their_undo(api, pair, redis_client):
    target, source = pair
    buy(api, source["id"], "s-1")
    record = merge(api, target, source)
    unmerged = api.post(f"/v1/merges/{record['id']}/unmerge")
    assert unmerged.status_code == 200
    assert api.delete(f"/v1/profiles/{source['id']}").status_code == 200
    kept = api.get(f"/v1/merges/{record['id']}").json
    assert kept["status"] == "erased" and kept["previous_status"] == "unmerged"
    assert kept["source_id"] == "erased" and kept["target_id"] == target["id"]
    assert "source" not in kept and "moved" not in kept
    assert "Lovelace" not in redis_client.get(KEYS.merge_record(record["id"]))
    assert api.post(f"/v1/merges/{record['id']}/unmerge").status_code == 409
    # the target is untouched and still lists the merge in its history
    exported = api.get(f"/v1/profiles/{target['id']}/export").json
    assert [m["status"] for m in exported["merges"]] == ["erased"]
    text = all_redis_text(redis_client)
    assert source["id"] not in text and "ada.l@work.example" not in text and "s-1" not in text
    assert target["id"] in text


def buy(api, cid, oid, price="10.00", at="2024-03-01T10:00:00Z"):
    body = {
        "order_id": oid,
        "lines": [{"product_id": "P1", "quantity": 1, "unit_price": price}],
        "currency": "EUR",
        "purchased_at": at,
        "channel": "web",
    }
    resp = api.post(f"/v1/profiles/{cid}/purchases", json=body)
    assert resp.status_code in (200, 201), resp.json
    return resp


def orders_of(api, cid):
    items = api.get(f"/v1/profiles/{cid}/purchases?limit=100").json["items"]
    return sorted(p["order_id"] for p in items)


def test_merge_moves_activity_and_unmerge_puts_it_back(api, pair, redis_client):
    target, source = pair
    buy(api, target["id"], "t-1", "5.00", at="2024-01-01T10:00:00Z")
    buy(api, source["id"], "s-1", "7.00", at="2024-02-01T10:00:00Z")
    buy(api, source["id"], "s-2", "8.00", at="2024-02-02T10:00:00Z")
    before_source = api.get(f"/v1/profiles/{source['id']}").json

    record = merge(api, target, source)
    assert record["moved"]["activity"][0]["purchases"] == 2
    traits = api.get(f"/v1/profiles/{target['id']}").json["traits"]
    assert traits["order_count"] == 3 and traits["total_spend"] == {"EUR": "20.00"}
    assert orders_of(api, source["id"]) == ["s-1", "s-2", "t-1"]  # the old id reads the target
    # the alias holds no activity of its own any more
    assert redis_client.hlen(KEYS.orders(source["id"])) == 0

    # after the merge: a purchase through the old id and one on the target stay with the target
    buy(api, source["id"], "late-1", "1.00", at="2024-03-01T10:00:00Z")
    buy(api, target["id"], "late-2", "2.00", at="2024-03-02T10:00:00Z")

    assert api.post(f"/v1/merges/{record['id']}/unmerge").status_code == 200
    assert orders_of(api, target["id"]) == ["late-1", "late-2", "t-1"]
    assert orders_of(api, source["id"]) == ["s-1", "s-2"]
    t_traits = api.get(f"/v1/profiles/{target['id']}").json["traits"]
    assert t_traits["order_count"] == 3 and t_traits["total_spend"] == {"EUR": "8.00"}
    s_after = api.get(f"/v1/profiles/{source['id']}").json
    assert s_after["traits"]["total_spend"] == before_source["traits"]["total_spend"]
    assert s_after["traits"]["order_count"] == 2


def test_chain_of_merges_with_activity(api, pair, redis_client):
    target, source = pair
    first = create(api, email="first@example.com")
    buy(api, first["id"], "f-1", "3.00")
    buy(api, source["id"], "s-1", "7.00")
    inner = merge(api, source, first)  # first -> source
    outer = merge(api, target, source)  # source (holding first's orders) -> target
    assert orders_of(api, first["id"]) == ["f-1", "s-1"]
    assert api.get(f"/v1/profiles/{first['id']}").json["id"] == target["id"]
    assert api.get("/v1/profiles?email=first@example.com").json["id"] == target["id"]

    assert api.post(f"/v1/merges/{inner['id']}/unmerge").status_code == 409  # undo outer first
    assert api.post(f"/v1/merges/{outer['id']}/unmerge").status_code == 200
    assert orders_of(api, source["id"]) == ["f-1", "s-1"]
    assert orders_of(api, target["id"]) == []
    assert api.get("/v1/profiles?email=first@example.com").json["id"] == source["id"]
    assert api.post(f"/v1/merges/{inner['id']}/unmerge").status_code == 200
    assert orders_of(api, first["id"]) == ["f-1"]
    assert orders_of(api, source["id"]) == ["s-1"]

    # merge both again and erase: nothing of the three is left anywhere
    merge(api, source, first)
    merge(api, target, source)
    report = api.delete(f"/v1/profiles/{first['id']}").json
    assert set(report["erased_ids"]) == {target["id"], source["id"], first["id"]}
    text = all_redis_text(redis_client)
    assert "first@example.com" not in text and "f-1" not in text
    for cid in (target["id"], source["id"], first["id"]):
        assert cid not in text, cid


def test_the_target_inherits_the_sources_cooldowns_and_unmerge_gives_them_back(api, api_as, pair):
    target, source = pair
    action = {"title": "Ask for feedback", "category": "feedback", "value": 10, "cooldown_days": 30}
    assert api.put("/v1/actions/survey", json=action).status_code == 200
    agent = api_as("recommend:read", "actions:write")
    body = {"feedback_id": "fb-1", "outcome": "dismissed", "agent_id": "agent-7"}
    url = f"/v1/profiles/{source['id']}/next-best-actions/survey/feedback"
    assert agent.post(url, json=body).status_code == 201

    def actions(cid):
        resp = agent.get(f"/v1/profiles/{cid}/next-best-actions")
        assert resp.status_code == 200, resp.json
        listed = [i["action_id"] for i in resp.json["items"]]
        return listed, {h["action_id"]: h["reason"] for h in resp.json["withheld"]}

    assert "survey" in actions(target["id"])[0]
    record = merge(api, target, source)
    assert record["moved"]["contacts"]["feedback"] == 1
    listed, withheld = actions(target["id"])
    assert "survey" not in listed and "cooldown" in withheld["survey"]
    resp = api.post(f"/v1/merges/{record['id']}/unmerge")
    assert resp.status_code == 200, resp.json
    assert "survey" in actions(target["id"])[0]
    assert "survey" in actions(source["id"])[1]
