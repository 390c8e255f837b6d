"""``POST /v1/ingest/segment``: Segment-spec messages (one, or ``{"batch": [...]}`` of up to 500)
with per-item results, as a Segment or RudderStack webhook destination sends them.

The mapping is ``profiles/segment.py``'s and the writes ``profiles/segment_ingest.py``'s; see
docs/integrations.md. Authentication: the API key as a bearer token, or as the user name of
HTTP Basic (what a Segment webhook destination sends). The request is 422 only when the
envelope is wrong (not an object, an empty or oversize ``batch``).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, jsonify
from flask.views import MethodView

from core.errors import InvalidInput
from service.access import current_key
from service.extensions import Blueprint
from service.state import state

MAX_BATCH = 500

blp = Blueprint(
    "ingest",
    __name__,
    url_prefix="/v1/ingest",
    description="Events from a Segment-spec pipeline (Segment, RudderStack, Jitsu): identify, "
    f"track, page, screen, group, alias; one message or a `batch` of up to {MAX_BATCH}. "
    "Authenticate with the API key as a bearer token or as the HTTP Basic user name "
    "(empty password), as a Segment webhook destination sends it.",
)


class SegmentBodySchema(ma.Schema):
    """A Segment message, or ``{"batch": [message, ...]}``; messages are checked one by one."""

    class Meta:
        unknown = ma.INCLUDE

    batch = ma.fields.List(
        ma.fields.Raw(allow_none=True),  # null is no message either: rejected in its result
        validate=ma.validate.Length(1, MAX_BATCH),
        metadata={"description": f"1 to {MAX_BATCH} Segment messages"},
    )
    type = ma.fields.Raw(
        metadata={"description": "identify, track, page, screen, group or alias (one message)"}
    )


class SegmentResultSchema(ma.Schema):
    index = ma.fields.Integer()
    message_id = ma.fields.String(allow_none=True)
    status = ma.fields.String(metadata={"enum": ["accepted", "duplicate", "ignored", "rejected"]})
    customer_id = ma.fields.String(allow_none=True)
    reason = ma.fields.String()
    field = ma.fields.String(allow_none=True)
    note = ma.fields.String(metadata={"description": "What was done or not stored, and why"})


class SegmentBatchResultSchema(ma.Schema):
    accepted = ma.fields.Integer()
    duplicate = ma.fields.Integer()
    ignored = ma.fields.Integer()
    rejected = ma.fields.Integer()
    results = ma.fields.List(ma.fields.Nested(SegmentResultSchema))


@blp.route("/segment")
class SegmentIngest(MethodView):
    @blp.audit("update")
    @blp.doc(security=[{"bearerAuth": []}, {"basicAuth": []}])  # above auth: it wins
    @blp.auth("profiles:write")
    @blp.arguments(SegmentBodySchema)
    @blp.response(200, SegmentBatchResultSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """Apply Segment messages; every message gets its own result."""
        if "batch" in body:
            messages = body["batch"]
            if not 1 <= len(messages) <= MAX_BATCH:
                raise InvalidInput(f"must hold 1 to {MAX_BATCH} messages", field="batch")
        else:
            messages = [body]
        key = current_key()
        results = state().segment.ingest(messages, actor=f"apikey:{key.key_id} ({key.name})")
        # built in SegmentBatchResultSchema's shape (it documents them), as POST /v1/events does
        return jsonify(results)
