"""ProfileStore and merge rules without HTTP: ids, resolve, versions, precedence."""

from __future__ import annotations

import pytest

from core.errors import Conflict
from profiles.errors import ProfileNotFound, VersionMismatch
from profiles.keys import Keys
from profiles.merge_rules import merged_document
from profiles.store import ProfileStore

T0 = 1_790_000_000.0


@pytest.fixture
def store(redis_client):
    return ProfileStore(redis_client, Keys("rp"), lambda: T0)


def test_imported_ids_are_kept_and_unique(store):
    profile = store.create({"email": "ada@example.com"}, customer_id="12346")
    assert profile.id == "12346" and profile.version == 1
    with pytest.raises(Conflict):
        store.create({"email": "other@example.com"}, customer_id="12346")
    # the failed create gave its claim back at once
    assert store.identities.raw_owner(("email", "other@example.com")) is None
    assert store.create({"email": "other@example.com"}).id.startswith("c_")


def test_resolve_follows_aliases_and_rejects_unknown_ids(store):
    a = store.create({"first_name": "A"})
    b = store.create({"first_name": "B"})
    c = store.create({"first_name": "C"})
    store.merges.merge(a.id, b.id, actor="t")
    store.merges.merge(b.id, c.id, actor="t")
    assert store.resolve(a.id) == c.id
    assert store.get(a.id).merged_from == a.id
    for bad in ("c_unknown", "", "x{y}", "a" * 65):
        with pytest.raises(ProfileNotFound):
            store.resolve(bad)


def test_versions_and_expected_version(store):
    profile = store.create({"first_name": "Ada"})
    assert store.patch(profile.id, {"last_name": "L"}).version == 2
    with pytest.raises(VersionMismatch) as err:
        store.patch(profile.id, {"last_name": "X"}, expected_version=1)
    assert err.value.extra["current_version"] == 2
    assert store.patch(profile.id, {"last_name": "X"}, expected_version=2).version == 3


def test_merge_precedence_target_wins_consent_latest_wins():
    target = {
        "emails": ["t@example.com"],
        "first_name": "T",
        "preferences": {"custom": {"a": 1}},
        "consent": {
            "marketing": {"granted": True, "at": T0, "source": "web"},
            "profiling": {"granted": False, "at": T0, "source": "web"},
        },
    }
    source = {
        "emails": ["s@example.com"],
        "first_name": "S",
        "last_name": "Source",
        "preferences": {"custom": {"a": 2, "b": 3}, "language": "en"},
        "consent": {
            "marketing": {"granted": False, "at": T0 + 5, "source": "call"},
            "profiling": {"granted": True, "at": T0, "source": "app"},  # a tie keeps the target's
        },
    }
    new, changes = merged_document(target, source, T0 + 10)
    assert new["emails"] == ["t@example.com", "s@example.com"]
    assert new["first_name"] == "T" and new["last_name"] == "Source"
    assert new["preferences"] == {"custom": {"a": 1, "b": 3}, "language": "en"}
    assert new["consent"]["marketing"]["source"] == "call"
    assert new["consent"]["profiling"]["source"] == "web"
    assert changes["identities"] == ["email:s@example.com"]
    paths = [c["path"] for c in changes["fields"]]
    assert paths == [
        ["last_name"],
        ["preferences", "language"],
        ["preferences", "custom", "b"],
        ["consent", "marketing"],
    ]
    assert changes["fields"][3]["before"]["source"] == "web"
