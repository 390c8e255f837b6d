"""API keys with scopes.

A key is shown once, at creation: ``rpk_<key id>_<secret>``. Redis keeps only the key id, name,
scopes and ``sha256(salt || secret)`` with a per-key random salt; the secret is 32 random bytes,
so a fast salted hash is enough (a slow KDF protects low-entropy passwords, not random tokens).
Verification compares digests with :func:`hmac.compare_digest`. Neither the token nor its hash
is ever logged.

``admin`` implies every other scope.

Verified keys are cached in each process for ``cache_seconds`` (``RAPPORT_AUTH_CACHE_SECONDS``,
default 5; 0 turns it off), keyed by the sha256 of the token, never the token itself: a request
with a known key then costs no Redis round trip for auth. So a revoked key keeps working for at
most that long in the other workers (the worker that revokes it drops it at once); unknown or
wrong tokens are never cached. While Redis is unreachable (connection refused or timed out), a
key verified less than ``STALE_SECONDS`` (300) ago stays valid in that process, so the reads
that can be served without Redis (recommendations from the in-memory popular list) stay up.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from core.errors import InvalidInput, NotFound
from profiles.keys import Keys

SCOPES: tuple[str, ...] = (
    "profiles:read",
    "profiles:write",
    "recommend:read",
    "actions:write",
    "pii:read",  # unmasked emails and phone numbers (service/hardening.py masks them otherwise)
    "admin",
)
TOKEN_PREFIX = "rpk_"


class ApiKeyNotFound(NotFound):
    title = "API key not found"


class Unauthenticated(Exception):
    """No key, or a key we do not know: 401 (raised by ``service/access.py``)."""


class Forbidden(Exception):
    """A known key without the scope the route needs: 403 (raised by ``service/access.py``)."""

    def __init__(self, scope: str):
        super().__init__(scope)
        self.scope = scope


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: float

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def public(self) -> dict[str, object]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
        }


def parse_scopes(text: str | list[str]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    scopes = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
    if not scopes:
        raise InvalidInput("at least one scope is required", field="scopes")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise InvalidInput(
            f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}", field="scopes"
        )
    return scopes


def _digest(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode()).hexdigest()


class ApiKeyStore:
    """API keys in Redis (see ``profiles.keys`` for the key names)."""

    CACHE_MAX = 1024  # distinct tokens cached per process; the cache is cleared when full
    # while Redis is unreachable, an expired cache entry is still honoured for this long
    STALE_SECONDS = 300.0

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        clock: Callable[[], float] = time.time,
        *,
        cache_seconds: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self.cache_seconds = cache_seconds
        self.monotonic = monotonic
        # sha256(token) -> (key, monotonic expiry); a token in clear is never kept
        self._cache: dict[bytes, tuple[ApiKey, float]] = {}
        # sha256(token) -> monotonic expiry, for tokens that did not verify: a flood of wrong
        # tokens costs one Redis read per distinct token and period, and cannot evict good keys
        # from _cache. Safe to cache: a token is a random secret made by create(), so a token
        # refused now cannot become valid later.
        self._refused: dict[bytes, float] = {}
        self._cache_lock = threading.Lock()

    def create(self, name: str, scopes: str | list[str]) -> tuple[ApiKey, str]:
        """Store a new key; return it and the token, which is not kept anywhere."""
        name = name.strip()
        if not name or len(name) > 100:
            raise InvalidInput("name must be 1 to 100 characters", field="name")
        scope_tuple = parse_scopes(scopes)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        key = ApiKey(key_id, name, scope_tuple, self.clock())
        # The key hash and the index live in different cluster slots (so that verifying keys
        # spreads over the cluster), so no MULTI: the index entry is written first and list()
        # skips an id whose hash is missing, so a write cut in half is never an unlisted key.
        self.redis.sadd(self.keys.api_key_index(), key_id)
        self.redis.hset(
            self.keys.api_key(key_id),
            mapping={
                "name": name,
                "scopes": ",".join(scope_tuple),
                "salt": salt.hex(),
                "hash": _digest(salt, secret),
                "created_at": repr(key.created_at),
            },
        )
        return key, f"{TOKEN_PREFIX}{key_id}_{secret}"

    def list(self) -> list[ApiKey]:
        ids = sorted(self.redis.smembers(self.keys.api_key_index()))
        pipe = self.redis.pipeline(transaction=False)
        for key_id in ids:
            pipe.hgetall(self.keys.api_key(_s(key_id)))
        out = []
        for key_id, data in zip(ids, pipe.execute(), strict=True):
            if data:
                out.append(self._from_hash(_s(key_id), data))
        return sorted(out, key=lambda k: k.created_at)

    def revoke(self, key_id: str) -> None:
        # Not a transaction (two slots on a cluster): the hash goes first, so the key stops
        # working before its index entry goes.
        deleted = self.redis.delete(self.keys.api_key(key_id))
        self.redis.srem(self.keys.api_key_index(), key_id)
        with self._cache_lock:  # this process stops accepting it at once; others within the TTL
            self._cache = {d: v for d, v in self._cache.items() if v[0].key_id != key_id}
        if not deleted:
            raise ApiKeyNotFound(f"no API key with id {key_id}")

    def verify(self, token: str) -> ApiKey | None:
        """The key for ``token``, or None when the token is malformed, unknown or wrong
        (from the process cache when it verified the same token less than
        ``cache_seconds`` ago)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        if self.cache_seconds <= 0:
            return self._verify(token)
        digest = hashlib.sha256(token.encode()).digest()
        now = self.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        if self._refused.get(digest, 0.0) > now:
            return None
        try:
            key = self._verify(token)
        except (redis.ConnectionError, redis.TimeoutError):
            # Redis unreachable: a key this process verified within STALE_SECONDS keeps
            # working (reads that can be served without Redis stay up); nothing is cached anew
            if hit is not None and hit[1] + self.STALE_SECONDS > now:
                return hit[0]
            raise
        with self._cache_lock:
            if key is None:
                self._cache.pop(digest, None)
                if len(self._refused) >= self.CACHE_MAX:
                    self._refused = {}
                self._refused[digest] = now + self.cache_seconds
            else:
                if len(self._cache) >= self.CACHE_MAX:
                    self._cache = {}
                self._cache[digest] = (key, now + self.cache_seconds)
        return key

    def _verify(self, token: str) -> ApiKey | None:
        key_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
        if not sep or not secret or not all(c in "0123456789abcdef" for c in key_id):
            return None
        raw = self.redis.hgetall(self.keys.api_key(key_id))
        if not raw:
            return None
        data = {_s(k): _s(v) for k, v in raw.items()}
        expected = data.get("hash", "")
        actual = _digest(bytes.fromhex(data.get("salt", "")), secret)
        if not hmac.compare_digest(expected.encode(), actual.encode()):
            return None
        return self._from_hash(key_id, data)

    @staticmethod
    def _from_hash(key_id: str, data: dict) -> ApiKey:
        data = {_s(k): _s(v) for k, v in data.items()}
        return ApiKey(
            key_id=key_id,
            name=data.get("name", ""),
            scopes=tuple(s for s in data.get("scopes", "").split(",") if s),
            created_at=float(data.get("created_at", 0)),
        )


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
