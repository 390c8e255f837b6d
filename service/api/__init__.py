"""HTTP API: one blueprint module per resource, registered here."""

from __future__ import annotations

from flask import Flask

from service.api import (
    actions,
    audit,
    events,
    greetings,
    ingest,
    keys,
    merges,
    model_versions,
    ops,
    products,
    profiles,
    purchases,
    recommendations,
    subscriptions,
)
from service.console import bp as console
from service.extensions import RapportApi


def register_blueprints(app: Flask, api: RapportApi) -> None:
    # the order of the OpenAPI document's tags
    for module in (
        ops,
        keys,
        greetings,
        actions,
        profiles,
        merges,
        products,
        recommendations,
        model_versions,
        purchases,
        events,
        ingest,
        subscriptions,
        audit,
    ):
        api.register_blueprint(module.blp)
    app.register_blueprint(ops.plain)
    app.register_blueprint(console)
