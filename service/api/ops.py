"""Operations: liveness, readiness, Prometheus metrics and the offline API docs page."""

from __future__ import annotations

import marshmallow as ma
import redis
from flask import Blueprint as FlaskBlueprint
from flask import Response, current_app, render_template
from flask.views import MethodView

from service import metrics
from service.errors import problem
from service.extensions import Blueprint
from service.state import state

blp = Blueprint("ops", __name__, description="Health, readiness and metrics (no key needed).")
plain = FlaskBlueprint("ops_plain", __name__)


class HealthSchema(ma.Schema):
    status = ma.fields.String(metadata={"example": "ok"})


class ReadySchema(ma.Schema):
    status = ma.fields.String(metadata={"example": "ready"})
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


@blp.not_audited("health check: no profile data")
@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self):
        """The process is alive (does not touch Redis)."""
        return {"status": "ok"}


@blp.not_audited("readiness check: no profile data")
@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self):
        """Ready to serve: Redis answers; ``checks.model`` names the loaded model version or
        ``fallback: popularity`` (both are ready)."""
        checks = {}
        try:
            state().redis.ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"unavailable: {exc.__class__.__name__}"
            return problem(
                503,
                "Redis does not answer.",
                title="Not ready",
                type_="urn:rapport:problem:not-ready",
                extensions={"checks": checks},
                headers={"Retry-After": str(state().config.retry_after)},
            )
        holder = state().models
        holder.ensure_started()
        checks["model"] = holder.status()["state"]
        return {"status": "ready", "checks": checks}


@plain.get("/metrics")
def prometheus_metrics():
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


@plain.get("/docs")
def docs_page():
    """The API reference, rendered on the server from the OpenAPI document (no network)."""
    spec = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    return render_template("docs.html", spec=spec)
