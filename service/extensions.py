"""flask-smorest glue: the :class:`RapportApi` (errors documented as problem+json), the
:class:`Blueprint` with :meth:`Blueprint.auth`, and this process's product cache for serving.

The app's state (config, Redis, stores) is ``service/state.py``'s.
"""

from __future__ import annotations

import http
from typing import Any

import flask_smorest
from flask import current_app
from flask_smorest.utils import prepare_response

from recommend.catalog.products import CachedCatalog, Catalog
from service.access import require_scope
from service.errors import PROBLEM_MIME, ProblemSchema
from service.state import state


def catalog_cache():
    """This process's cache of product documents for serving
    (:class:`recommend.catalog.CachedCatalog`): exact in tests, at most 1 s behind otherwise."""
    app = current_app
    cache = app.extensions.get("rapport.catalog_cache")
    if cache is None:
        st = state()
        cache = CachedCatalog(
            Catalog(st.redis, st.keys), check_seconds=0.0 if st.config.testing else 1.0
        )
        app.extensions["rapport.catalog_cache"] = cache
    return cache


class RapportApi(flask_smorest.Api):
    """flask-smorest's Api, documenting errors as ``application/problem+json``.

    Errors themselves are handled by ``service.errors`` (registered on the app), so the
    flask-smorest handler is not installed.
    """

    ERROR_SCHEMA = ProblemSchema

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
    """flask-smorest's Blueprint plus :meth:`auth`, which guards and documents a scope."""

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
