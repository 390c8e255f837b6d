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

from service.api import event_schemas
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
    reason = ma.fields.String()
    field = ma.fields.String(allow_none=True)


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
        results = state().events.record(body["events"])
        # The results are built in EventBatchResultSchema's shape (it documents them): dumping
        # 500 of them through marshmallow was a sixth of a full batch's CPU time.
        return jsonify(results)
