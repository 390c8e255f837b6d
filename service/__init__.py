"""Rapport: the Flask application factory."""

from __future__ import annotations

import time
from collections.abc import Mapping

import redis as redis_lib
from flask import Flask, g, request

from service import errors, hardening, metrics
from service.config import Config
from service.extensions import RapportApi
from service.logs import configure_logging, request_id
from service.redis_connect import connect as connect_redis
from service.state import EXTENSION
from service.wsgi import ChunkedBodyLimit

__all__ = ["create_app", "Config"]

API_VERSION = "1.0.0"
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def create_app(
    config: Config | Mapping[str, object] | None = None, *, redis: redis_lib.Redis | None = None
) -> Flask:
    """Build the app. ``config``: a :class:`Config`, or overrides applied on top of the
    environment. ``redis``: a client to use instead of connecting to ``config.redis_url``."""
    if config is None:
        config = Config.from_env()
    elif not isinstance(config, Config):
        config = Config.from_env(None, **dict(config))
    configure_logging(config.log_level)

    app = Flask(__name__)
    app.config.update(_flask_config(config))
    # One server, Sentinel or Cluster, chosen by the URL's scheme (service/redis_connect.py).
    client = redis or connect_redis(config.effective_redis_url(), timeout=config.redis_timeout)

    # The composition root and the views pull in recommend.model (numpy, scipy, LightFM: about
    # half a second): imported when an app is built, so `import service` (every CLI command)
    # stays quick.
    from service.api import register_blueprints
    from service.wiring import build_state

    app.extensions[EXTENSION] = build_state(config, client)

    app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, config.max_body_bytes)  # type: ignore[method-assign]
    api = RapportApi(app)
    errors.register_error_handlers(app)
    _register_request_hooks(app)
    register_blueprints(app, api)
    hardening.init_app(app, api)  # limits, PII masking, audit, CORS, query/JSON guards
    return app


def _flask_config(config: Config) -> dict[str, object]:
    return {
        "TESTING": config.testing,
        "MAX_CONTENT_LENGTH": config.max_body_bytes,
        "API_TITLE": "Rapport",
        "API_VERSION": API_VERSION,
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {
            "info": {
                "description": "Customer profiles, greetings, next-best actions and "
                "recommendations for support tools. Errors are RFC 9457 problem documents.",
            },
            "servers": [{"url": "/"}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API key from `rapport keys create`.",
                    },
                    "basicAuth": {
                        "type": "http",
                        "scheme": "basic",
                        "description": "The same API key as the user name, any password (how "
                        "Segment's webhook destination authenticates).",
                    },
                }
            },
        },
    }


def _register_request_hooks(app: Flask) -> None:
    @app.before_request
    def start_request():
        g.started = time.perf_counter()
        g.request_id = request_id(request.headers.get("X-Request-ID", ""))
        if request.method in _BODY_METHODS and _has_body() and not request.is_json:
            return errors.problem(
                415,
                "Send a JSON body with 'Content-Type: application/json'.",
                title="Unsupported media type",
                type_="urn:rapport:problem:media-type",
            )
        limit = app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length > limit:
            return errors.problem(
                413,
                f"The body is larger than the limit of {limit} bytes.",
                title="Content too large",
            )
        return None

    @app.after_request
    def finish_request(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        started = g.get("started")
        if started is not None:
            rule = request.url_rule.rule if request.url_rule else "unmatched"
            metrics.observe(
                rule, request.method, response.status_code, time.perf_counter() - started
            )
        return response


def _has_body() -> bool:
    if request.content_length:
        return True
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()
