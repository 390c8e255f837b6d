"""``POST /v1/events``: a batch of customer interactions with per-item results.

Each item is ``{message_id, type, customer: {profile_id | email | phone | external_id}, at,
...payload}`` (payloads in ``profiles.activity_input.normalise_event``). An item is
``accepted``, a ``duplicate`` (its message id was seen for that customer within 7 days) or
``rejected`` with a reason and the field at fault; one bad item never rejects the batch. The
request is 422 only when the envelope is wrong (no ``events`` list, more than 500 items).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from flask import Response, jsonify
from flask.views import MethodView

from core.errors import InvalidInput, NotFound, RapportError
from profiles.activity_input import normalise_event
from service.extensions import Blueprint
from service.schemas import StrictSchema
from service.state import state

MAX_BATCH = 500
CUSTOMER_FIELDS = ("profile_id", "email", "phone", "external_id")

blp = Blueprint(
    "events",
    __name__,
    url_prefix="/v1/events",
    description="Interactions (view, add_to_cart, purchase, support_contact) in batches of up "
    f"to {MAX_BATCH}, de-duplicated by `message_id` per customer for 7 days.",
)


class EventBatchSchema(StrictSchema):
    events = ma.fields.List(
        ma.fields.Raw(  # any JSON value: an item that is not an object is rejected per item
            metadata={
                "description": "{message_id, type, customer: {profile_id|email|phone|"
                "external_id}, at, ...payload}; an item that is not such an object gets a "
                "per-item rejection",
            }
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


def _customer_ref(raw: Any) -> tuple[str, str]:
    """The ``(field, value)`` an item's ``customer`` names (raises InvalidInput with a field)."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("must be an object with one of: " + ", ".join(CUSTOMER_FIELDS),
                           field="customer")  # fmt: skip
    given = [k for k in raw if raw[k] is not None]
    unknown = [k for k in given if k not in CUSTOMER_FIELDS]
    if unknown:
        raise InvalidInput("unknown field", field=f"customer.{unknown[0]}")
    if len(given) != 1:
        raise InvalidInput("give exactly one of: " + ", ".join(CUSTOMER_FIELDS), field="customer")
    name = given[0]
    value = raw[name]
    if not isinstance(value, str) or not 1 <= len(value) <= 320:
        raise InvalidInput("must be a string of 1 to 320 characters", field=f"customer.{name}")
    return name, value


def _customers(refs: Mapping[int, tuple[str, str]]) -> dict[int, str | RapportError]:
    """Per item index, the live profile id its customer ref names, or the error rejecting it
    (InvalidInput / NotFound with a field).

    ``profile_id`` refs are resolved together (``ProfileStore.resolve_many``: one round trip
    for the batch). ``email`` / ``phone`` / ``external_id`` refs keep the per-item look-up
    (the identity's owner, then its profile; batching it would duplicate that path for little
    gain in id-keyed feeds), once per distinct value."""
    profiles = state().profiles
    live = profiles.resolve_many([v for name, v in refs.values() if name == "profile_id"])
    looked_up: dict[tuple[str, str], str | RapportError] = {}
    out: dict[int, str | RapportError] = {}
    for i, (name, value) in refs.items():
        if name == "profile_id":
            cid = live[value]
            out[i] = cid or NotFound("no profile with this identity", field=f"customer.{name}")
            continue
        if (name, value) not in looked_up:
            try:
                looked_up[name, value] = profiles.lookup_input(name, value).id
            except InvalidInput as exc:
                looked_up[name, value] = InvalidInput(exc.detail, field=f"customer.{name}")
            except NotFound:
                looked_up[name, value] = NotFound(
                    "no profile with this identity", field=f"customer.{name}"
                )
        out[i] = looked_up[name, value]
    return out


@blp.route("")
class Events(MethodView):
    @blp.auth("profiles:write")
    @blp.arguments(EventBatchSchema)
    @blp.response(200, EventBatchResultSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """Record a batch of events; every item gets its own result."""
        activity = state().activity
        now = activity.clock()
        results: list[dict[str, Any]] = []
        parsed: dict[int, dict[str, Any]] = {}
        refs: dict[int, tuple[str, str]] = {}
        for i, item in enumerate(body["events"]):
            mid = item.get("message_id") if isinstance(item, Mapping) else None
            results.append({"index": i, "message_id": mid if isinstance(mid, str) else None})
            try:
                if not isinstance(item, Mapping):
                    raise InvalidInput("an event must be an object")
                if "customer" not in item:
                    raise InvalidInput("is required", field="customer")
                event = normalise_event({k: v for k, v in item.items() if k != "customer"}, now)
                refs[i] = _customer_ref(item["customer"])
            except (InvalidInput, NotFound) as exc:
                results[i].update(status="rejected", reason=exc.detail, field=exc.field)
                continue
            parsed[i] = event
        by_customer: dict[str, list[int]] = {}
        for i, cid in _customers(refs).items():
            if isinstance(cid, RapportError):
                results[i].update(status="rejected", reason=cid.detail, field=cid.field)
                continue
            results[i]["customer_id"] = cid
            by_customer.setdefault(cid, []).append(i)
        outcomes = activity.record_events_many(
            {cid: [parsed[i] for i in indexes] for cid, indexes in by_customer.items()}
        )
        for cid, indexes in by_customer.items():
            for i, outcome in zip(indexes, outcomes[cid], strict=True):
                if outcome == "conflict":
                    results[i].update(
                        status="rejected",
                        reason="the order id is already recorded with another body",
                        field="order_id",
                    )
                elif outcome == "invalid":
                    results[i].update(
                        status="rejected",
                        reason="the customer's total spend would overflow",
                        field="lines",
                    )
                else:
                    results[i]["status"] = outcome
        counts = {s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate")}
        counts["rejected"] = sum(r["status"] == "rejected" for r in results)
        # The results are built in EventBatchResultSchema's shape (it documents them): dumping
        # 500 of them through marshmallow was a sixth of a full batch's CPU time.
        return jsonify({**counts, "results": results})
