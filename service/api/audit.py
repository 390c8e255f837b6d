"""Admin: the audit log (who read, changed, exported, merged, unmerged or erased which profile)."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from profiles.audit import ACTIONS
from service.extensions import Blueprint
from service.schemas import StrictSchema
from service.state import state

blp = Blueprint(
    "audit",
    __name__,
    url_prefix="/v1/admin/audit",
    description="The audit log (scope `admin`): ids only, newest first.",
)


class AuditQuerySchema(StrictSchema):
    profile_id = ma.fields.String(validate=ma.validate.Length(1, 64))
    action = ma.fields.String(
        validate=ma.validate.OneOf(ACTIONS),
        metadata={"description": "Only entries of this action (`admin`: admin changes)"},
    )
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(1, 1000))


class AuditEntrySchema(ma.Schema):
    id = ma.fields.String(metadata={"description": "Stream entry id"})
    at = ma.fields.Float(metadata={"description": "Unix time"})
    action = ma.fields.String(metadata={"enum": list(ACTIONS)})
    profile_id = ma.fields.String()
    key_id = ma.fields.String()
    key_name = ma.fields.String()
    route = ma.fields.String(
        metadata={"description": "Method and route template (`admin` entries: the path)"}
    )
    status = ma.fields.Integer()
    request_id = ma.fields.String()


class AuditListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AuditEntrySchema))


@blp.not_audited("the audit log reader (admin): reads entries, not profiles")
@blp.route("")
class Audit(MethodView):
    @blp.auth("admin")
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditListSchema)
    def get(self, query):
        """Audit entries, newest first, optionally for one profile id."""
        items = state().audit.read(
            query.get("profile_id"), query["limit"], action=query.get("action")
        )
        return {"items": items}
