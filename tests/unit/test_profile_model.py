"""Profile validation and merge-patch rules (profiles/document.py), no Redis needed."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from profiles import document

NOW = 1_790_000_000.0


def test_ids_are_opaque_url_safe_and_unique():
    ids = {document.new_customer_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert cid.startswith("c_") and len(cid) == 24
        assert cid[2:].isalnum() and document.is_customer_id(cid)
    assert not document.is_customer_id("a{b}")
    assert not document.is_customer_id("")


def test_email_is_stripped_lowercased_and_checked():
    assert document.normalise_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
    for bad in ("", "no-at", "a@b", "a@@b.com", "a..b@x.com", "a@-x.com", "a b@x.com", 5):
        with pytest.raises(InvalidInput) as err:
            document.normalise_email(bad)
        assert err.value.field == "email"


def test_phone_to_e164_with_region_from_country():
    assert document.normalise_phone("+1 650-253-0000") == "+16502530000"
    assert document.normalise_phone("0664 1234567", "AT") == "+436641234567"
    with pytest.raises(InvalidInput):
        document.normalise_phone("0664 1234567")  # national form without a region
    with pytest.raises(InvalidInput):
        document.normalise_phone("+1 123")


def test_external_ids():
    assert document.normalise_external_id("Shop:AB-42") == "shop:AB-42"
    assert document.external_identity("shop:AB-42") == ("ext:shop", "AB-42")
    for bad in ("noseparator", ":42", "s p:1", "shop:", "x" * 33 + ":1", "shop:" + "1" * 129):
        with pytest.raises(InvalidInput):
            document.normalise_external_id(bad)


def test_locale_timezone_country_tier():
    assert document.normalise_locale("de-AT") == "de-AT"
    assert document.normalise_locale("de_at") == "de-AT"
    assert document.normalise_locale("zh-Hant-TW") == "zh-Hant-TW"
    for bad in ("xx-YY", "english", "", 7):
        with pytest.raises(InvalidInput):
            document.normalise_locale(bad)
    assert document.normalise_timezone("Europe/Vienna") == "Europe/Vienna"
    for bad in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(InvalidInput):
            document.normalise_timezone(bad)
    assert document.normalise_country("at") == "AT"
    for bad in ("ZZ", "AUT", "EU", ""):
        with pytest.raises(InvalidInput):
            document.normalise_country(bad)
    assert document.normalise_tier("Gold") == "gold"
    with pytest.raises(InvalidInput):
        document.normalise_tier("diamond")


def test_preferences_limits():
    ok = document.normalise_preferences_patch(
        {"channels": ["chat", "sms"], "language": "de", "custom": {"size": "M", "vip": True}}
    )
    assert ok["channels"] == ["chat", "sms"]
    cases = [
        ({"channels": ["pigeon"]}, "preferences.channels.0"),
        ({"custom": {f"k{i}": 1 for i in range(51)}}, "preferences.custom"),
        ({"custom": {"k": "x" * 1025}}, "preferences.custom.k"),
        ({"custom": {"k" * 65: 1}}, "preferences.custom"),
        ({"custom": {"k": [1, 2]}}, "preferences.custom.k"),
        ({"colour": "red"}, "preferences.colour"),
    ]
    for value, field in cases:
        with pytest.raises(InvalidInput) as err:
            document.normalise_preferences_patch(value)
        assert err.value.field == field, value


def test_consent_needs_granted_and_source_and_a_sane_time():
    out = document.normalise_consent_patch({"marketing": {"granted": True, "source": "web"}}, NOW)
    assert out == {"marketing": {"granted": True, "at": NOW, "source": "web"}}
    iso = document.normalise_consent_patch(
        {"profiling": {"granted": False, "at": "2024-01-02T03:04:05Z", "source": "app"}}, NOW
    )
    assert iso["profiling"]["at"] == 1704164645.0
    bad = [
        ({"spam": {"granted": True, "source": "x"}}, "consent.spam"),
        ({"marketing": {"granted": "yes", "source": "x"}}, "consent.marketing.granted"),
        ({"marketing": {"granted": True}}, "consent.marketing.source"),
        ({"marketing": {"granted": True, "source": "x", "at": NOW + 1e5}}, "consent.marketing.at"),
    ]
    for value, field in bad:
        with pytest.raises(InvalidInput) as err:
            document.normalise_consent_patch(value, NOW)
        assert err.value.field == field


def test_merge_patch_semantics():
    doc = document.new_document(
        "c_1",
        document.normalise_changes(
            {
                "email": "a@x.com",
                "first_name": "Ada",
                "preferences": {"custom": {"a": 1, "b": 2}, "channels": ["chat"]},
                "consent": {"marketing": {"granted": True, "source": "web"}},
            },
            now=NOW,
        ),
        NOW,
    )
    changes = document.normalise_changes(
        {
            "first_name": None,
            "last_name": "Lovelace",
            "preferences": {"custom": {"a": None, "c": "x"}},
            "consent": {"profiling": {"granted": False, "source": "call"}},
        },
        now=NOW + 1,
    )
    new = document.apply_changes(doc, changes, NOW + 1)
    assert "first_name" not in new and new["last_name"] == "Lovelace"
    assert new["preferences"] == {"custom": {"b": 2, "c": "x"}, "channels": ["chat"]}
    assert set(new["consent"]) == {"marketing", "profiling"}
    assert doc["first_name"] == "Ada"  # the input document is not modified
    assert document.added_identities(doc, new) == []


def test_email_replaces_the_primary_and_null_drops_it():
    doc = {"emails": ["a@x.com", "b@x.com"], "phones": [], "external_ids": []}
    new = document.apply_changes(doc, {"email": "c@x.com"}, NOW)
    assert new["emails"] == ["c@x.com", "b@x.com"]
    assert document.removed_identities(doc, new) == [("email", "a@x.com")]
    assert document.apply_changes(doc, {"email": None}, NOW)["emails"] == ["b@x.com"]


def test_unknown_field_and_phone_region_from_stored_country():
    with pytest.raises(InvalidInput) as err:
        document.normalise_changes({"nickname": "x"}, now=NOW)
    assert err.value.field == "nickname"
    out = document.normalise_changes({"phone": "0664 1234567"}, now=NOW, country="AT")
    assert out["phone"] == "+436641234567"
