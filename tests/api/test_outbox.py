"""The change-event outbox (core/outbox.py): every accepted change appends its event in the slot
of the write, in the same step; a refused or failed write appends nothing."""

from __future__ import annotations

import json

import redis.crc

from core.outbox import CLUSTER_SLOTS, EVENT_TYPES, Outbox, slot_of, slot_tag
from profiles.keys import Keys
from tests.recsys import install_model

KEYS = Keys()
BUY = {
    "order_id": "o-1",
    "purchased_at": "2024-03-01T10:00:00Z",
    "currency": "EUR",
    "lines": [{"product_id": "P1", "quantity": 1, "unit_price": "9.50"}],
    "channel": "web",
}


def events(redis_client, key: str) -> list[dict]:
    """The events in the outbox stream of ``key``'s slot, oldest first, data decoded."""
    stream = Outbox.for_client(redis_client, KEYS).stream_for(key)
    out = []
    for entry_id, fields in redis_client.xrange(stream):
        out.append({**fields, "data": json.loads(fields["data"]), "id": entry_id})
    return out


def of(redis_client, cid: str) -> list[tuple[str, dict]]:
    return [
        (e["type"], e) for e in events(redis_client, KEYS.profile(cid)) if e["customer_id"] == cid
    ]


def test_slot_tags_land_on_their_slot():
    for slot in (0, 1, 777, 9999, CLUSTER_SLOTS - 1):
        assert redis.crc.key_slot(f"rp:{{{slot_tag(slot)}}}:outbox".encode()) == slot
    for key in ("rp:{c:abc}:profile", "rp:{models}:active", "plain", "a{}b", "{x}{y}"):
        assert slot_of(key) == redis.crc.key_slot(key.encode())


def test_profile_changes_append_their_events_with_the_version(api, redis_client):
    resp = api.post("/v1/profiles", json={"email": "ada@example.com", "first_name": "Ada"})
    assert resp.status_code == 201
    cid = resp.json["id"]
    assert api.patch(f"/v1/profiles/{cid}", json={"phone": "+43 664 1234567"}).status_code == 200
    kinds = [k for k, _ in of(redis_client, cid)]
    assert kinds == ["profile.created", "profile.updated", "identity.added"]
    created, updated, added = (e for _, e in of(redis_client, cid))
    assert created["version"] == "1" and updated["version"] == added["version"] == "2"
    assert created["data"]["profile"]["email"] == "ada@example.com"
    assert updated["data"]["profile"]["phone"] == "+436641234567"
    assert added["data"] == {"kind": "phone", "value": "+436641234567"}
    assert int(created["at_ms"]) <= int(updated["at_ms"])
    # the stream is shard slot mod N: on a Cluster (N = 16384) the profile's own slot
    outbox = Outbox.for_client(redis_client, KEYS)
    stream = outbox.stream_for(KEYS.profile(cid))
    assert slot_of(stream) == slot_of(KEYS.profile(cid)) % outbox.shards


