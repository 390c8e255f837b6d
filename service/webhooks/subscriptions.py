"""Webhook subscriptions: one hash ``Keys.subscriptions()``, subscription id -> JSON record.

A record holds the target URL, the event types it wants (``["*"]`` for all), whether payloads
may carry PII, a status (``active``, ``paused``, or ``disabled`` by the worker after a 410) and
its signing secret, which leaves the store only through :meth:`SubscriptionStore.create` and
:meth:`SubscriptionStore.rotate_secret`. Changes are compare-and-set on the record, so two admins
(or an admin and the worker disabling it) never overwrite each other's change.
"""

from __future__ import annotations

import builtins
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.errors import Conflict, InvalidInput, NotFound
from core.keys import SharedKeys
from core.outbox import EVENT_TYPES
from service.webhooks.signing import new_secret

ALL = "*"
STATUSES = ("active", "paused", "disabled")
SETTABLE_STATUSES = ("active", "paused")
MAX_SUBSCRIPTIONS = 100  # every event is matched against each one
MAX_DESCRIPTION = 500
_CAS_TRIES = 20

# KEYS[1] the subscriptions hash; ARGV: id, the record as read ('' = absent), the new record
# ('' = delete). Writes only when the record is still the one read.
_CAS_LUA = """
local now = redis.call('HGET', KEYS[1], ARGV[1])
if (now or '') ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
"""


