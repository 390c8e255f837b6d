"""The demo data as ``load_demo`` leaves it: recent dates with the sample's sequence, consent for
most customers, a spread of tiers, open support contacts, merged second accounts, and every
console panel filled for the customers the README names.

One load per module, of a subset of the sample (``_subset``): loading all 2400 customers takes
too long for a unit test. The named customers' rows are their real ones; a quick model is
trained on the subset."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
import redis

from profiles import demo
from profiles.importer import DEMO_DIR, catalog_products, load_demo, read_rows
from service import create_app

# README: the customers to look up in the console, and what each one shows
NAMED = {
    "12348": "asko.rantanen.12348@example.com",  # gold, consent, open support request
    "12650": "elisabeth.camus.12650@example.org",  # new: one order a few days ago
    "16719": "kim.taylor.16719@example.com",  # two accounts merged
}
NO_ORDER_YET = ("12536", "thibaut.blanchet.12536@example.org")  # cold start
ORDERS = DEMO_DIR / "orders.csv.gz"


def _subset(plan: demo.DemoPlan) -> set[str]:
    """Every 6th customer, the named and merged ones, and the one with the sample's last order."""
    last = next(c for c, f in plan.facts.items() if plan.last in f.invoices.values())
    every = {c for i, c in enumerate(sorted(plan.facts)) if i % 6 == 0}
    return every | set(NAMED) | {NO_ORDER_YET[0]} | set(plan.merged) | {last}


