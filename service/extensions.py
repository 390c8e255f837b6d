"""flask-smorest glue: the :class:`RapportApi` (errors documented as problem+json) and the
:class:`Blueprint` with :meth:`Blueprint.auth` and the audit declarations
(:meth:`Blueprint.audit`, :meth:`Blueprint.not_audited`).

The app's state (config, Redis, stores and services) is ``service/state.py``'s.
"""

from __future__ import annotations

import http
from typing import Any

import flask_smorest
import marshmallow as ma
from apispec import BasePlugin
from flask import current_app
from flask_smorest.utils import prepare_response

from service.access import require_scope
from service.auditing import declare_audit, declare_not_audited
from service.errors import PROBLEM_MIME, ProblemSchema
from service.json_body import BoundedJsonParser


class SpecExtrasPlugin(BasePlugin):
    """Adds a marshmallow schema's ``spec_extras`` (JSON Schema keywords marshmallow has no
    option for: ``minProperties``, ``anyOf``...) to its component, so a rule the schema's
    validator enforces is stated in the spec beside it."""

    def schema_helper(self, name: str, definition: dict, **kwargs: Any) -> dict | None:
        schema = kwargs.get("schema")
        cls = schema if isinstance(schema, type) else type(schema)
        return getattr(cls, "spec_extras", None)


class RapportApi(flask_smorest.Api):
    """flask-smorest's Api, documenting errors as ``application/problem+json``.

    Errors themselves are handled by ``service.errors`` (registered on the app), so the
    flask-smorest handler is not installed.
    """

    ERROR_SCHEMA = ProblemSchema

    def __init__(self, app: Any = None, **kwargs: Any) -> None:
        spec_kwargs = {"extra_plugins": [SpecExtrasPlugin()], **kwargs.pop("spec_kwargs", {})}
        super().__init__(app, spec_kwargs=spec_kwargs, **kwargs)

    def _register_error_handlers(self) -> None:  # one error path: see service/errors.py
        pass

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIME)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error (problem details)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIME)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint plus :meth:`auth`, which guards and documents a scope, and
    :meth:`audit` / :meth:`not_audited`, which every ``/v1`` view (method or class) carries.
    JSON bodies are parsed with their numbers bounded (``service/json_body.py``)."""

    ARGUMENTS_PARSER = BoundedJsonParser()

    def response(self, status_code: Any, schema: Any = None, *, final: bool = False, **kwargs: Any):
        """flask-smorest's ``response``; ``final=True`` when the view returns its document in
        the schema's final shape already, so it is sent as it is, without a second marshmallow
        pass (the spec is the same: the schema still documents it). Under ``testing`` the
        dump still runs and must give the same document, so the suite proves the shape."""
        if final and schema is not None:
            schema = _final_shape(schema)
        return super().response(status_code, schema, **kwargs)

    def auth(self, scope: str):
        """Require a bearer key with ``scope``; put it above ``arguments`` so 401/403 come first."""

        def decorator(func):
            wrapped = require_scope(scope)(func)
            wrapped = self.doc(
                security=[{"bearerAuth": []}],
                **{"x-required-scope": scope},
            )(wrapped)
            wrapped = self.alt_response(401, response="UNAUTHORIZED")(wrapped)
            wrapped = self.alt_response(403, response="FORBIDDEN")(wrapped)
            return wrapped

        return decorator

    @staticmethod
    def audit(action: str):
        """Audit the view's successful answers as ``action`` (``profiles.audit.ACTIONS``), for
        the profile ids in the URL and the body (``service/auditing.py``); not in the spec."""
        return declare_audit(action)

    @staticmethod
    def not_audited(reason: str):
        """Declare the view (method or ``MethodView`` class) not audited, saying why."""
        return declare_not_audited(reason)


def _final_shape(schema: Any) -> ma.Schema:
    """An instance of ``schema`` whose ``dump`` hands the document back as it is (checked
    against the real dump when the app is ``testing``). An instance, not a subclass, so
    apispec documents the same component."""
    instance = schema() if isinstance(schema, type) else schema
    real_dump = instance.dump

    def dump(obj: Any, *, many: bool | None = None) -> Any:
        if current_app.testing:
            dumped = real_dump(obj, many=many)
            if dumped != obj:
                raise AssertionError(
                    f"{type(instance).__name__}: the view's document is not in final shape"
                )
        return obj

    instance.dump = dump
    return instance
