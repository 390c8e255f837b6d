"""Greetings over HTTP: per customer, per caller identity, unknown callers, template admin."""

from __future__ import annotations

import json
import time

import pytest

from profiles.store import ProfileStore
from recommend.catalog.products import Catalog

PROBLEM = "application/problem+json"


@pytest.fixture
def profiles(app, redis_client):
    st = app.extensions["rapport"]
    return ProfileStore(redis_client, st.keys)


@pytest.fixture
def anna(profiles):
    return profiles.create(
        {
            "first_name": "Anna",
            "last_name": "Schmidt",
            "email": "anna@example.com",
            "locale": "de-AT",
            "timezone": "Europe/Vienna",
            "loyalty_tier": "gold",
            "preferences": {"custom": {"salutation": "Frau"}},
        }
    ).id


@pytest.fixture
def reader(api_as):
    return api_as("profiles:read")


def test_greeting_for_a_customer(reader, anna):
    resp = reader.get(f"/v1/profiles/{anna}/greeting?channel=chat")
    assert resp.status_code == 200
    body = resp.json
    assert body["text"].startswith("Hallo Anna!")
    assert body["locale"] == "de" and body["requested_locale"] == "de-AT"
    assert body["template"]["id"] == "default:de:chat"
    assert body["customer_id"] == anna and body["known"] is True
    assert body["facts"]["name"] == "Anna"
    phone = reader.get(f"/v1/profiles/{anna}/greeting?channel=phone").json
    assert "Frau Schmidt" in phone["text"] and "als Gold-Kunde" in phone["text"]
    assert phone["facts"]["tier"] == "gold"
    en = reader.get(f"/v1/profiles/{anna}/greeting?channel=email&locale=en").json
    assert en["text"].startswith("Dear Ms Schmidt,") and en["locale"] == "en"


def test_unknown_profile_is_404(reader):
    resp = reader.get("/v1/profiles/nobody/greeting")
    assert resp.status_code == 404
    assert resp.content_type == PROBLEM


@pytest.mark.parametrize(
    ("query", "field"),
    [("channel=fax", "channel"), ("locale=!!", "locale")],
)
def test_bad_query_is_422_with_the_field(reader, anna, query, field):
    resp = reader.get(f"/v1/profiles/{anna}/greeting?{query}")
    assert resp.status_code == 422
    assert resp.json["errors"][0]["field"] == field


def test_scopes(api_as, client, anna):
    assert client.get(f"/v1/profiles/{anna}/greeting").status_code == 401
    assert api_as("recommend:read").get(f"/v1/profiles/{anna}/greeting").status_code == 403
    assert api_as("profiles:read").get("/v1/greeting-templates").status_code == 403


def test_caller_known_by_identity(reader, anna):
    body = reader.get("/v1/greeting?email=Anna@Example.com&channel=chat").json
    assert body["known"] is True and body["customer_id"] == anna
    assert body["text"].startswith("Hallo Anna!")


@pytest.mark.parametrize(
    "query",
    ["email=stranger@example.com", "phone=%2B442079460000", "external_id=shop:42", ""],
)
def test_unknown_caller_gets_a_generic_greeting(reader, query):
    resp = reader.get(f"/v1/greeting?channel=phone&{query}")
    assert resp.status_code == 200
    body = resp.json
    assert body["known"] is False and body["customer_id"] is None
    assert body["text"] == "Hello, thank you for calling. How can I help you today?"
    assert "None" not in body["text"]


def test_unknown_caller_in_a_locale(reader):
    body = reader.get("/v1/greeting?channel=chat&locale=fr-CA").json
    assert body["text"] == "Bonjour ! Comment puis-je t'aider ?"
    assert body["locale"] == "fr"


def test_caller_query_validation(reader):
    resp = reader.get("/v1/greeting?email=a@example.com&phone=%2B4930123456")
    assert resp.status_code == 422
    resp = reader.get("/v1/greeting?email=not-an-email")
    assert resp.status_code == 422
    assert resp.json["errors"][0]["field"] == "email"


def test_template_admin_round_trip(api, reader, anna):
    listed = api.get("/v1/greeting-templates").json
    assert len(listed["items"]) == 12
    assert "recent_product" in listed["variables"]
    one = api.get("/v1/greeting-templates/de/chat").json
    assert one["origin"] == "default"

    source = "Servus{% if name %} {{ name }}{% endif %}!"
    put = api.put("/v1/greeting-templates/de-AT/chat", json={"source": source})
    assert put.status_code == 200
    assert put.json["origin"] == "custom" and put.json["locale"] == "de-AT"
    greeting = reader.get(f"/v1/profiles/{anna}/greeting?channel=chat").json
    assert greeting["text"] == "Servus Anna!"
    assert greeting["template"]["id"] == "custom:de-AT:chat"

    assert api.delete("/v1/greeting-templates/de-AT/chat").status_code == 204
    assert api.delete("/v1/greeting-templates/de-AT/chat").status_code == 404
    greeting = reader.get(f"/v1/profiles/{anna}/greeting?channel=chat").json
    assert greeting["template"]["id"] == "default:de:chat"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ name.__class__.__mro__[1].__subclasses__() }}",
        "{{ name|attr('__globals__') }}",
        "{{ secret }}",
        "{% if %}",
    ],
)
def test_unsafe_template_is_refused_on_save(api, source):
    resp = api.put("/v1/greeting-templates/en/chat", json={"source": source})
    assert resp.status_code == 422
    assert resp.content_type == PROBLEM
    assert resp.json["errors"][0]["field"] == "source"
    assert api.get("/v1/greeting-templates/en/chat").json["origin"] == "default"


