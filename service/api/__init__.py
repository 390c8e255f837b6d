"""HTTP API: one blueprint module per resource, registered here."""

from __future__ import annotations

from flask import Flask

from service.extensions import RapportApi


def register_blueprints(app: Flask, api: RapportApi) -> None:
    from service.api import keys, ops  # noqa: PLC0415

    api.register_blueprint(ops.blp)
    api.register_blueprint(keys.blp)
    from service.api import actions, greetings  # noqa: PLC0415

    api.register_blueprint(greetings.blp)
    api.register_blueprint(actions.blp)
    from service.api import merges, profiles  # noqa: PLC0415

    api.register_blueprint(profiles.blp)
    api.register_blueprint(merges.blp)
    from service.api import models, products, recommendations  # noqa: PLC0415

    api.register_blueprint(products.blp)
    api.register_blueprint(recommendations.blp)
    api.register_blueprint(models.blp)
    from service.api import events, purchases  # noqa: PLC0415

    api.register_blueprint(purchases.blp)
    api.register_blueprint(events.blp)
    from service.api import audit  # noqa: PLC0415

    api.register_blueprint(audit.blp)
    app.register_blueprint(ops.plain)
    from service.console import bp as console  # noqa: PLC0415

    app.register_blueprint(console)
