"""Fuzzing sends hundreds of requests a second with one key: no rate limit here (the limits
have their own tests in tests/api/test_hardening.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def app_config(app_config):
    return {**app_config, "rate_limit": "off"}