def test_template_input_validation(api):
    assert api.put("/v1/greeting-templates/en/chat", json={}).status_code == 422
    resp = api.put("/v1/greeting-templates/en/chat", json={"source": "Hi", "x": 1})
    assert resp.status_code == 422
    resp = api.put("/v1/greeting-templates/en/sms", json={"source": "Hi"})
    assert resp.status_code == 422 and resp.json["errors"][0]["field"] == "channel"
    resp = api.put("/v1/greeting-templates/english/chat", json={"source": "Hi"})
    assert resp.status_code == 422 and resp.json["errors"][0]["field"] == "locale"
    resp = api.put("/v1/greeting-templates/en/chat", json={"source": "x" * 2001})
    assert resp.status_code == 422 and resp.json["errors"][0]["field"] == "source"


def test_escape_stored_behind_our_back_cannot_execute(app, redis_client, reader, anna):
    keys = app.extensions["rapport"].keys
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    redis_client.hset(keys.greeting_templates(), "de:chat", json.dumps({"source": evil}))
    resp = reader.get(f"/v1/profiles/{anna}/greeting?channel=chat")
    assert resp.status_code == 200
    assert resp.json["template"]["fallback"] is True
    assert resp.json["text"].startswith("Hallo Anna!")


def test_greeting_uses_a_real_purchase_and_an_open_support_contact(app, reader, anna):
    st = app.extensions["rapport"]
    Catalog(st.redis, st.keys).upsert(
        {"name": "Wasserkocher", "category": "home", "price": "39.90", "currency": "EUR"}, "p-k"
    )
    st.activity.record_purchase(
        anna,
        {
            "order_id": "o-1",
            "lines": [{"product_id": "p-k", "quantity": 1, "unit_price": "39.90"}],
            "currency": "EUR",
            "channel": "web",
            "purchased_at": time.time() - 3 * 86400,
        },
    )
    chat = reader.get(f"/v1/profiles/{anna}/greeting?channel=chat").json
    assert "Wie gefällt dir dein Wasserkocher?" in chat["text"]
    assert chat["facts"]["is_returning"] is True
    email = reader.get(f"/v1/profiles/{anna}/greeting?channel=email").json
    assert email["text"].startswith("Sehr geehrte Frau Schmidt, vielen Dank für Ihre Bestellung")
    assert "(€ 39,90)" in email["text"].replace("\xa0", " ")
    st.activity.record_events(
        anna,
        [
            {
                "message_id": "m-1",
                "type": "support_contact",
                "at": time.time(),
                "contact_id": "t-1",
                "status": "opened",
            }
        ],
    )
    chat = reader.get(f"/v1/profiles/{anna}/greeting?channel=chat").json
    assert "Ich sehe deine offene Anfrage" in chat["text"]
    assert chat["facts"]["has_open_issue"] is True


# -- one language per answer ---------------------------------------------------------------
def test_fi_fi_gets_english_with_an_english_date_and_fallback(app, reader, profiles):
    st = app.extensions["rapport"]
    Catalog(st.redis, st.keys).upsert({"name": "Mug", "price": "1.65", "currency": "GBP"}, "p-k")
    cid = profiles.create(
        {"first_name": "Aino", "last_name": "Virtanen", "locale": "fi-FI", "loyalty_tier": "gold"}
    ).id
    st.activity.record_purchase(
        cid,
        {
            "order_id": "o-1",
            "lines": [{"product_id": "p-k", "quantity": 1, "unit_price": "1.65"}],
            "currency": "GBP",
            "channel": "web",
            "purchased_at": "2011-09-25T10:00:00Z",
        },
    )
    phone = reader.get(f"/v1/profiles/{cid}/greeting?channel=phone").json
    assert "on September 25, 2011." in phone["text"] and "syyskuuta" not in phone["text"]
    assert "as a gold member" in phone["text"]
    assert (phone["locale"], phone["requested_locale"], phone["format_locale"]) == (
        "en",
        "fi-FI",
        "en",
    )
    assert phone["template"]["locale"] == "en" and phone["template"]["fallback"] is True
    email = reader.get(f"/v1/profiles/{cid}/greeting?channel=email").json
    assert "(£1.65)" in email["text"]


def test_de_at_gets_german_dates_and_money_without_fallback(app, reader, anna):
    st = app.extensions["rapport"]
    Catalog(st.redis, st.keys).upsert({"name": "Tasse", "price": "1.65", "currency": "GBP"}, "p-k")
    st.activity.record_purchase(
        anna,
        {
            "order_id": "o-1",
            "lines": [{"product_id": "p-k", "quantity": 1, "unit_price": "1.65"}],
            "currency": "GBP",
            "channel": "web",
            "purchased_at": "2011-09-25T10:00:00Z",
        },
    )
    phone = reader.get(f"/v1/profiles/{anna}/greeting?channel=phone").json
    assert "am 25. September 2011 Tasse gekauft" in phone["text"]
    assert "als Gold-Kunde" in phone["text"]
    assert (phone["locale"], phone["format_locale"]) == ("de", "de-AT")
    assert phone["template"]["fallback"] is False
    email = reader.get(f"/v1/profiles/{anna}/greeting?channel=email").json
    assert "(£\xa01,65)" in email["text"]
    fr = reader.get(f"/v1/profiles/{anna}/greeting?channel=phone&locale=fr").json
    assert "le 25 septembre 2011" in fr["text"] and "en tant que client Or" in fr["text"]
    # an explicit locale is the requested one: French, not a fallback
    assert (fr["format_locale"], fr["template"]["fallback"]) == ("fr", False)
