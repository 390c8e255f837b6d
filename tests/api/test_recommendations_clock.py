"""The evaluation clock (``as_of``, admin keys) and the filled ``buy_again`` list over HTTP, on a
real small model (issue 19)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from recommend.model.dataset import DAY
from tests.recsys import END, install_model, load_catalog, purchase, record_purchase

T0 = END + 5 * DAY  # the newest order of the customer below (after the model's data)


@pytest.fixture
def served(app):
    load_catalog(app)
    install_model(app, "v1")
    st = app.extensions["rapport"]
    # a customer the model never saw: P000 once, P101 in two orders 30 days apart
    record_purchase(st.redis, st.keys, "Z900", purchase("Z900-1", T0 - 30 * DAY, "P101"))
    record_purchase(st.redis, st.keys, "Z900", purchase("Z900-2", T0, "P000", "P101"))
    return app


def _iso(ts: float) -> str:
    return quote(datetime.fromtimestamp(ts, UTC).isoformat())


def _reasons(api, query: str) -> dict[str, str]:
    resp = api.get(f"/v1/profiles/Z900/recommendations?strategy=buy_again&limit=2{query}")
    assert resp.status_code == 200, resp.json
    return {it["product_id"]: it["reason"] for it in resp.json["items"]}


def test_as_of_sets_the_clock_of_the_buy_again_reasons(api, served):
    assert _reasons(api, f"&as_of={_iso(T0 + 10 * DAY)}")["P000"] == "bought once, 10 days ago"
    assert _reasons(api, f"&as_of={_iso(T0 + 40 * DAY)}")["P000"] == "bought once, 40 days ago"
    # without it: the wall clock (the test data is from 2024, so years ago)
    days = int(_reasons(api, "")["P000"].split(", ")[1].split()[0])
    assert days >= 365
    # the repeat's reason reads the customer's interval, whatever the clock
    assert (
        _reasons(api, f"&as_of={_iso(T0 + DAY)}")["P101"] == "bought 2 times, usually every 30 days"
    )


def test_as_of_is_for_admin_keys_and_validated(api, api_as, served):
    reader = api_as("recommend:read")
    url = "/v1/profiles/Z900/recommendations?strategy=buy_again"
    assert reader.get(url).status_code == 200
    denied = reader.get(f"{url}&as_of={_iso(T0)}")
    assert denied.status_code == 403
    for bad in ("yesterday", "2024-05-01T10:00:00", _iso(datetime.now(UTC).timestamp() + 3 * DAY)):
        resp = api.get(f"{url}&as_of={bad}")
        assert resp.status_code == 422, bad
        assert resp.json["errors"][0]["field"] == "as_of"


def test_a_short_buy_again_list_is_filled_and_says_so(api, served):
    items = api.get("/v1/profiles/Z900/recommendations?strategy=buy_again&limit=6").json["items"]
    assert len(items) == 6
    own = [it for it in items if it["source"] == "buy_again"]
    assert {it["product_id"] for it in own} == {"P000", "P101"} and items[:2] == own
    assert all("filled" not in it for it in own)
    fill = items[2:]
    assert all(it["filled"] is True and it["source"] in ("discover", "popular") for it in fill)
    assert not {it["product_id"] for it in fill} & {"P000", "P101"}
    # other strategies never mark items
    blend = api.get("/v1/profiles/Z900/recommendations?limit=6").json["items"]
    assert all("filled" not in it for it in blend)
