"""Admin: webhook subscriptions (change events out), their delivery log, dead letters and
redelivery. Changes are audited (action ``admin``); the signing secret is shown once, in the
answer to create and to rotate-secret. See docs/webhooks.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import marshmallow as ma
from flask.views import MethodView

from core.errors import InvalidInput
from core.outbox import EVENT_TYPES
from service.auditing import admin_change
from service.extensions import Blueprint
from service.schemas import StrictBoolean, StrictSchema
from service.state import state
from service.webhooks.subscriptions import (
    ALL,
    MAX_DESCRIPTION,
    SETTABLE_STATUSES,
    STATUSES,
    SubscriptionStore,
)
from service.webhooks.targets import MAX_URL, TargetPolicy, check_url

if TYPE_CHECKING:
    from service.webhooks.queues import DeliveryQueues


blp = Blueprint(
    "subscriptions",
    __name__,
    url_prefix="/v1/subscriptions",
    description=(
        "Webhook subscriptions (scope `admin`): signed change events (Standard Webhooks) to a "
        "support tool's URL. The secret is shown once, at creation and rotation."
    ),
)

_TYPES = (*EVENT_TYPES, ALL)


# http(s), a host, no whitespace or control characters, no user name or password: the shape
# service/webhooks/targets.py checks before it resolves the host.
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s\x00-\x1f@/?#]+([/?#][^\s\x00-\x1f]*)?$"


def _url_field(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        validate=[ma.validate.Length(1, MAX_URL), ma.validate.Regexp(URL_PATTERN)],
        metadata={
            "description": "http(s) URL the events are POSTed to; its host must resolve to "
            "an address the SSRF guard allows (422 otherwise, see docs/webhooks.md)",
            "example": "https://helpdesk.example.com/hooks/rapport",
        },
        **kwargs,
    )


def _types_field(**kwargs: Any) -> ma.fields.List:
    return ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(_TYPES)),
        validate=ma.validate.Length(1, len(_TYPES)),
        metadata={
            "description": 'event types wanted, or ["*"] for all',
            "example": ["profile.updated", "profile.erased"],
        },
        **kwargs,
    )


class SubscriptionSchema(ma.Schema):
    id = ma.fields.String(metadata={"example": "sub_3f2a9c1d0b7e4a65"})
    url = ma.fields.String()
    event_types = ma.fields.List(ma.fields.String())
    include_pii = ma.fields.Boolean()
    status = ma.fields.String(metadata={"description": " | ".join(STATUSES)})
    disabled_reason = ma.fields.String(allow_none=True, metadata={"example": "410 Gone"})
    description = ma.fields.String()
    created_at = ma.fields.Float(metadata={"description": "Unix time"})
    updated_at = ma.fields.Float(metadata={"description": "Unix time"})


class SubscriptionDetailSchema(SubscriptionSchema):
    pending = ma.fields.Dict(
        metadata={"description": "Delivery backlog: customers blocked and events queued"}
    )


class SubscriptionSecretSchema(SubscriptionSchema):
    secret = ma.fields.String(
        metadata={
            "description": "Signing secret (`whsec_…`); not shown again.",
            "example": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        }
    )


class SubscriptionListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(SubscriptionSchema))


class SubscriptionCreateSchema(StrictSchema):
    url = _url_field(required=True)
    event_types = _types_field(required=True)
    include_pii = StrictBoolean(load_default=False)
    description = ma.fields.String(load_default="", validate=ma.validate.Length(0, MAX_DESCRIPTION))
    status = ma.fields.String(load_default="active", validate=ma.validate.OneOf(SETTABLE_STATUSES))


class SubscriptionPatchSchema(StrictSchema):
    spec_extras = {"minProperties": 1}  # an empty change is a 422

    url = _url_field()
    event_types = _types_field()
    include_pii = StrictBoolean()
    description = ma.fields.String(validate=ma.validate.Length(0, MAX_DESCRIPTION))
    status = ma.fields.String(
        validate=ma.validate.OneOf(SETTABLE_STATUSES),
        metadata={"description": "`active` also re-activates a disabled subscription"},
    )


class LimitQuerySchema(StrictSchema):
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(1, 1000))


class DeliveryLogQuerySchema(LimitQuerySchema):
    before = ma.fields.String(
        validate=ma.validate.Length(1, 64),
        metadata={"description": "Only entries older than this log cursor (`next` of a page)"},
    )


class DeliverySchema(ma.Schema):
    id = ma.fields.String(metadata={"description": "Log cursor: pass as `before` for older ones"})
    webhook_id = ma.fields.String(metadata={"example": "msg_3_1733241600000-0"})
    type = ma.fields.String()
    customer_id = ma.fields.String(allow_none=True)
    status = ma.fields.String(metadata={"description": "delivered | failed | dead | skipped"})
    attempts = ma.fields.Integer()
    http_status = ma.fields.Integer(allow_none=True)
    error = ma.fields.String(allow_none=True)
    at = ma.fields.Float(metadata={"description": "Unix time"})


class DeliveryLogSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DeliverySchema))


class DeadLetterListSchema(ma.Schema):
    items = ma.fields.List(
        ma.fields.Dict(
            metadata={
                "description": "The queued event with attempts, last_error, first_attempt_at, "
                "died_at"
            }
        )
    )


class RedeliverSchema(StrictSchema):
    webhook_ids = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(1, 200)),
        validate=ma.validate.Length(1, 10_000),
        metadata={"description": "Dead letters to send again; omit for all of them"},
    )


class RedeliveredSchema(ma.Schema):
    count = ma.fields.Integer(metadata={"description": "Events put back in their queues"})


def _store() -> SubscriptionStore:
    st = state()
    return SubscriptionStore(st.redis, st.keys)


def _queues() -> DeliveryQueues:
    from service.webhooks.queues import DeliveryQueues  # the delivery engine's room

    st = state()
    return DeliveryQueues(st.redis, st.keys)


def _check_url(url: str) -> None:
    check_url(url, TargetPolicy.from_config(state().config))


def _admin_change(change: str, subscription_id: str, **details: Any) -> None:
    admin_change(change, subscription_id=subscription_id, **details)


@blp.audit("admin")
@blp.route("")
class Subscriptions(MethodView):
    @blp.not_audited("lists subscriptions: no profile data, no change")
    @blp.auth("admin")
    @blp.response(200, SubscriptionListSchema)
    def get(self):
        """Every subscription (never their secrets), oldest first."""
        return {"items": [s.public() for s in _store().list()]}

    @blp.auth("admin")
    @blp.arguments(SubscriptionCreateSchema)
    @blp.response(201, SubscriptionSecretSchema)
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body):
        """Subscribe a URL to change events; the answer holds the signing secret, once. Only
        changes accepted after this call are delivered to it."""
        _check_url(body["url"])
        sub = _store().create(
            body["url"],
            body["event_types"],
            include_pii=body["include_pii"],
            description=body["description"],
            status=body["status"],
        )
        _admin_change("subscription_created", sub.id, after=sub.public())
        return sub.record()


@blp.audit("admin")
@blp.route("/<string:subscription_id>")
class SubscriptionItem(MethodView):
    @blp.not_audited("reads a subscription: no profile data, no change")
    @blp.auth("admin")
    @blp.response(200, SubscriptionDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, subscription_id):
        """One subscription (no secret) with its delivery backlog."""
        sub = _store().get(subscription_id)
        return {**sub.public(), "pending": _queues().pending(subscription_id)}

    @blp.auth("admin")
    @blp.arguments(SubscriptionPatchSchema)
    @blp.response(200, SubscriptionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def patch(self, body, subscription_id):
        """Change the URL, event types, PII, description or status (active or paused;
        `active` re-activates a subscription the worker disabled after a 410)."""
        if not body:
            raise InvalidInput(
                "give url, event_types, include_pii, description or status", field="status"
            )
        store = _store()
        before = store.get(subscription_id)
        if "url" in body:
            _check_url(body["url"])
        sub = store.update(subscription_id, **body)
        _admin_change("subscription_updated", sub.id, before=before.public(), after=sub.public())
        return sub.public()

    @blp.auth("admin")
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, subscription_id):
        """Delete a subscription with its queues, dead letters and delivery log."""
        _store().delete(subscription_id)
        _queues().purge(subscription_id)
        _admin_change("subscription_deleted", subscription_id)


@blp.audit("admin")
@blp.route("/<string:subscription_id>/rotate-secret")
class SubscriptionSecret(MethodView):
    @blp.auth("admin")
    @blp.response(200, SubscriptionSecretSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, subscription_id):
        """A new signing secret, shown once; the old one stops signing at once."""
        sub = _store().rotate_secret(subscription_id)
        _admin_change("subscription_secret_rotated", sub.id)
        return sub.record()


@blp.not_audited("delivery log (admin): webhook ids and outcomes, no profile data")
@blp.route("/<string:subscription_id>/deliveries")
class SubscriptionDeliveries(MethodView):
    @blp.auth("admin")
    @blp.arguments(DeliveryLogQuerySchema, location="query")
    @blp.response(200, DeliveryLogSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, query, subscription_id):
        """The delivery log, newest first: status, attempts, HTTP status, last error."""
        _store().get(subscription_id)
        items = _queues().log(subscription_id, limit=query["limit"], before=query.get("before"))
        return {"items": items}


@blp.not_audited("dead letters (admin): queued events, no profile change")
@blp.route("/<string:subscription_id>/dead-letters")
class SubscriptionDeadLetters(MethodView):
    @blp.auth("admin")
    @blp.arguments(LimitQuerySchema, location="query")
    @blp.response(200, DeadLetterListSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, query, subscription_id):
        """Events whose retries ran out, with their attempts and last error."""
        _store().get(subscription_id)
        return {"items": _queues().dead_letters(subscription_id, limit=query["limit"])}


@blp.audit("admin")
@blp.route("/<string:subscription_id>/redeliver")
class SubscriptionRedeliver(MethodView):
    @blp.auth("admin")
    @blp.arguments(RedeliverSchema)
    @blp.response(202, RedeliveredSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body, subscription_id):
        """Put dead letters back at the end of their customer's queue, due now (the listed
        `webhook_ids`, or every one); the webhook ids stay the same."""
        _store().get(subscription_id)
        count = _queues().redeliver(subscription_id, body.get("webhook_ids"))
        _admin_change("subscription_redeliver", subscription_id, count=count)
        return {"count": count}
