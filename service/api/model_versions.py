"""Model versions (ops, scope `admin`): their metrics, the active one, activate, roll back."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from service.extensions import Blueprint
from service.state import state

blp = Blueprint(
    "models",
    __name__,
    url_prefix="/v1/models",
    description="Model versions (scope `admin`). Workers pick up an activation within seconds.",
)


class ModelVersionSchema(ma.Schema):
    version = ma.fields.String()
    created_at = ma.fields.Float()
    registered_at = ma.fields.Float()
    metrics = ma.fields.Dict(
        metadata={"description": "{model, popularity, ...: {precision, recall, auc, coverage}}"}
    )
    params = ma.fields.Dict()
    counts = ma.fields.Dict()
    train_seconds = ma.fields.Float(allow_none=True)
    manifest_sha256 = ma.fields.String()
    active = ma.fields.Boolean()
    previous = ma.fields.Boolean()


class HistorySchema(ma.Schema):
    version = ma.fields.String()
    action = ma.fields.String()
    at = ma.fields.Float()
    previous = ma.fields.String(allow_none=True)
    reason = ma.fields.String()


class ModelListSchema(ma.Schema):
    active = ma.fields.String(allow_none=True)
    items = ma.fields.List(ma.fields.Nested(ModelVersionSchema))
    history = ma.fields.List(ma.fields.Nested(HistorySchema))


class LoadedSchema(ma.Schema):
    state = ma.fields.String(metadata={"example": "loaded: 20261122T063400Z-1a2b"})
    version = ma.fields.String(allow_none=True)
    loaded_at = ma.fields.Float(allow_none=True)
    last_error = ma.fields.String()


class ActiveSchema(ma.Schema):
    active = ma.fields.Nested(ModelVersionSchema, allow_none=True)
    serving = ma.fields.Nested(LoadedSchema, metadata={"description": "This worker's model."})


@blp.not_audited("model admin: no profile data")
@blp.route("")
class Models(MethodView):
    @blp.auth("admin")
    @blp.response(200, ModelListSchema)
    def get(self):
        """Registered versions (newest first) with metrics, and the activation history."""
        registry = state().models.registry
        return {
            "active": registry.active_version(),
            "items": registry.list(),
            "history": registry.history(),
        }


@blp.not_audited("model admin: no profile data")
@blp.route("/active")
class ActiveModel(MethodView):
    @blp.auth("admin")
    @blp.response(200, ActiveSchema)
    def get(self):
        """The active version, and what this worker is serving."""
        holder = state().models
        return {"active": holder.registry.active(), "serving": holder.status()}


@blp.not_audited("model admin: no profile data")
@blp.route("/<string:version>/activate")
class ActivateModel(MethodView):
    @blp.auth("admin")
    @blp.response(200, HistorySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, version):
        """Activate a version (promote, or roll back to any version). Its artifact is
        verified first: a corrupt one is refused with 409 and nothing changes."""
        return state().models.registry.activate(version, action="activate", reason="admin API")


@blp.not_audited("model admin: no profile data")
@blp.route("/rollback")
class Rollback(MethodView):
    @blp.auth("admin")
    @blp.response(200, HistorySchema)
    @blp.alt_response(409, response="CONFLICT")
    def post(self):
        """Activate the version that was active before the current one."""
        return state().models.registry.rollback()
