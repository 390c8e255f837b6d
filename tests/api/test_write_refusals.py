"""Redis refusing writes (out of memory, no replicas in sync) is a 503 + Retry-After, never a
500 or a 422: the caller retries the same order id later."""

from __future__ import annotations

import pytest

PURCHASE = {
    "order_id": "O-1",
    "currency": "EUR",
    "purchased_at": "2026-11-01T10:00:00+00:00",
    "channel": "web",
    "lines": [{"product_id": "P1", "quantity": 1, "unit_price": "2.50"}],
}


@pytest.fixture
def refusing(redis_client):
    """Set a Redis config that refuses writes; restored after the test."""
    saved: dict[str, str] = {}

    def refuse(name: str, value: str) -> None:
        saved.setdefault(name, redis_client.config_get(name)[name])
        redis_client.config_set(name, value)

    yield refuse
    for name, value in saved.items():
        redis_client.config_set(name, value)


@pytest.mark.parametrize(
    "setting",
    [("maxmemory", "1"), ("min-replicas-to-write", "1")],
    ids=["OOM", "NOREPLICAS"],
)
def test_refused_write_is_503_and_the_retry_succeeds(api, redis_client, refusing, setting):
    cid = api.post("/v1/profiles", json={"first_name": "Ann"}).json["id"]
    if setting[0] == "maxmemory":
        refusing("maxmemory-policy", "noeviction")
    refusing(*setting)
    url = f"/v1/profiles/{cid}/purchases"
    resp = api.post(url, json=PURCHASE)
    assert resp.status_code == 503, resp.json
    assert resp.headers["Retry-After"]
    assert resp.json["type"] == "urn:rapport:problem:store-unavailable"
    events = api.post(
        "/v1/events",
        json={
            "events": [
                {
                    "message_id": "m1",
                    "type": "view",
                    "at": "2026-11-01T10:00:00+00:00",
                    "customer": {"profile_id": cid},
                    "product_id": "P1",
                }
            ]
        },
    )
    if setting[0] == "maxmemory":
        # a script whose first write frees memory (the events script trims old message ids
        # first) may go on writing past maxmemory: Redis accepts it, and so do we
        assert events.status_code in (200, 503), events.json
    else:
        assert events.status_code == 503, events.json
    redis_client.config_set(*setting[:1], "0")  # the store accepts writes again
    assert api.post(url, json=PURCHASE).status_code == 201
    assert api.post(url, json=PURCHASE).status_code == 200  # replay: stored once
