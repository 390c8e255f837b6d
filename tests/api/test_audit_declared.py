"""Every ``/v1`` route declares its audit (``@blp.audit`` / ``@blp.not_audited``), and no route
holding profile data is declared not audited (service/auditing.py)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.views import MethodView

from service.auditing import (
    PROFILE_BODY_RULES,
    declaration_of,
    undeclared_routes,
    wrongly_unaudited,
)
from service.extensions import Blueprint, RapportApi


def test_every_v1_route_declares_its_audit(app):
    assert undeclared_routes(app) == []
    assert wrongly_unaudited(app) == []
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert PROFILE_BODY_RULES <= rules  # the body-borne rules the check names still exist
    # the audit hook runs under /v1 only: nothing outside it may take a profile or merge id
    # but the console's deep link, a static page whose data comes from the audited /v1 API
    outside = {
        r for r in rules if not r.startswith("/v1/") and ("customer_id" in r or "merge_id" in r)
    }
    assert outside <= {"/console/customers/<string:customer_id>"}


def test_the_feedback_posts_and_profile_routes_are_audited(app):
    def action(rule: str, method: str) -> str | None:
        (found,) = [r for r in app.url_map.iter_rules() if r.rule == rule]
        declared = declaration_of(app.view_functions[found.endpoint], method)
        assert declared is not None
        return declared.action

    nba = "/v1/profiles/<string:customer_id>/next-best-actions"
    assert action(f"{nba}/<string:action_id>/feedback", "POST") == "update"
    assert action("/v1/profiles/<string:customer_id>/product-feedback", "POST") == "update"
    assert action("/v1/profiles/<string:customer_id>", "DELETE") == "erase"
    assert action("/v1/merges/<string:merge_id>/unmerge", "POST") == "unmerge"
    assert action("/v1/admin/keys", "POST") is None


def _probe_app() -> Flask:
    app = Flask("probe")
    app.config.update(API_TITLE="probe", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    api = RapportApi(app)
    blp = Blueprint("probe", __name__, url_prefix="/v1")

    @blp.route("/profiles/<string:customer_id>/notes")
    class Notes(MethodView):
        @blp.audit("read")
        def get(self, customer_id):
            return {}

        def post(self, customer_id):  # forgot its declaration
            return {}

        @blp.not_audited("wrongly: this route holds a customer id")
        def delete(self, customer_id):
            return {}

    @blp.not_audited("no profile data")
    @blp.route("/weather")
    class Weather(MethodView):
        def get(self):
            return {}

        @blp.audit("update")  # a method's declaration wins over its class's
        def put(self):
            return {}

    @blp.route("/undeclared")
    class Undeclared(MethodView):
        def get(self):
            return {}

    api.register_blueprint(blp)
    return app


def test_the_check_catches_a_missing_or_wrong_declaration():
    app = _probe_app()
    assert undeclared_routes(app) == [
        "POST /v1/profiles/<string:customer_id>/notes",
        "GET /v1/undeclared",
    ]
    assert wrongly_unaudited(app) == ["DELETE /v1/profiles/<string:customer_id>/notes"]
    views = {rule.rule: app.view_functions[rule.endpoint] for rule in app.url_map.iter_rules()}
    weather = views["/v1/weather"]
    assert declaration_of(weather, "GET").reason == "no profile data"
    assert declaration_of(weather, "PUT").action == "update"
    assert declaration_of(views["/v1/profiles/<string:customer_id>/notes"], "HEAD") is None


def test_a_declaration_names_a_known_action_or_a_reason():
    blp = Blueprint("probe", __name__)
    with pytest.raises(ValueError, match="unknown audit action"):
        blp.audit("peek")
    with pytest.raises(ValueError, match="say why"):
        blp.not_audited(" ")
