"""The console's server side through the Flask test client: pages, the session route, headers.
(The page itself is tested in a browser: tests/e2e/test_console.py.)"""

from __future__ import annotations

import pytest

from service import create_app
from service.config import Config, ConfigError


def test_pages_are_served_with_a_strict_policy(client):
    for path in ("/console", "/console/", "/console/customers/c_abc123"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert resp.mimetype == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "connect-src 'self'" in csp and "frame-ancestors 'self'" in csp
        assert "unsafe" not in csp
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        html = resp.get_data(as_text=True)
        assert 'src="/console/static/console.js"' in html
        assert "<script>" not in html and "c_abc123" not in html  # the id is read by the script
    static = client.get("/console/static/console.css")
    assert static.status_code == 200
    assert "script-src 'self'" in static.headers["Content-Security-Policy"]
    static.close()


def test_session_tells_the_page_what_the_key_may_do(client, make_key):
    agent = make_key("profiles:read", "recommend:read", "actions:write", name="desk")
    resp = client.get("/console/session", headers={"Authorization": f"Bearer {agent}"})
    assert resp.status_code == 200
    body = resp.json
    assert body["name"] == "desk"
    assert body["can_read"] is True and body["missing"] == []
    assert body["can_give_feedback"] is True and body["can_see_pii"] is False
    assert resp.headers["Cache-Control"] == "no-store"

    reader = make_key("profiles:read")
    body = client.get("/console/session", headers={"Authorization": f"Bearer {reader}"}).json
    assert body["can_read"] is False and body["missing"] == ["recommend:read"]
    assert body["can_give_feedback"] is False

    admin = make_key("admin")
    body = client.get("/console/session", headers={"Authorization": f"Bearer {admin}"}).json
    assert body["can_read"] and body["can_give_feedback"] and body["can_see_pii"]


@pytest.mark.parametrize("header", [None, "Bearer rpk_0123456789abcdef_wrong", "Basic x"])
def test_session_refuses_a_missing_or_wrong_key(client, header):
    resp = client.get("/console/session", headers={"Authorization": header} if header else {})
    assert resp.status_code == 401
    assert resp.content_type == "application/problem+json"
    assert resp.json["type"] == "urn:rapport:problem:unauthenticated"


def test_frame_ancestors_are_configurable_for_an_embedding_helpdesk(app_config, redis_client):
    app = create_app(
        {**app_config, "console_frame_ancestors": "'self' https://helpdesk.example.com"},
        redis=redis_client,
    )
    csp = app.test_client().get("/console").headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://helpdesk.example.com" in csp
    with pytest.raises(ConfigError, match="RAPPORT_CONSOLE_FRAME_ANCESTORS"):
        Config.from_env({"RAPPORT_CONSOLE_FRAME_ANCESTORS": "'self'; script-src *"})
