"""The masking corpus (tests/api/test_pii.py: 21 phone and 11 email spellings) written into
every free-text field a client can fill, read back through every endpoint that shows it, with
keys without ``pii:read``: no spelling comes back."""

from __future__ import annotations

from tests.api.test_pii import EMAILS, PHONES

CORPUS = PHONES + EMAILS
ACTION = {"id": "call-back", "title": "Offer a call back", "category": "service", "value": 5}


def test_the_corpus_is_masked_in_every_free_text_field_on_every_endpoint(api, api_as):
    assert len(CORPUS) >= 30
    reader = api_as("profiles:read", "recommend:read")
    agent = api_as("profiles:read", "recommend:read", "actions:write")
    assert api.put("/v1/actions", json={"items": [ACTION]}).status_code == 200
    for i, (written, secret) in enumerate(CORPUS):
        body = {"display_name": f"ring {written}", "preferences": {"custom": {"memo": written}}}
        created = api.post("/v1/profiles", json=body)
        assert created.status_code == 201, created.json
        cid = created.json["id"]
        event = {
            "message_id": f"m-{i}",
            "type": "support_contact",
            "customer": {"profile_id": cid},
            "at": "2024-03-01T10:00:00Z",
            "contact_id": f"t-{i}",
            "status": "opened",
            "topic": f"call {written}",
        }
        assert api.post("/v1/events", json={"events": [event]}).status_code == 200
        put = api.put(f"/v1/products/p{i}", json={"name": f"Mug {written}", "description": written})
        assert put.status_code in (200, 201), put.json
        fb = {"feedback_id": f"f-{i}", "outcome": "dismissed", "agent_id": "a-1", "note": written}
        answered = agent.post(f"/v1/profiles/{cid}/next-best-actions/call-back/feedback", json=fb)
        assert answered.status_code == 201, answered.json
        reads = {
            "feedback answer": answered,
            "profile": reader.get(f"/v1/profiles/{cid}"),
            "export": reader.get(f"/v1/profiles/{cid}/export"),
            "next-best actions": agent.get(f"/v1/profiles/{cid}/next-best-actions"),
            "greeting": reader.get(f"/v1/profiles/{cid}/greeting?channel=chat"),
            "product": reader.get(f"/v1/products/p{i}"),
            "products": reader.get(f"/v1/products?ids=p{i}"),
        }
        for where, resp in reads.items():
            assert resp.status_code in (200, 201), (where, resp.json)
            text = resp.get_data(as_text=True)
            assert secret not in text, (written, where, text)
        # the writer with pii:read sees what was written
        assert written in api.get(f"/v1/profiles/{cid}").json["display_name"]
