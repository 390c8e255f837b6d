"""Health, readiness, metrics, the spec and the docs page."""

from __future__ import annotations

import yaml

from service.cli import SPEC_PATH, spec_yaml


def test_healthz_needs_no_key(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json == {"status": "ok"}


def test_readyz_reports_redis(client):
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json["checks"]["redis"] == "ok"


def test_metrics_count_requests_per_route(client):
    client.get("/healthz")
    client.get("/no/such/route")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'rapport_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="unmatched",status="404"' in text
    assert "rapport_http_request_duration_seconds_bucket" in text


def test_openapi_is_public_and_documents_problem_errors(client):
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    spec = resp.json
    assert spec["openapi"].startswith("3.")
    assert "Problem" in spec["components"]["schemas"]
    unauthorized = spec["components"]["responses"]["UNAUTHORIZED"]
    assert "application/problem+json" in unauthorized["content"]
    keys_get = spec["paths"]["/v1/admin/keys"]["get"]
    assert keys_get["security"] == [{"bearerAuth": []}]
    assert {"401", "403"} <= set(keys_get["responses"])


def test_docs_page_renders_offline(client):
    resp = client.get("/docs")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "/v1/admin/keys" in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing fetched from outside
    assert "<script" not in html


def test_checked_in_spec_matches_the_code(app):
    """Fails when routes or schemas change without `rapport spec --write`."""
    assert SPEC_PATH.exists(), "api_spec/openapi.yaml is missing: run 'rapport spec --write'"
    committed = yaml.safe_load(SPEC_PATH.read_text())
    generated = yaml.safe_load(spec_yaml(app))
    assert committed == generated, "api_spec/openapi.yaml is stale: run 'rapport spec --write'"