@pytest.fixture(scope="module")
def loaded(redis_url, tmp_path_factory):
    """The app over a Redis holding the demo catalog, a subset of the demo and a model."""
    from recommend.catalog.importing import load_catalog, retail_products
    from recommend.catalog.products import Catalog
    from recommend.model.sources import load_from_redis
    from recommend.model.training import train
    from tests.recsys import FAST, install_model

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    app = create_app(
        {"redis_url": redis_url, "data_dir": tmp_path_factory.mktemp("var"), "testing": True},
        redis=client,
    )
    st = app.extensions["rapport"]
    load_catalog(Catalog(client, st.keys), retail_products(catalog_products(ORDERS)))
    now = time.time()  # pinned for the load; the app's own clock runs on from it
    plan = demo.plan_sample(read_rows(ORDERS), now)
    only = _subset(plan)
    summary = load_demo(st.profiles, st.activity, now=now, only_customers=only)
    install_model(app, "v1", train(load_from_redis(client, st.keys), FAST, progress=False))
    _, token = st.api_keys.create("test", ["admin"])
    http = app.test_client()

    def get(path: str):
        resp = http.get(path, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, (path, resp.status_code, resp.get_data(as_text=True))
        return resp.json

    yield SimpleNamespace(
        st=st, now=now, plan=plan, only=only, summary=summary, get=get,
    )  # fmt: skip
    if st.audit is not None:
        st.audit.flush()  # before this Redis goes: the reads above were audited
    client.flushdb()
    client.close()


def _profile_of(loaded, customer: str) -> str:
    owner = loaded.st.profiles.identities.owner(("ext:retail", customer))
    assert owner is not None, customer
    return owner


def _times(loaded) -> dict[str, dict[str, float]]:
    """Profile id -> {order id: purchased at (epoch seconds)} of every stored purchase."""
    out: dict[str, dict[str, float]] = {}
    for cid, purchase in loaded.st.activity.iter_all_purchases():
        when = datetime.fromisoformat(purchase["purchased_at"]).timestamp()
        out.setdefault(cid, {})[purchase["order_id"]] = when
    return out


def test_the_summary_counts_the_sample_only(loaded):
    assert loaded.summary is not None
    assert loaded.summary.customers_created == len(loaded.only)
    assert loaded.summary.customers_existing == 0  # the orders find the customers they know
    assert loaded.summary.orders_rejected == {}


def test_the_last_order_is_a_few_days_ago_on_its_weekday_and_time(loaded):
    original = loaded.plan.last
    newest_ts = max(t for orders in _times(loaded).values() for t in orders.values())
    newest = datetime.fromtimestamp(newest_ts, demo.TIMEZONE)
    age = datetime.fromtimestamp(loaded.now, demo.TIMEZONE) - newest
    assert timedelta(days=demo.RECENT_DAYS) <= age < timedelta(days=demo.RECENT_DAYS + 7)
    assert newest.weekday() == original.weekday()
    assert (newest.hour, newest.minute) == (original.hour, original.minute)


def test_every_order_keeps_its_place_in_the_sequence(loaded):
    shift = loaded.plan.shift
    assert shift % timedelta(weeks=1) == timedelta(0)
    stored = _times(loaded)
    for customer in sorted(loaded.only):
        expected = {
            inv: (when + shift).replace(tzinfo=demo.TIMEZONE).timestamp()
            for inv, when in loaded.plan.facts.get(customer, demo.Facts()).invoices.items()
        }
        assert stored.get(_profile_of(loaded, customer), {}) == expected, customer


def test_most_customers_consent_and_the_tiers_spread(loaded):
    docs = [loaded.st.profiles.get(_profile_of(loaded, c)).doc for c in sorted(loaded.only)]
    granted = [d for d in docs if (d.get("consent") or {}).get("marketing", {}).get("granted")]
    assert 0.75 <= len(granted) / len(docs) <= 0.95
    assert all(d["consent"]["personalization"]["source"] == "demo" for d in granted)
    assert len(granted) < sum(1 for d in docs if d.get("consent")) < len(docs)  # partial, none
    tiers = {d.get("loyalty_tier") for d in docs}
    assert {"bronze", "silver", "gold", "platinum"} <= tiers


def test_some_customers_have_an_open_support_contact(loaded):
    opened = [
        c for c in loaded.only if loaded.st.activity.open_support_contacts(_profile_of(loaded, c))
    ]
    assert 0.02 <= len(opened) / len(loaded.only) <= 0.12
    traits = loaded.st.activity.traits(_profile_of(loaded, opened[0]))
    assert traits["open_support_contacts"] == 1


def test_the_second_accounts_are_merged_into_one_profile(loaded):
    assert len(loaded.plan.merged) == demo.MERGED_PAIRS
    for customer in loaded.plan.merged:
        profile = loaded.st.profiles.get(_profile_of(loaded, customer))
        first, second = profile.doc["emails"][:2]
        assert loaded.st.profiles.lookup("email", second).id == profile.id
        assert loaded.st.profiles.lookup("email", first).id == profile.id
        history = loaded.st.profiles.merges.history(profile.id)
        assert [m["status"] for m in history] == ["done"]
        assert loaded.st.profiles.resolve(history[0]["source_id"]) == profile.id
        # the second account's order came along
        assert profile.traits["order_count"] == len(loaded.plan.facts[customer].invoices)


@pytest.mark.parametrize("customer", sorted(NAMED))
def test_a_named_customer_fills_every_console_panel(loaded, customer):
    get = loaded.get
    found = get(f"/v1/profiles?email={NAMED[customer]}")
    cid = found["id"]
    assert found["consent"]["marketing"]["granted"] is True
    assert get(f"/v1/profiles/{cid}/greeting?channel=chat")["text"]
    nba = get(f"/v1/profiles/{cid}/next-best-actions?limit=3&channel=chat")
    assert nba["items"], nba
    assert get(f"/v1/profiles/{cid}/purchases?limit=50")["items"]
    for strategy in ("blend", "discover", "buy_again"):
        recs = get(f"/v1/profiles/{cid}/recommendations?limit=5&strategy={strategy}")
        assert recs["items"], (strategy, recs)
        assert recs["basis"] != "popularity"


def test_what_each_named_customer_shows(loaded):
    get = loaded.get

    def actions(email: str) -> set[str]:
        cid = get(f"/v1/profiles?email={email}")["id"]
        nba = get(f"/v1/profiles/{cid}/next-best-actions?limit=10&channel=chat")
        return {a["action_id"] for a in nba["items"]}

    gold = get(f"/v1/profiles?email={NAMED['12348']}")
    assert gold["loyalty_tier"] == "gold"
    assert "resolve-open-ticket" in actions(NAMED["12348"])
    new = get(f"/v1/profiles?email={NAMED['12650']}")
    assert new["traits"]["order_count"] == 1
    assert "satisfaction-survey" in actions(NAMED["12650"])
    merged = get("/v1/profiles?email=kim.taylor.16719@example.net")
    assert merged["id"] == get(f"/v1/profiles?email={NAMED['16719']}")["id"]
    assert merged["traits"]["order_count"] == 3


def test_a_customer_without_orders_gets_a_cold_start_and_the_welcome(loaded):
    get = loaded.get
    cid = get(f"/v1/profiles?email={NO_ORDER_YET[1]}")["id"]
    nba = get(f"/v1/profiles/{cid}/next-best-actions?limit=3&channel=chat")
    assert [a["action_id"] for a in nba["items"]] == ["first-order-welcome"]
    recs = get(f"/v1/profiles/{cid}/recommendations?limit=5&strategy=discover")
    assert recs["items"] and recs["basis"] == "cold"
