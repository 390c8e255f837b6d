"""``POST /v1/events``: a batch of customer interactions with per-item results.

Each item is ``{message_id, type, customer: {profile_id | email | phone | external_id}, at,
...payload}`` (payloads in ``profiles.activity_input.normalise_event``; the batch is recorded by
``profiles/event_batch.py``). An item is
``accepted``, a ``duplicate`` (its message id was seen for that customer within 7 days) or
``rejected`` with a reason and the field at fault; one bad item never rejects the batch. The
request is 422 only when the envelope is wrong (no ``events`` list, more than 500 items).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, jsonify
from flask.views import MethodView

from core.errors import InvalidInput
from profiles.activity_input import currencies, parse_time
from service.api import event_schemas
from service.errors import FieldErrorSchema, field_errors
from service.extensions import Blueprint
from service.schemas import StrictSchema
from service.state import state

MAX_BATCH = 500


class _EventsBlueprint(Blueprint):
    def register_views_in_doc(self, api, app, spec, *, name, parameters):
        event_schemas.register(spec)  # the item schemas per event type, as components
        super().register_views_in_doc(api, app, spec, name=name, parameters=parameters)


blp = _EventsBlueprint(
    "events",
    __name__,
    url_prefix="/v1/events",
    description="Interactions (view, add_to_cart, purchase, support_contact) in batches of up "
    f"to {MAX_BATCH}, de-duplicated by `message_id` per customer for 7 days.",
)


class EventBatchSchema(StrictSchema):
    events = ma.fields.List(
        ma.fields.Raw(  # any JSON value: an item that is not an event is rejected per item
            allow_none=True,  # null too: it is not an event either
            metadata={
                "description": "An `Event` (one schema per `type`: view, add_to_cart, purchase, "
                "support_contact); an item that is not one gets a per-item rejection",
                **event_schemas.EVENT_ITEM,
            },
        ),
        required=True,
        validate=ma.validate.Length(1, MAX_BATCH),
    )


class EventResultSchema(ma.Schema):
    index = ma.fields.Integer()
    message_id = ma.fields.String(allow_none=True)
    status = ma.fields.String(metadata={"enum": ["accepted", "duplicate", "rejected"]})
    customer_id = ma.fields.String(allow_none=True)
    reason = ma.fields.String(metadata={"description": "The first of `errors`"})
    field = ma.fields.String(allow_none=True, metadata={"description": "The first of `errors`"})
    errors = ma.fields.List(
        ma.fields.Nested(FieldErrorSchema),
        metadata={"description": "A rejected item: every field at fault, as in a 422"},
    )


class EventBatchResultSchema(ma.Schema):
    accepted = ma.fields.Integer()
    duplicate = ma.fields.Integer()
    rejected = ma.fields.Integer()
    results = ma.fields.List(ma.fields.Nested(EventResultSchema))


@blp.route("")
class Events(MethodView):
    @blp.audit("update")
    @blp.auth("profiles:write")
    @blp.arguments(EventBatchSchema)
    @blp.response(200, EventBatchResultSchema, final=True)
    def post(self, body: dict[str, Any]) -> Response:
        """Record a batch of events; every item gets its own result."""
        items = body["events"]
        now = state().events.activity.clock()  # the clock the domain checks times against
        faults = {i: errs for i, item in enumerate(items) if (errs := item_faults(item, now))}
        # an item at fault goes to the batch as null, so it keeps its place and is rejected
        results = state().events.record([None if i in faults else e for i, e in enumerate(items)])
        for i, result in enumerate(results["results"]):
            if i in faults:
                errors = faults[i]
                result.update(reason=errors[0]["message"], field=errors[0]["field"])
            elif result["status"] == "rejected":
                errors = [_error(result.get("field"), result["reason"])]
            else:
                continue
            result["errors"] = errors
        # The results are built in EventBatchResultSchema's shape (it documents them): dumping
        # 500 of them through marshmallow was a sixth of a full batch's CPU time.
        return jsonify(results)


def item_faults(item: Any, now: float) -> list[dict[str, str]]:
    """Every field at fault of an event of a known type (its schema in ``event_schemas``, the
    time and the currency as the domain reads them); ``[]`` when there is none, or when the
    item is no event of a known type (the domain then says why, in its result)."""
    kind = item.get("type") if isinstance(item, dict) else None
    if kind not in event_schemas.EVENT_SCHEMAS:
        return []
    _, schema = event_schemas.EVENT_SCHEMAS[kind]
    rest = {k: v for k, v in item.items() if k != "at"}
    errors = field_errors(schema(exclude=("at",)).validate(rest))
    try:  # a number (Unix seconds) or an ISO 8601 string: the domain's reading
        if item.get("at") is None:
            raise InvalidInput("is required", field="at")
        parse_time(item["at"], "at", now)
    except InvalidInput as exc:
        errors.append(_error("at", exc.detail))
    currency = item.get("currency")
    if isinstance(currency, str) and currency not in currencies():
        errors.append(_error("currency", "must be an ISO 4217 currency code, e.g. EUR"))
    return sorted(errors, key=lambda e: e["field"])


def _error(field: str | None, message: str) -> dict[str, str]:
    return {"field": field or "", "location": "json", "message": message}
