"""Every error is application/problem+json; never HTML, never a traceback."""

from __future__ import annotations

import io
import json

PROBLEM = "application/problem+json"


def assert_problem(resp, status):
    assert resp.status_code == status, resp.data
    assert resp.content_type == PROBLEM
    body = resp.json
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    assert "Traceback" not in resp.get_data(as_text=True)
    return body


def test_unknown_route(client):
    body = assert_problem(client.get("/v1/nothing-here"), 404)
    assert body["instance"] == "/v1/nothing-here"


def test_wrong_method_lists_allowed(client):
    resp = client.delete("/healthz")
    assert_problem(resp, 405)
    assert "GET" in resp.headers["Allow"]


def test_malformed_json(api):
    resp = api.post("/v1/admin/keys", data="{not json", content_type="application/json")
    body = assert_problem(resp, 400)
    assert body["errors"][0]["location"] == "json"


def test_wrong_content_type(api):
    form = "application/x-www-form-urlencoded"
    resp = api.post("/v1/admin/keys", data="name=x", content_type=form)
    assert_problem(resp, 415)


def test_unknown_field_rejected(api):
    resp = api.post("/v1/admin/keys", json={"name": "x", "scopes": ["admin"], "colour": "red"})
    body = assert_problem(resp, 422)
    assert {"field": "colour", "location": "json", "message": "Unknown field."} in body["errors"]


def test_missing_field(api):
    body = assert_problem(api.post("/v1/admin/keys", json={"name": "x"}), 422)
    assert [e["field"] for e in body["errors"]] == ["scopes"]


def test_oversized_body_is_413(api, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    payload = json.dumps({"name": "x" * limit, "scopes": ["admin"]})
    assert_problem(api.post("/v1/admin/keys", data=payload, content_type="application/json"), 413)


def test_oversized_chunked_body_is_413(api, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    payload = json.dumps({"name": "x" * limit, "scopes": ["admin"]}).encode()

    # No Content-Length: what gunicorn hands Flask for a chunked upload.
    resp = api.post(
        "/v1/admin/keys",
        input_stream=io.BytesIO(payload),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_base={"wsgi.input_terminated": True},
    )
    assert_problem(resp, 413)


def test_request_id_echoed_and_generated(client):
    resp = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["X-Request-ID"] != "bad id with spaces"
    assert len(generated.headers["X-Request-ID"]) == 32


def test_problem_carries_request_id(client):
    body = client.get("/nope", headers={"X-Request-ID": "req-9"}).json
    assert body["request_id"] == "req-9"


def test_unexpected_exception_is_500_problem(app, client):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    body = assert_problem(client.get("/boom"), 500)
    assert "secret internals" not in json.dumps(body)
