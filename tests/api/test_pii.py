"""PII protection: keys without ``pii:read`` see emails and phone numbers masked everywhere."""

from __future__ import annotations

from service.hardening import mask_pii, mask_text

EMAIL, PHONE = "jane.doe@example.com", "+436641234567"


def test_mask_text_shapes():
    assert mask_text(EMAIL) == "j***@example.com"
    assert mask_text(PHONE) == "+43********67"
    assert mask_text(f"email:{EMAIL}") == "email:j***@example.com"
    assert mask_text("order 12345 at +1") == "order 12345 at +1"  # not a phone number
    masked = mask_pii({f"phone:{PHONE}": [EMAIL, 3]})
    assert masked == {"phone:+43********67": ["j***@example.com", 3]}


def _profile(api):
    body = {"email": EMAIL, "phone": PHONE, "first_name": "Jane", "external_ids": ["shop:7"]}
    resp = api.post("/v1/profiles", json=body)
    assert resp.status_code == 201, resp.json
    return resp.json["id"]


def test_profile_routes_mask_without_pii_scope(api, api_as):
    cid = _profile(api)
    reader = api_as("profiles:read", "profiles:write", "recommend:read")
    for path in (
        f"/v1/profiles/{cid}",
        f"/v1/profiles?email={EMAIL}",
        f"/v1/profiles/{cid}/export",
        f"/v1/profiles/{cid}/greeting",
    ):
        resp = reader.get(path)
        assert resp.status_code == 200, (path, resp.json)
        text = resp.get_data(as_text=True)
        assert EMAIL not in text and PHONE not in text, path
        assert resp.headers["Cache-Control"] == "no-store"
    profile = reader.get(f"/v1/profiles/{cid}").json
    assert profile["email"] == "j***@example.com"
    assert profile["phones"] == ["+43********67"]
    assert profile["first_name"] == "Jane"

    ident = reader.post(
        "/v1/profiles/identify", json={"identities": {"email": EMAIL, "phone": "+436641234568"}}
    )
    assert ident.status_code == 200, ident.json
    assert EMAIL not in ident.get_data(as_text=True)
    assert "+436641234568" not in ident.get_data(as_text=True)

    erased = reader.delete(f"/v1/profiles/{cid}")
    assert erased.status_code == 200
    assert "email:j***@example.com" in erased.json["identities_released"]


def test_pii_scope_and_admin_see_clear_values(api, api_as):
    cid = _profile(api)
    assert api.get(f"/v1/profiles/{cid}").json["email"] == EMAIL  # admin implies pii:read
    clear = api_as("profiles:read", "pii:read").get(f"/v1/profiles/{cid}").json
    assert clear["email"] == EMAIL and clear["phone"] == PHONE


def test_errors_mask_pii_too(api, api_as):
    _profile(api)
    writer = api_as("profiles:write")
    resp = writer.post("/v1/profiles", json={"email": EMAIL})
    assert resp.status_code == 409
    assert EMAIL not in resp.get_data(as_text=True)


def test_pii_scope_is_grantable(api):
    resp = api.post("/v1/admin/keys", json={"name": "crm", "scopes": ["profiles:read", "pii:read"]})
    assert resp.status_code == 201
    assert resp.json["scopes"] == ["profiles:read", "pii:read"]


# -- erasure reaches every copy ------------------------------------------------------------------
def test_erasure_reaches_the_model_and_the_next_training(app, api, redis_client):
    """Train, erase, train again: the served model stops using the erased customer's learned
    vector at once, and the next artifact's user id map no longer holds the id."""
    from recommend.model.artifact import load_artifact
    from recommend.model.job import run_training
    from recommend.model.sources import load_from_redis
    from tests.recsys import FAST, load_catalog, purchase, record_purchase, synthetic

    st = app.extensions["rapport"]
    holder = st.models
    load_catalog(app)
    data = synthetic(n_customers=48)
    ids = {}
    for ln in data.lines:
        if ln.customer_id not in ids:
            ids[ln.customer_id] = api.post("/v1/profiles", json={"country": "GB"}).json["id"]
    orders: dict[tuple[str, str], list] = {}
    for ln in data.lines:
        orders.setdefault((ids[ln.customer_id], ln.order_id), []).append(ln)
    for (cid, order_id), lines in orders.items():
        record_purchase(
            st.redis,
            st.keys,
            cid,
            purchase(order_id, lines[0].purchased_at, *[x.product_id for x in lines]),
        )
    model_dir = holder.registry.model_dir

    def train():
        run = run_training(
            redis_client, st.keys, model_dir, load_from_redis(redis_client, st.keys),
            config=FAST, force=True, progress=False,
        )  # fmt: skip
        holder.refresh()
        return load_artifact(run.artifact.path)

    victim = ids["C001"]
    first = train()
    assert victim in {str(u) for u in first.arrays["user_ids"]}
    recs = api.get(f"/v1/profiles/{victim}/recommendations?strategy=discover")
    assert recs.json["basis"] == "known"

    assert api.delete(f"/v1/profiles/{victim}").status_code == 200
    after = api.get(f"/v1/profiles/{victim}/recommendations?strategy=discover")
    assert after.status_code == 200 and after.json["basis"] != "known"

    second = train()
    users = {str(u) for u in second.arrays["user_ids"]}
    assert victim not in users and ids["C002"] in users
    popular = redis_client.zrange(st.keys.popular_products(), 0, -1)
    assert victim not in popular  # popularity holds product ids only
