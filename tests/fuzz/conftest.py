"""Fuzzing sends hundreds of requests a second with one key: no rate limit here (the limits
have their own tests in tests/api/test_hardening.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def app_config(app_config):
    # the positive cases' webhook target (domain_rules.VALID_VALUE["url"]) is a local one
    return {**app_config, "rate_limit": "off", "webhook_allowed_hosts": "127.0.0.1"}