def test_a_refused_write_appends_nothing(api, redis_client):
    cid = api.post("/v1/profiles", json={"email": "bo@example.com"}).json["id"]
    stale = api.patch(f"/v1/profiles/{cid}", json={"first_name": "B"}, headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    bad = api.patch(f"/v1/profiles/{cid}", json={"email": "not an email"})
    assert bad.status_code == 422
    taken = api.post("/v1/profiles", json={"email": "bo@example.com"})
    assert taken.status_code == 409
    assert [k for k, _ in of(redis_client, cid)] == ["profile.created"]


def test_a_purchase_appends_once_and_a_replay_nothing(api, redis_client):
    cid = api.post("/v1/profiles", json={"email": "cy@example.com"}).json["id"]
    assert api.post(f"/v1/profiles/{cid}/purchases", json=BUY).status_code == 201
    assert api.post(f"/v1/profiles/{cid}/purchases", json=BUY).status_code == 200
    conflict = {**BUY, "currency": "GBP"}
    assert api.post(f"/v1/profiles/{cid}/purchases", json=conflict).status_code == 409
    bought = [e for k, e in of(redis_client, cid) if k == "purchase.recorded"]
    assert len(bought) == 1
    assert bought[0]["data"]["order_id"] == "o-1" and bought[0]["data"]["currency"] == "EUR"


def test_merge_unmerge_and_erase_append_ids_only(api, redis_client):
    target = api.post("/v1/profiles", json={"email": "t@example.com"}).json["id"]
    source = api.post("/v1/profiles", json={"email": "s@example.com", "last_name": "Sx"}).json
    merge = api.post(f"/v1/profiles/{target}/merge", json={"source_id": source["id"]}).json
    assert api.post(f"/v1/merges/{merge['id']}/unmerge").status_code == 200
    kinds = [k for k, _ in of(redis_client, source["id"])]
    assert kinds[-2:] == ["profile.merged", "profile.unmerged"]
    merged = dict(of(redis_client, source["id"]))["profile.merged"]["data"]
    assert merged == {"merge_id": merge["id"], "source_id": source["id"], "target_id": target}
    # the target heard the merge as an update that gained the source's email
    assert "identity.added" in [k for k, _ in of(redis_client, target)]

    assert api.delete(f"/v1/profiles/{source['id']}").status_code == 200
    left = of(redis_client, source["id"])
    assert [k for k, _ in left] == ["profile.erased"]  # its earlier events left the outbox
    assert left[0][1]["data"] == {"customer_id": source["id"], "erased_ids": [source["id"]]}
    # the target's snapshots from while the source was merged in (with its email) went too
    text = json.dumps([e["data"] for _, e in of(redis_client, target)])
    assert "s@example.com" not in text and "Sx" not in text
    assert "t@example.com" in text


def test_feedback_and_model_activation_append_their_events(api, app, redis_client):
    install_model(app, "v1")
    install_model(app, "v2")
    assert api.post("/v1/models/v1/activate").status_code == 200
    activated = [
        e for e in events(redis_client, KEYS.model_active()) if e["type"] == "model.activated"
    ]
    assert (
        activated[-1]["customer_id"] == ""
        and activated[-1]["data"]["activation"]["version"] == "v1"
    )

    action = {"id": "thanks", "title": "Say thanks", "category": "service", "value": 10}
    assert api.put("/v1/actions", json={"items": [action]}).status_code == 200
    cid = api.post("/v1/profiles", json={"email": "fb@example.com"}).json["id"]
    assert api.get(f"/v1/profiles/{cid}/next-best-actions?limit=1").status_code == 200
    action_id = "thanks"
    body = {"feedback_id": "fb-1", "outcome": "dismissed", "agent_id": "agent-7"}
    path = f"/v1/profiles/{cid}/next-best-actions/{action_id}/feedback"
    assert api.post(path, json=body).status_code == 201
    assert api.post(path, json=body).status_code == 200  # a replay appends nothing
    fed = [e for k, e in of(redis_client, cid) if k == "action.feedback"]
    assert len(fed) == 1
    assert fed[0]["data"]["feedback"]["feedback_id"] == "fb-1"
    assert "fingerprint" not in fed[0]["data"]["feedback"]


def test_every_write_publishes_its_shard(api, redis_client):
    sub = redis_client.pubsub()
    sub.subscribe(KEYS.outbox_wake())
    sub.get_message(timeout=1)
    cid = api.post("/v1/profiles", json={"email": "wake@example.com"}).json["id"]
    message = None
    for _ in range(20):
        message = sub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            break
    sub.close()
    assert message is not None
    assert int(message["data"]) == Outbox.for_client(redis_client, KEYS).shard_of(KEYS.profile(cid))


def test_event_types_are_the_documented_ones():
    assert EVENT_TYPES == (
        "profile.created",
        "profile.updated",
        "profile.merged",
        "profile.unmerged",
        "profile.erased",
        "identity.added",
        "purchase.recorded",
        "action.feedback",
        "model.activated",
    )
