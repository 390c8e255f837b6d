"""Rapport: the Flask application factory."""

from __future__ import annotations

from collections.abc import Mapping

import redis as redis_lib
from flask import Flask

from service import errors, hardening, request_hooks
from service.config import Config
from service.extensions import RapportApi
from service.json_body import FastJsonProvider
from service.logs import configure_logging
from service.redis_connect import connect as connect_redis
from service.state import EXTENSION
from service.wsgi import ChunkedBodyLimit

__all__ = ["create_app", "Config"]

API_VERSION = "1.0.0"


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
    app.json = FastJsonProvider(app)  # orjson, the same documents (service/json_body.py)
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
    # limits, PII masking, audit, CORS, query/JSON guards: one before/after hook pair
    request_hooks.install(app, hardening.init_app(app, api))
    register_blueprints(app, api)
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
