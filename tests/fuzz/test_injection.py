"""Injection corpus: every hostile string into every string field of every write endpoint.

The string fields come from the spec's request schemas (nested objects and lists included),
so a new field is covered without editing this file. Each request must be refused with a 4xx
that names the field (422, or 404/409 when an id names nothing/something taken) or accepted,
in which case what comes back is the string as sent (plain text) or its normalised form; never
a 5xx, never an evaluated template, and Redis keeps its data (no script ran)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.fuzz.corpus import HOSTILE

OK = {200, 201, 204}
REFUSED = {404, 409, 422}


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def string_paths(spec: dict, schema: dict, prefix: tuple = ()) -> list[tuple]:
    """Paths (tuples of keys / list indexes) of every string field in a request schema."""
    schema = _resolve(spec, schema)
    out: list[tuple] = []
    if schema.get("type") == "string":
        out.append(prefix)
    elif schema.get("type") == "array" and "items" in schema:
        out += string_paths(spec, schema["items"], (*prefix, 0))
    for name, sub in schema.get("properties", {}).items():
        out += string_paths(spec, sub, (*prefix, name))
    return out


def put_at(body: Any, path: tuple, value: Any) -> Any:
    body = copy.deepcopy(body)
    node = body
    for i, key in enumerate(path):
        last = i == len(path) - 1
        nxt: Any = value if last else ({} if isinstance(path[i + 1], str) else [])
        if isinstance(key, int):
            if len(node) <= key:
                node.append(nxt)
            elif last:
                node[key] = value
        elif last or key not in node or node[key] is None:
            node[key] = nxt
        node = node[key]
    return body


# Batch bodies whose items the spec leaves open: the schema each item is checked against.
ITEM_SCHEMAS = {"/v1/products/batch": "ProductIn", "/v1/actions": "ActionInput"}


def _write_operations(api, cid: str, action_id: str) -> list[tuple[str, str, dict]]:
    purchase = {
        "order_id": "o-base",
        "lines": [{"product_id": "P1", "quantity": 1, "unit_price": "9.99"}],
        "currency": "EUR",
        "purchased_at": "2024-03-01T10:00:00Z",
        "channel": "web",
    }
    action = {"title": "Call back", "say": "Hello", "category": "service", "value": 1.0}
    feedback = {"feedback_id": "f1", "outcome": "dismissed", "agent_id": "a1", "channel": "chat"}
    return [
        ("POST", "/v1/admin/keys", {"name": "k", "scopes": ["profiles:read"]}),
        ("PUT", "/v1/greeting-templates/en/chat", {"source": "Hello {{ first_name }}"}),
        ("POST", f"/v1/profiles/{cid}/next-best-actions/{action_id}/feedback", feedback),
        ("POST", f"/v1/profiles/{cid}/product-feedback", {**feedback, "product_id": "P1"}),
        ("PUT", "/v1/actions/corpus_action", action),
        ("PUT", "/v1/actions", {"items": [{**action, "id": "corpus_all"}]}),
        ("POST", "/v1/profiles", {"first_name": "Ann"}),
        (
            "POST",
            "/v1/profiles/identify",
            {"identities": {"external_ids": ["shop:1"]}, "attributes": {"first_name": "Ann"}},
        ),
        ("PATCH", f"/v1/profiles/{cid}", {"first_name": "Ann"}),
        ("POST", f"/v1/profiles/{cid}/merge", {"source_id": "c_missing"}),
        ("PUT", "/v1/products/P9", {"name": "Widget", "category": "toys", "price": "9.99"}),
        ("POST", "/v1/products/batch", {"items": [{"product_id": "P8", "name": "Gadget"}]}),
        ("POST", f"/v1/profiles/{cid}/purchases", purchase),
    ]


@pytest.fixture
def seeded(api):
    cid = api.post("/v1/profiles", json={"first_name": "Base", "country": "AT"}).json["id"]
    assert api.put("/v1/products/P1", json={"name": "Base product"}).status_code in OK
    action_id = api.get("/v1/actions").json["items"][0]["id"]
    return cid, action_id


def _check(resp, value: str, where: str) -> None:
    assert resp.status_code in OK | REFUSED, (where, resp.status_code, resp.get_data()[:300])
    if resp.status_code == 422:
        assert resp.mimetype == "application/problem+json"
        assert resp.json["errors"], where
    if resp.status_code in OK and resp.get_data():
        for text in _strings(resp.json):
            assert not any(sign in text for sign in EXECUTED), (where, text[:200])
            assert text != "49", where


# What an evaluated template, a listed class hierarchy or a read file would look like.
EXECUTED = ("looplooploop", "<class '", "root:x:0:0", "uid=0(", "__builtins__': {")


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)


def test_hostile_strings_in_every_string_field(api, client, seeded, redis_client):
    cid, action_id = seeded
    spec = client.get("/openapi.json").get_json()
    tried = 0
    for method, path, base in _write_operations(api, cid, action_id):
        template = "/v1/" + path.split("/v1/", 1)[1]
        op = _spec_operation(spec, method, template)
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        fields = string_paths(spec, schema)
        if template in ITEM_SCHEMAS:  # batches of free-form objects, validated item by item
            ref = {"$ref": f"#/components/schemas/{ITEM_SCHEMAS[template]}"}
            fields += string_paths(spec, ref, ("items", 0))
        assert fields, (method, path)
        for field in fields:
            for n, value in enumerate(HOSTILE):
                body = put_at(base, field, value)
                if "order_id" in body and field != ("order_id",):
                    body["order_id"] = f"o-{tried}"  # one new order per request (idempotency)
                if field == ("feedback_id",) or "feedback_id" in body and field != ("feedback_id",):
                    body["feedback_id"] = (
                        body["feedback_id"] if field == ("feedback_id",) else f"f{tried}"
                    )
                resp = api.open(method, path, json=body)
                _check(resp, value, f"{method} {path} {field} #{n}")
                tried += 1
    # events carry free-form objects: their fields by hand
    for field in (
        ("message_id",),
        ("product_id",),
        ("type",),
        ("customer", "profile_id"),
        ("customer", "email"),
    ):
        for n, value in enumerate(HOSTILE):
            event = {"message_id": f"m{n}", "type": "view", "customer": {"profile_id": cid},
                     "at": "2024-03-01T10:00:00Z", "product_id": "P1"}  # fmt: skip
            resp = api.post("/v1/events", json={"events": [put_at(event, field, value)]})
            _check(resp, value, f"events {field} #{n}")
            tried += 1
    assert tried > 1000
    # nothing ran: the data is still there and the profile reads back
    assert api.get(f"/v1/profiles/{cid}").status_code == 200
    assert redis_client.dbsize() > 5


def _spec_operation(spec: dict, method: str, path: str) -> dict:
    for template, ops in spec["paths"].items():
        parts, actual = template.strip("/").split("/"), path.strip("/").split("/")
        if len(parts) == len(actual) and all(
            p == a or p.startswith("{") for p, a in zip(parts, actual, strict=True)
        ):
            if method.lower() in ops:
                return ops[method.lower()]
    raise AssertionError(f"{method} {path} not in the spec")


@pytest.mark.parametrize("value", [v for v in HOSTILE if 0 < len(v.strip()) <= 100])
def test_stored_names_come_back_as_plain_text(api, value):
    resp = api.post("/v1/profiles", json={"first_name": value})
    if resp.status_code == 422:
        return  # refused: control characters, surrogates
    assert resp.status_code == 201, resp.json
    cid = resp.json["id"]
    stored = api.get(f"/v1/profiles/{cid}").json["first_name"]
    assert stored == " ".join(value.split())
    greeting = api.get(f"/v1/profiles/{cid}/greeting?channel=chat").json
    assert "49" not in greeting["text"].replace(stored, "")
    if stored in greeting["text"]:
        assert stored not in greeting["html"] or stored == _escaped(stored)
        assert _escaped(stored) in greeting["html"]
    exported = json.dumps(api.get(f"/v1/profiles/{cid}/export").json, ensure_ascii=False)
    assert json.dumps(stored, ensure_ascii=False)[1:-1] in exported


def _escaped(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def test_action_lines_show_hostile_names_escaped(api):
    name = "<script>alert(1)</script>{{7*7}}"
    cid = api.post("/v1/profiles", json={"first_name": name}).json["id"]
    action = {
        "title": "Say hello",
        "say": "Hi {{ name }}, thanks for calling",
        "category": "service",
        "value": 5.0,
    }
    assert api.put("/v1/actions/corpus_hello", json=action).status_code in OK
    items = api.get(f"/v1/profiles/{cid}/next-best-actions?limit=10").json["items"]
    lines = [i["say"] for i in items if i["action_id"] == "corpus_hello"]
    assert lines, items
    assert name in lines[0] or _escaped(name) in lines[0]
    assert "49" not in lines[0]


def test_console_puts_api_values_into_the_page_as_text():
    """The console page shows what the API returns (masked for keys without pii:read) through
    textContent and setAttribute only: no HTML parsing of any value, no eval."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "service" / "console"
    script = (root / "static" / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function"):  # fmt: skip
        assert sink not in script.replace("never innerHTML", ""), sink
    assert "textContent" in script
