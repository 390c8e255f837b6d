"""Admin: API keys over HTTP (the same store as ``rapport keys``)."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from service.auth import SCOPES
from service.extensions import Blueprint
from service.schemas import StrictSchema
from service.state import state

blp = Blueprint(
    "keys",
    __name__,
    url_prefix="/v1/admin/keys",
    description="API keys (scope `admin`). Secrets are shown once, at creation.",
)


class ApiKeySchema(ma.Schema):
    key_id = ma.fields.String()
    name = ma.fields.String()
    scopes = ma.fields.List(ma.fields.String())
    created_at = ma.fields.Float(metadata={"description": "Unix time"})


class ApiKeyCreateSchema(StrictSchema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))
    scopes = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(SCOPES)),
        required=True,
        validate=ma.validate.Length(min=1, max=len(SCOPES)),
    )


class ApiKeyCreatedSchema(ApiKeySchema):
    token = ma.fields.String(
        metadata={"description": "The secret; it is not stored and not shown again."}
    )


class ApiKeyListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ApiKeySchema))


@blp.not_audited("API-key admin: no profile data")
@blp.route("")
class ApiKeys(MethodView):
    @blp.auth("admin")
    @blp.response(200, ApiKeyListSchema)
    def get(self):
        """List API keys (never their secrets)."""
        return {"items": [k.public() for k in state().api_keys.list()]}

    @blp.auth("admin")
    @blp.arguments(ApiKeyCreateSchema)
    @blp.response(201, ApiKeyCreatedSchema)
    def post(self, body):
        """Create an API key."""
        key, token = state().api_keys.create(body["name"], body["scopes"])
        return {**key.public(), "token": token}


@blp.not_audited("API-key admin: no profile data")
@blp.route("/<string:key_id>")
class ApiKeyItem(MethodView):
    @blp.auth("admin")
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, key_id):
        """Revoke an API key."""
        state().api_keys.revoke(key_id)
