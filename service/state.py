"""The app's state: its config, Redis client and stores, in ``app.extensions["rapport"]``.

``create_app`` builds it once; views, hooks and commands reach it through :func:`state` (or
:func:`state_of` with an app at hand). Nothing here connects at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app

from profiles.activity import ActivityStore
from profiles.audit import AuditLog
from profiles.keys import Keys
from profiles.store import ProfileStore
from service.auth import ApiKeyStore
from service.config import Config

EXTENSION = "rapport"


@dataclass
class RapportState:
    config: Config
    redis: redis.Redis
    keys: Keys
    api_keys: ApiKeyStore
    profiles: ProfileStore
    activity: ActivityStore
    audit: AuditLog | None = None  # service/hardening.py


def state_of(app: Flask) -> RapportState:
    return app.extensions[EXTENSION]


def state() -> RapportState:
    """The current app's state (inside an app context)."""
    return state_of(current_app)
