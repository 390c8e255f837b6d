"""The identity index: claims, verification against the profile, stale-claim repair."""

from __future__ import annotations

import pytest

from profiles.errors import IdentityTaken
from profiles.identity_index import IdentityIndex
from profiles.keys import Keys
from profiles.store import ProfileStore

EMAIL = ("email", "ada@example.com")


class Clock:
    def __init__(self, now: float = 1_790_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(redis_client, clock):
    return ProfileStore(redis_client, Keys("rp"), clock)


@pytest.fixture
def index(store):
    return store.identities


def test_claim_lives_in_its_own_slot(redis_client, clock):
    index = IdentityIndex(redis_client, Keys("rp"), clock)
    assert index.claim_key(EMAIL) == Keys("rp").identity_owner("email", "ada@example.com")


def test_owner_is_verified_against_the_profile(store, index):
    profile = store.create({"email": "Ada@Example.com"})
    assert index.owner(EMAIL) == profile.id
    assert store.lookup(*EMAIL).id == profile.id


def test_second_profile_cannot_take_an_identity(store, index):
    first = store.create({"email": "ada@example.com"})
    with pytest.raises(IdentityTaken) as err:
        store.create({"email": "ada@example.com", "first_name": "Eve"})
    assert err.value.field == "email"
    assert err.value.extra["owner_id"] == first.id
    assert index.owner(EMAIL) == first.id


def test_pending_claim_is_respected_then_stale_and_repaired(redis_client, store, index, clock):
    # a writer claimed but crashed before writing its profile
    assert index.claim(EMAIL, "c_crashed") is None
    assert index.owner(EMAIL) is None  # not findable: the profile does not list it
    assert index.claim(EMAIL, "c_other") == "c_crashed"  # still pending: cannot be taken
    clock.now += 61
    assert index.owner(EMAIL) is None
    assert redis_client.get(index.claim_key(EMAIL)) is None  # repaired on read
    assert store.create({"email": "ada@example.com"}).id == index.owner(EMAIL)


def test_stale_claim_is_taken_over_by_a_new_profile(store, index, clock):
    index.claim(EMAIL, "c_crashed")
    clock.now += 61
    profile = store.create({"email": "ada@example.com"})
    assert index.owner(EMAIL) == profile.id


def test_claim_of_a_profile_that_no_longer_lists_it_is_stale(store, index, clock):
    profile = store.create({"email": "ada@example.com"})
    # simulate a crash after the profile dropped it but before the claim was released
    store.update(profile.id, lambda doc, _s: {**doc, "emails": []})
    index.claim(EMAIL, profile.id)  # still ours, as the crash left it
    clock.now += 61
    assert index.owner(EMAIL) is None


def test_release_only_by_the_owner(store, index):
    profile = store.create({"email": "ada@example.com"})
    assert not index.release(EMAIL, "c_someone_else")
    assert index.raw_owner(EMAIL) == profile.id
    assert index.release(EMAIL, profile.id)
    assert index.raw_owner(EMAIL) is None


def test_transfer_is_compare_and_set(index):
    index.claim(EMAIL, "c_a")
    assert not index.transfer(EMAIL, "c_b", "c_c")  # c_b does not hold it
    assert index.transfer(EMAIL, "c_a", "c_b")
    assert index.transfer(EMAIL, "c_a", "c_b")  # idempotent
    assert index.raw_owner(EMAIL) == "c_b"


def test_claim_through_a_merge_alias_is_repaired_to_the_target(store, index):
    source = store.create({"email": "ada@example.com"})
    target = store.create({"email": "other@example.com"})
    store.merges.merge(source.id, target.id, actor="test")
    # put the claim back on the alias, as a crash before the claim move would leave it
    index.transfer(EMAIL, target.id, source.id)
    assert index.owner(EMAIL) == target.id
    assert index.raw_owner(EMAIL) == target.id
