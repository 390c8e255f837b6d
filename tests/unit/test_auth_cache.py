"""The per-process cache of verified API keys (service/auth.py): hits skip Redis, entries
expire after the TTL, revocation in the same process is immediate, nothing in clear is kept."""

from profiles.keys import Keys
from service.auth import ApiKeyStore

KEYS = Keys("rp")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _commands(redis_client) -> int:
    return int(redis_client.info("stats")["total_commands_processed"])


def test_a_cached_key_costs_no_redis_command_until_the_ttl(redis_client):
    clock = Clock()
    store = ApiKeyStore(redis_client, KEYS, cache_seconds=5, monotonic=clock)
    key, token = store.create("helpdesk", "profiles:read")
    assert store.verify(token) == key
    before = _commands(redis_client)
    assert store.verify(token) == key
    assert _commands(redis_client) - before == 1  # only the INFO call itself
    clock.now += 5.1
    before = _commands(redis_client)
    assert store.verify(token) == key
    assert _commands(redis_client) - before == 2  # HGETALL again, plus INFO


def test_revoked_elsewhere_stops_working_within_the_ttl(redis_client):
    clock = Clock()
    worker = ApiKeyStore(redis_client, KEYS, cache_seconds=5, monotonic=clock)
    other = ApiKeyStore(redis_client, KEYS)
    key, token = other.create("bot", "admin")
    assert worker.verify(token) == key
    other.revoke(key.key_id)
    assert worker.verify(token) == key  # still cached in this worker
    clock.now += 5.1
    assert worker.verify(token) is None


def test_revoked_in_the_same_process_stops_at_once(redis_client):
    store = ApiKeyStore(redis_client, KEYS, cache_seconds=60)
    key, token = store.create("bot", "admin")
    assert store.verify(token) == key
    store.revoke(key.key_id)
    assert store.verify(token) is None


def test_wrong_tokens_are_refused_from_the_cache_and_no_token_is_kept_in_clear(redis_client):
    clock = Clock()
    store = ApiKeyStore(redis_client, KEYS, cache_seconds=60, monotonic=clock)
    key, token = store.create("bot", "admin")
    wrong = token[:-2] + ("aa" if not token.endswith("aa") else "bb")
    assert store.verify(wrong) is None
    before = _commands(redis_client)
    assert all(store.verify(wrong) is None for _ in range(50))  # a flood of one wrong token
    assert _commands(redis_client) - before == 1  # only the INFO call itself
    assert store.verify(token) == key
    assert len(store._cache) == 1 and len(store._refused) == 1
    for cached in (*store._cache, *store._refused):
        assert isinstance(cached, bytes) and len(cached) == 32
        assert token.encode() not in cached and token.split("_", 2)[2].encode() not in cached
    clock.now += 60.1
    before = _commands(redis_client)
    assert store.verify(wrong) is None
    assert _commands(redis_client) - before == 2  # asked Redis again after the period


def test_many_wrong_tokens_do_not_evict_good_keys(redis_client):
    store = ApiKeyStore(redis_client, KEYS, cache_seconds=60)
    key, token = store.create("bot", "admin")
    assert store.verify(token) == key
    for i in range(store.CACHE_MAX + 10):
        assert store.verify(f"{token[:-8]}{i:08x}") is None
    before = _commands(redis_client)
    assert store.verify(token) == key
    assert _commands(redis_client) - before == 1  # still cached


def test_ttl_zero_verifies_every_time(redis_client):
    store = ApiKeyStore(redis_client, KEYS, cache_seconds=0)
    key, token = store.create("bot", "admin")
    assert store.verify(token) == key
    before = _commands(redis_client)
    assert store.verify(token) == key
    assert _commands(redis_client) - before == 2
    assert store._cache == {}
