"""The rules the server enforces that JSON Schema cannot state, met by the fuzzer's positive
cases (docs/errors.md, "Rules the spec states in words").

schemathesis' ``positive_data_acceptance`` check expects a schema-valid request to be answered
2xx, 401, 403, 404 or 409; it does not read the documented 422s. Every rule JSON Schema can
express is in the spec (patterns, enums, formats, ``minProperties``, ``anyOf``,
``additionalProperties: false``). What is left is below: rules between two fields, rules of the
world (a phone number's validity, a host that resolves, the clock) and rules of a language (the
template sandbox, the action rules). Each one is named in its operation's parameter or field
description and answered 422 naming the field; ``test_contract_exact.py`` checks that answer.
:func:`satisfy` rewrites a generated positive case so it meets them, which schemathesis
recommends for its ``validation_mismatch`` warning ("extend generators to match runtime
rules"), and the check stays on: a 422 for anything not listed here fails the suite.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

MAX_INT = 10**19 - 1  # service/json_body.py: no number of this API holds more than 19 digits

# A field the domain checks beyond its schema -> a value meeting that check.
VALID_VALUE: dict[str, Any] = {
    "phone": "+43 664 1234567",  # a number libphonenumber holds valid
    "email": "ann@example.com",  # the validator's grammar (profiles/document.py)
    "external_id": "shop:42",  # `system:id`, the id printable (str.isprintable)
    "locale": "de-AT",  # a tag babel knows
    "timezone": "Europe/Vienna",  # the IANA database of the host
    "country": "AT",  # an ISO 3166-1 territory babel knows
    "first_name": "Ann",  # names: printable, no control characters
    "last_name": "Lee",
    "display_name": "Ann L.",
    "unit_price": "2.50",  # a decimal: Decimal() reads it, at most 4 places, 0..1e9
    "url": "http://127.0.0.1:9/hook",  # resolves to an address the SSRF guard allows
}
# Fields written in a language the domain compiles (templates, rules) or holding nested
# documents it validates key by key: left out of positive cases (their own tests cover them).
DROPPED = ("say", "rules", "preferences", "consent", "active_from", "active_to")
TEXT = ("name", "brand", "category", "description", "tags")  # catalog text: visible characters
TIMES = ("purchased_at", "as_of")  # after 1970, at most a day ahead of the server's clock
SAFE_TIME = "2024-05-01T10:00:00+02:00"
IDENTITIES = ("email", "phone", "external_id")


def satisfy(case: Any) -> Any:
    """``case`` rewritten to meet the rules above (a positive case only)."""
    if isinstance(case.query, dict):
        case.query = _query(case.operation.label, _fields(case.query), case.path_parameters)
    if isinstance(case.body, dict | list):
        case.body = _body(case.operation.label, _fields(case.body), case.path_parameters or {})
    return case


def _fields(value: Any, key: str | None = None) -> Any:
    """The field-level rules, everywhere in a document; integers clamped to 19 digits."""
    if isinstance(value, dict):
        out = {k: _fields(v, k) for k, v in value.items() if k not in DROPPED}
        return out
    if isinstance(value, list):
        return [_fields(v, key) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return max(-MAX_INT, min(MAX_INT, value))
    if key == "external_ids" or key in VALID_VALUE:
        return VALID_VALUE["external_id" if key == "external_ids" else key]
    if key in TEXT:
        return _visible(value)
    if key in TIMES:
        return value if _sane_time(value) else SAFE_TIME
    return value


def _wire(text: Any) -> Any:
    """``text`` as the server reads it from JSON (a surrogate pair drawn as two characters is
    one); a path parameter is read percent-decoded."""
    return json.loads(json.dumps(text))


def _visible(text: str) -> str:
    """Control and invisible characters (Unicode C*) replaced: free text refuses them."""
    return "".join("x" if unicodedata.category(c).startswith("C") else c for c in text)


def _sane_time(value: Any) -> bool:
    try:
        when = dt.datetime.fromisoformat(str(value).replace("z", "Z"))
        utc = when.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return False
    return when.tzinfo is not None and 1970 <= utc.year and utc <= dt.datetime.now(dt.UTC)


def _query(label: str, query: dict[str, Any], path: dict | None) -> dict[str, Any]:
    given = [k for k in IDENTITIES if k in query]
    if label == "GET /v1/profiles":  # exactly one identity
        for extra in given[1:]:
            query.pop(extra)
        if not given:
            query["external_id"] = VALID_VALUE["external_id"]
    if label == "GET /v1/greeting":  # at most one identity
        for extra in given[1:]:
            query.pop(extra)
    if label == "GET /v1/products" and "ids" in query:  # ids reads by id: no paging, filters
        query = {"ids": query["ids"]}
    low, high = query.get("min_price"), query.get("max_price")
    if low is not None and high is not None and Decimal(low) > Decimal(high):
        query["min_price"], query["max_price"] = high, low  # min_price at most max_price
    if label == "GET /v1/actions/performance":
        query.update(_window(query.get("from"), query.get("to")))
    return query


def _window(start: Any, end: Any) -> dict[str, str]:
    """``from`` at most ``to``, less than 400 days apart (``to`` defaults to today)."""
    try:
        first = dt.date.fromisoformat(start) if start else None
        last = dt.date.fromisoformat(end) if end else dt.datetime.now(dt.UTC).date()
    except ValueError:
        return {}
    if first is None:
        return {}
    first, last = sorted((first, last))
    if (last - first).days >= 400:  # recommend.engage.adaptive.RETAIN_DAYS
        first = last - dt.timedelta(days=399)
    return {"from": first.isoformat(), "to": last.isoformat()}


def _priced(product: Any) -> None:
    """A product with a price has a currency."""
    if isinstance(product, dict) and product.get("price") is not None:
        if product.get("currency") is None:
            product["currency"] = "EUR"


def _body(label: str, body: Any, path: dict[str, Any]) -> Any:
    if label == "PUT /v1/products/{product_id}" and isinstance(body, dict):
        body.pop("product_id", None)  # the path's id; another one in the body is a 422
        _priced(body)
    if label == "POST /v1/products/batch" and isinstance(body, dict):
        for item in body.get("items") or []:
            _priced(item)
    if label == "PUT /v1/actions/{action_id}" and isinstance(body, dict):
        body.pop("id", None)  # likewise
    if label == "PUT /v1/actions" and isinstance(body, dict):
        for i, item in enumerate(body.get("items") or []):
            item["id"] = f"a{i}"  # each id once
    if label == "POST /v1/profiles" and not any(v is not None for v in body.values()):
        body["first_name"] = VALID_VALUE["first_name"]  # a field with a value (dropped ones)
    if label == "POST /v1/profiles/{customer_id}/merge" and isinstance(body, dict):
        target = str(path.get("customer_id"))
        if _wire(body.get("source_id")) in (_wire(target), unquote(target)):
            body["source_id"] = body["source_id"][:63] + "x"  # not into itself
    return body
