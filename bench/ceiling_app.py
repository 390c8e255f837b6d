"""The ceilings for the serving benchmark: the least a Flask endpoint under our gunicorn can do.

``GET /bare``
    A JSON document, no I/O: the framework + gunicorn + HTTP ceiling.
``GET /hgetall/<customer_id>``
    One ``HGETALL`` of that customer's profile hash, returned as JSON: the single-Redis-read
    ceiling every Rapport endpoint is compared with (``bench/serve.py``).

Served by ``gunicorn -c gunicorn.conf.py 'bench.ceiling_app:create_app()'`` with ``REDIS_URL``
set, in the same run as the service, so both see the same machine load. No auth, no hooks, no
metrics: that is the point of a ceiling.
"""

from __future__ import annotations

import os

import redis
from flask import Flask, jsonify

from profiles.keys import Keys


def create_app() -> Flask:
    app = Flask(__name__)
    client = redis.Redis.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), decode_responses=True
    )
    keys = Keys(os.environ.get("RAPPORT_KEY_PREFIX", "rp"))

    @app.get("/bare")
    def bare():
        return jsonify({"status": "ok", "service": "ceiling"})

    @app.get("/hgetall/<customer_id>")
    def hgetall(customer_id: str):
        return jsonify(client.hgetall(keys.profile(customer_id)))

    return app
