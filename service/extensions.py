"""Extension state: the Redis client and stores live in ``app.extensions["rapport"]``.

Views reach them through :func:`state`; nothing here connects at import time.
"""

from __future__ import annotations

import http
from dataclasses import dataclass

import flask_smorest
import redis
from flask import current_app
from flask_smorest.utils import prepare_response

from profiles.activity import ActivityStore
from profiles.audit import AuditLog
from profiles.keys import Keys
from profiles.store import ProfileStore
from service.auth import ApiKeyStore, require_scope
from service.config import Config
from service.errors import PROBLEM_MIME, ProblemSchema


@dataclass
class RapportState:
    config: Config
    redis: redis.Redis
    keys: Keys
    api_keys: ApiKeyStore
    profiles: ProfileStore | None = None
    activity: ActivityStore | None = None
    audit: AuditLog | None = None  # service/hardening.py


def state() -> RapportState:
    return current_app.extensions["rapport"]


def redis_client() -> redis.Redis:
    return state().redis


def catalog_cache():
    """This process's cache of product documents for serving
    (:class:`recommend.catalog.CachedCatalog`): exact in tests, at most 1 s behind otherwise."""
    app = current_app
    cache = app.extensions.get("rapport.catalog_cache")
    if cache is None:
        from recommend.catalog.products import CachedCatalog, Catalog  # noqa: PLC0415

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
            response = {"description": status.phrase}
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
