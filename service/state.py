"""The app's state: its config, Redis client, stores and services, in ``app.extensions["rapport"]``.

``create_app`` builds it once (``service/wiring.py``, the composition root); views, hooks and
commands reach everything through :func:`state` (or :func:`state_of` with an app at hand).
Nothing here connects at import time, and the model-side types are named for type checking
only, so ``import service`` stays quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from flask import Flask, current_app

from profiles.activity import ActivityStore
from profiles.audit import AuditLog
from profiles.contact_log import ContactLog
from profiles.customer_view import CustomerView
from profiles.event_batch import EventBatch
from profiles.keys import Keys
from profiles.segment_ingest import SegmentIngest
from profiles.store import ProfileStore
from service.auth import ApiKeyStore
from service.config import Config

if TYPE_CHECKING:  # these pull in numpy, scipy and LightFM
    from recommend.catalog.products import CachedCatalog, Catalog
    from recommend.engage.actions import ActionCatalog, NextBestActions
    from recommend.engage.contact import ContactPolicy
    from recommend.engage.facts import FactsLoader
    from recommend.engage.greetings import Greeter, GreetingTemplates
    from recommend.model.answers import RecommendationAnswers
    from service.model_holder import ModelHolder

EXTENSION = "rapport"


@dataclass(frozen=True)
class Engagement:
    """Greetings and next-best actions."""

    facts: FactsLoader
    greeter: Greeter
    templates: GreetingTemplates
    actions: ActionCatalog
    policy: ContactPolicy
    nba: NextBestActions


@dataclass
class RapportState:
    config: Config
    redis: redis.Redis
    keys: Keys
    api_keys: ApiKeyStore
    profiles: ProfileStore
    activity: ActivityStore
    catalog: Catalog
    products: CachedCatalog  # this process's product documents for serving
    customers: CustomerView
    contacts: ContactLog
    events: EventBatch
    segment: SegmentIngest  # POST /v1/ingest/segment
    models: ModelHolder
    recommendations: RecommendationAnswers
    engage: Engagement
    audit: AuditLog | None = None  # service/hardening.py


def state_of(app: Flask) -> RapportState:
    return app.extensions[EXTENSION]


def state() -> RapportState:
    """The current app's state (inside an app context)."""
    return state_of(current_app)
