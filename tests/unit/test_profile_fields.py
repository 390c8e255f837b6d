"""The profile field list (profiles/document.py ``PROFILE_FIELDS``) and the limits
``apply_changes`` enforces per kind of field, no Redis needed."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from profiles import document, merge_rules

NOW = 1_790_000_000.0


def test_every_field_list_derives_from_the_one_declared_list():
    assert document.PROFILE_INPUT_FIELDS == (
        "email",
        "phone",
        "external_ids",
        "first_name",
        "last_name",
        "display_name",
        "locale",
        "timezone",
        "country",
        "loyalty_tier",
        "preferences",
        "consent",
    )
    scalars = ("first_name", "last_name", "display_name", "locale", "timezone", "country")
    assert document.SCALAR_FIELDS == (*scalars, "loyalty_tier")
    assert merge_rules.FILL_FIELDS == document.SCALAR_FIELDS
    assert set(document.NAME_LIMITS) <= set(document.SCALAR_FIELDS)


def test_the_phone_limit_message_names_the_phone_limit(monkeypatch):
    # The two limits differ here, so a message naming the email limit is caught.
    monkeypatch.setattr(document, "MAX_EMAILS", 7)
    monkeypatch.setattr(document, "MAX_PHONES", 3)
    doc = {"id": "c_1", "phones": [f"+43664123456{i}" for i in range(4)]}  # e.g. from merges
    with pytest.raises(InvalidInput) as err:
        document.apply_changes(doc, {"phone": "+436641234569"}, NOW)  # new primary + three
    assert err.value.field == "phone"
    assert "at most 3 " in str(err.value)
    doc = {"id": "c_1", "emails": [f"a{i}@x.com" for i in range(8)]}
    with pytest.raises(InvalidInput) as err:
        document.apply_changes(doc, {"email": "new@x.com"}, NOW)
    assert err.value.field == "email"
    assert "at most 7 " in str(err.value)


def test_replacing_the_primary_phone_within_the_limit():
    doc = {"id": "c_1", "phones": ["+436641234561", "+436641234562"]}
    new = document.apply_changes(doc, {"phone": "+436641234562"}, NOW)
    assert new["phones"] == ["+436641234562"]  # the old primary goes, no duplicate
    new = document.apply_changes(doc, {"phone": None}, NOW)
    assert new["phones"] == ["+436641234562"]


def test_each_kind_of_field_is_applied_its_way():
    doc = {
        "id": "c_1",
        "emails": ["a@x.com"],
        "external_ids": ["shop:1"],
        "first_name": "Ann",
        "preferences": {"channels": ["chat"], "custom": {"k": "v"}},
        "consent": {"marketing": {"granted": True, "at": NOW, "source": "web"}},
    }
    new = document.apply_changes(
        doc,
        {
            "external_ids": None,
            "first_name": None,
            "loyalty_tier": "gold",
            "preferences": {"custom": {"k": None}, "language": "de"},
            "consent": {"marketing": None},
        },
        NOW + 1,
    )
    assert new["external_ids"] == []
    assert "first_name" not in new and new["loyalty_tier"] == "gold"
    assert new["preferences"] == {"channels": ["chat"], "language": "de"}  # custom emptied: gone
    assert "consent" not in new
    assert new["updated_at"] == NOW + 1
    assert doc["preferences"]["custom"] == {"k": "v"}  # the input is not changed
    assert "unknown" not in document.apply_changes(doc, {"unknown": 1}, NOW)