class SubscriptionNotFound(NotFound):
    title = "Subscription not found"


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    event_types: list[str]
    secret: str
    include_pii: bool = False
    status: str = "active"
    disabled_reason: str | None = None
    description: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def wants(self, event_type: str) -> bool:
        return ALL in self.event_types or event_type in self.event_types

    def accepts(self, event_type: str, at_ms: int) -> bool:
        """Whether an event of ``event_type`` accepted at ``at_ms`` goes to this subscription:
        it wants the type and the event came after the subscription was created."""
        return self.wants(event_type) and int(at_ms) >= int(self.created_at * 1000)

    @property
    def active(self) -> bool:
        return self.status == "active"

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        return out

    def public(self) -> dict[str, Any]:
        """The record without its secret (what the API shows)."""
        out = self.record()
        out.pop("secret")
        return out

    def to_json(self) -> str:
        return json.dumps(self.record(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Subscription:
        data = json.loads(text)
        known = {k: data.pop(k) for k in list(data) if k in cls.__dataclass_fields__}
        known.pop("extra", None)
        return cls(**known, extra=data)


def check_event_types(event_types: Any) -> list[str]:
    """``event_types`` as stored: known types without repeats, or ``["*"]``."""
    if not isinstance(event_types, list | tuple) or not event_types:
        raise InvalidInput('list one or more event types, or ["*"]', field="event_types")
    wanted: list[str] = []
    for kind in event_types:
        if kind != ALL and kind not in EVENT_TYPES:
            raise InvalidInput(
                f"unknown event type {kind!r}; one of {', '.join(EVENT_TYPES)} or *",
                field="event_types",
            )
        if kind not in wanted:
            wanted.append(kind)
    return [ALL] if ALL in wanted else wanted


def _check_status(status: Any, allowed: Iterable[str] = SETTABLE_STATUSES) -> str:
    allowed = tuple(allowed)
    if status not in allowed:
        raise InvalidInput(f"status must be one of {', '.join(allowed)}", field="status")
    return str(status)


def _check_description(text: Any) -> str:
    if not isinstance(text, str) or len(text) > MAX_DESCRIPTION:
        raise InvalidInput(
            f"a description is text of at most {MAX_DESCRIPTION} characters", field="description"
        )
    return text


class SubscriptionStore:
    """Subscriptions in Redis. URLs are vetted by the caller (``targets.check_url``)."""

    def __init__(self, client: Any, keys: SharedKeys, clock: Callable[[], float] = time.time):
        self.client = client
        self.keys = keys
        self.clock = clock
        self._cas = client.register_script(_CAS_LUA)

    @property
    def _hash(self) -> str:
        return self.keys.subscriptions()

    def create(
        self,
        url: str,
        event_types: list[str],
        *,
        include_pii: bool = False,
        description: str = "",
        status: str = "active",
    ) -> Subscription:
        """A new subscription, with its secret (shown once)."""
        if self.client.hlen(self._hash) >= MAX_SUBSCRIPTIONS:
            raise Conflict(f"at most {MAX_SUBSCRIPTIONS} subscriptions; delete one first")
        now = self.clock()
        sub = Subscription(
            id=f"sub_{secrets.token_hex(8)}",
            url=url,
            event_types=check_event_types(event_types),
            secret=new_secret(),
            include_pii=bool(include_pii),
            status=_check_status(status),
            description=_check_description(description),
            created_at=now,
            updated_at=now,
        )
        if not self._cas(keys=[self._hash], args=[sub.id, "", sub.to_json()]):
            raise Conflict("subscription id taken; try again")  # pragma: no cover (2**64 ids)
        return sub

    def _raw(self, subscription_id: str) -> str:
        raw = self.client.hget(self._hash, subscription_id)
        if raw is None:
            raise SubscriptionNotFound(
                f"no subscription {subscription_id!r}", field="subscription_id"
            )
        return raw.decode() if isinstance(raw, bytes) else raw

    def get(self, subscription_id: str) -> Subscription:
        return Subscription.from_json(self._raw(subscription_id))

    def list(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        subs = [Subscription.from_json(v) for v in self.client.hvals(self._hash)]
        return sorted(subs, key=lambda s: (s.created_at, s.id))

    def active(self) -> builtins.list[Subscription]:
        """The subscriptions events are delivered to now."""
        return [s for s in self.list() if s.active]

    def _change(self, subscription_id: str, edit: Callable[[Subscription], Subscription]) -> Any:
        for _ in range(_CAS_TRIES):
            raw = self._raw(subscription_id)
            new = edit(Subscription.from_json(raw))
            new = replace(new, updated_at=self.clock())
            if self._cas(keys=[self._hash], args=[subscription_id, raw, new.to_json()]):
                return new
        raise Conflict("the subscription is being changed concurrently; try again")

    def update(self, subscription_id: str, **changes: Any) -> Subscription:
        """Change ``url``, ``event_types``, ``include_pii``, ``description`` or ``status``
        (active or paused; setting active re-activates a disabled subscription)."""
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "url":
                if not isinstance(value, str) or not value:
                    raise InvalidInput("a URL is required", field="url")
                clean["url"] = value
            elif name == "event_types":
                clean["event_types"] = check_event_types(value)
            elif name == "include_pii":
                clean["include_pii"] = bool(value)
            elif name == "description":
                clean["description"] = _check_description(value)
            elif name == "status":
                clean["status"] = _check_status(value)
                clean["disabled_reason"] = None
            else:
                raise InvalidInput(f"{name} cannot be changed", field=name)
        return self._change(subscription_id, lambda sub: replace(sub, **clean))

    def rotate_secret(self, subscription_id: str) -> Subscription:
        """A new secret for the subscription (returned once); the old one stops at once."""
        return self._change(subscription_id, lambda sub: replace(sub, secret=new_secret()))

    def disable(self, subscription_id: str, reason: str) -> Subscription:
        """Stop deliveries (the worker calls this on a 410); ``PATCH status=active`` undoes it."""
        return self._change(
            subscription_id,
            lambda sub: replace(sub, status="disabled", disabled_reason=str(reason)[:200]),
        )

    def delete(self, subscription_id: str) -> None:
        for _ in range(_CAS_TRIES):
            raw = self._raw(subscription_id)
            if self._cas(keys=[self._hash], args=[subscription_id, raw, ""]):
                return
        raise Conflict("the subscription is being changed concurrently; try again")
