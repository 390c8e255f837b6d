"""A profile create whose profile write fails at Redis (here: an ACL that lets the client claim
identities but not write profiles, a real NOPERM) gives its identity claims back, so the retry
after the 503 creates the profile instead of getting 409 for the claim grace period."""

from __future__ import annotations

import pytest
import redis

from profiles.keys import Keys
from profiles.store import ProfileStore

KEYS = Keys("rp")
CLAIMS = KEYS.identity_owner("*", "*")  # a pattern: every identity claim
PROFILES = KEYS.customer_tag("*") + ":*"  # a pattern: every key of every customer


@pytest.fixture
def claims_only_client(redis_client):
    """A client that may read everything but write only identity claim keys."""
    user = "claims-only"
    redis_client.execute_command(
        "ACL", "SETUSER", user, "reset", "on", ">pw", "%R~*", f"%RW~{CLAIMS}", "+@all"
    )
    given = redis_client.connection_pool.connection_kwargs
    where = (
        {"unix_socket_path": given["path"]}
        if given.get("path")
        else {"host": given["host"], "port": given["port"]}
    )
    client = redis.Redis(
        **where, db=given.get("db", 0), username=user, password="pw", decode_responses=True
    )
    yield client
    client.close()
    redis_client.execute_command("ACL", "DELUSER", user)


def test_failed_profile_write_releases_its_claims(redis_client, claims_only_client):
    data = {"email": "Ann@Example.com", "phone": "+44 20 7946 0018", "first_name": "Ann"}
    with pytest.raises(redis.exceptions.NoPermissionError):
        ProfileStore(claims_only_client, KEYS).create(data)
    assert list(redis_client.scan_iter(CLAIMS)) == []  # claims given back
    assert list(redis_client.scan_iter(PROFILES)) == []  # and no profile written

    profile = ProfileStore(redis_client, KEYS).create(data)  # the retry: not a 409
    assert profile.doc["emails"] == ["ann@example.com"]
    assert len(list(redis_client.scan_iter(CLAIMS))) == 2


def test_claims_of_a_written_profile_stay(redis_client):
    store = ProfileStore(redis_client, KEYS)
    profile = store.create({"email": "bo@example.com"})
    # a create that failed after its write landed: the profile keeps its claim
    store._release_unwritten(profile.id, [("email", "bo@example.com")])
    assert store.identities.owner(("email", "bo@example.com")) == profile.id
