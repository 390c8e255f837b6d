"""The customer export is streamed (issue 18) with the bytes the one-document answer had."""

from __future__ import annotations

import json

import pytest

from profiles.export import export_customer
from service import json_stream
from service.api.profiles import ExportSchema
from service.hardening import mask

EMAIL = "zoe.angstrom@example.com"
PHONE = "+43 664 1234567"


def _customer(api) -> str:
    body = {"email": EMAIL, "phone": PHONE, "first_name": "Zoë", "last_name": "Ångström"}
    cid = api.post("/v1/profiles", json=body).json["id"]
    other = api.post("/v1/profiles", json={"email": "second@example.com"}).json["id"]
    assert api.post(f"/v1/profiles/{cid}/merge", json={"source_id": other}).status_code == 201
    for i in range(40):
        lines = [{"product_id": f"P{j}", "quantity": 1, "unit_price": "2.50"} for j in range(20)]
        order = {"order_id": f"o-{i}", "lines": lines, "currency": "EUR",
                 "purchased_at": "2024-03-01T10:00:00+01:00", "channel": "web"}  # fmt: skip
        assert api.post(f"/v1/profiles/{cid}/purchases", json=order).status_code == 201
    return cid


def _one_document(app, cid: str, key) -> bytes:
    """What the export answered before it was streamed: the schema's dump as one JSON
    response of the app's provider, then the masking hook for ``key``."""
    st = app.extensions["rapport"]
    with app.test_request_context():
        doc = ExportSchema().dump(export_customer(st.profiles, st.contacts, cid))
        response = app.json.response(doc)
        mask(response, app.extensions["rapport.pii"], key)
        return response.get_data()


@pytest.mark.parametrize("scopes", [("profiles:read", "pii:read"), ("profiles:read",)])
def test_export_streams_the_bytes_of_one_document(app, api, api_as, scopes, monkeypatch):
    monkeypatch.setattr(json_stream, "CHUNK_BYTES", 4096)  # several chunks of a small export
    cid = _customer(api)
    st = app.extensions["rapport"]
    st.profiles.clock = lambda: 1_764_780_000.25  # exported_at: the same in both answers
    reader = api_as(*scopes)
    resp = reader.client.get(
        f"/v1/profiles/{cid}/export", headers={"Authorization": f"Bearer {reader.token}"}
    )
    assert resp.status_code == 200 and resp.is_streamed
    assert resp.mimetype == "application/json"
    assert "Content-Length" not in resp.headers
    chunks = list(resp.response)
    body = b"".join(chunks)
    assert len(chunks) >= 4 and all(len(c) < 3 * 4096 for c in chunks)
    expected = _one_document(app, cid, st.api_keys.verify(reader.token))
    assert body == expected
    doc = json.loads(body)
    assert doc["customer_id"] == cid and len(doc["merged_ids"]) == 1
    assert len(doc["activity"]["purchases"]) == 40
    if "pii:read" in scopes:
        assert doc["profile"]["email"] == EMAIL
    else:
        assert EMAIL not in body.decode() and PHONE not in body.decode()


def test_a_streamed_export_is_audited_with_the_target_id(app, api):
    cid = _customer(api)
    alias = json.loads(api.get(f"/v1/profiles/{cid}/export").data)["merged_ids"][0]
    assert api.get(f"/v1/profiles/{alias}/export").status_code == 200
    entries = api.get(f"/v1/admin/audit?profile_id={cid}&action=export").json["items"]
    assert len(entries) == 2  # by its own id and through the merged alias


def test_export_of_nobody_is_404(api):
    resp = api.get("/v1/profiles/c_nobody/export")
    assert resp.status_code == 404 and resp.json["status"] == 404
