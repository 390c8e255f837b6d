"""Request hardening, in one place: installed by ``create_app`` through :func:`init_app`.

- **Unknown query parameters** are refused (422): a request may only carry the query parameters
  its operation declares in the OpenAPI spec (the spec is the one source of truth).
- **JSON shape guard**: a body nested deeper than ``max_json_depth`` or holding more than
  ``max_json_items`` values is refused (422) before it is parsed, so a 10,000-deep array costs
  a regex scan, not a recursive parse and a validation walk.
- **Rate limits** per API key (per client address without one) across ``/v1``: fixed-window
  counters in the app's Redis, every window in one script call, and a caller over its limit
  refused in-process until the window ends; at most ``key_concurrency`` requests of one key in
  flight per worker (``service/ratelimit.py``); 429 problem+json with ``Retry-After``.
- **PII masking**: a key without ``pii:read`` sees the PII of every JSON response masked
  (``j***@example.com``, ``+44*******89``), whatever the route, by field and in free text; ids
  stay as they are (``service/pii.py``, docs/pii.md). The console reads the same API, so it
  shows the masked values too.
- **Audit**: who read, changed, exported, merged, unmerged or erased which profile, appended to
  ``profiles.audit.AuditLog`` after every successful request of a route declaring an audit
  action (ids only): the declarations and the hook are ``service/auditing.py``'s.
- ``Cache-Control: no-store`` on every ``/v1`` response; **CORS** only for the configured
  origins, with preflight handling; a plain ``OPTIONS`` lists the methods of the route matched
  only (``Allow``).
- **Request ids from the first byte**: the outermost WSGI layer (:class:`RequestIds`) fixes
  the request's id, so the answers of the guards before Flask carry it too.

The guards run in the app's one before/after hook pair, ``service/request_hooks.py``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import redis
from flask import Flask, Request, Response, current_app, json

from profiles.audit import AuditLog
from service import errors, metrics
from service.access import current_key
from service.auditing import json_body
from service.auth import ApiKey, Forbidden, Unauthenticated
from service.config import Config
from service.extensions import RapportApi
from service.logs import request_id
from service.pii import Masker, mask_pii, mask_text  # noqa: F401  (mask_*: imported from here)
from service.ratelimit import Blocklist, InFlight, RateLimiter, credential, parse_limits
from service.state import state_of

PII_SCOPE = "pii:read"
_CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
_CORS_HEADERS = "Authorization, Content-Type, If-Match, X-Request-ID"
_CORS_EXPOSE = (
    "ETag, Location, Content-Location, Retry-After, X-Request-ID, Rapport-Merged-Into, "
    "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
)


# -- JSON shape guard ----------------------------------------------------------------------------
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_shape_problem(data: bytes, max_depth: int, max_items: int) -> str | None:
    """Why ``data`` is too deep or too big to parse, or None. Strings are blanked first so
    brackets and commas inside them do not count; the scan stops at the first excess."""
    if data.count(b"[") + data.count(b"{") <= max_depth and data.count(b",") < max_items:
        return None  # cannot exceed either limit: skip the scan
    bare = _JSON_STRING.sub(b'""', data)
    if bare.count(b",") >= max_items:
        return f"the JSON body holds more than {max_items} values"
    depth = 0
    for m in _BRACKETS.finditer(bare):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                return f"the JSON body is nested deeper than {max_depth} levels"
        else:
            depth -= 1
    return None


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]", re.ASCII)


def lone_surrogate(data: bytes) -> bool:
    """True when a JSON body escapes a lone UTF-16 surrogate (``"\\ud800"``): valid JSON, but
    not text any store can hold (UTF-8 cannot encode it), so it is refused up front."""
    if not _SURROGATE_ESCAPE.search(data):
        return False
    try:
        json.dumps(json.loads(data), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except ValueError:
        return False  # malformed JSON: the parser answers 400 later
    return False


# -- query parameters declared in the spec -------------------------------------------------------
_RULE_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _declared_query(api: RapportApi) -> dict[tuple[str, str], frozenset[str]]:
    """``(METHOD, openapi path) -> query parameter names`` for every documented operation."""
    out = {}
    for path, ops in api.spec.to_dict().get("paths", {}).items():
        for method, op in ops.items():
            if not isinstance(op, dict) or method == "parameters":
                continue
            params = op.get("parameters", []) + ops.get("parameters", [])
            names = frozenset(p["name"] for p in params if p.get("in") == "query")
            out[(method.upper(), path)] = names
    return out


# -- installation --------------------------------------------------------------------------------
@dataclass
class Hardening:
    """What the request hooks (``service/request_hooks.py``) guard with, built by
    :func:`init_app`: the limiter, blocks and in-flight bounds are None when turned off."""

    config: Config
    audit: AuditLog
    origins: frozenset[str]
    declared: Callable[[], dict[tuple[str, str], frozenset[str]]]
    masker: Masker
    limiter: RateLimiter | None
    blocked: Blocklist
    in_flight: InFlight | None


def init_app(app: Flask, api: RapportApi) -> Hardening:
    """Install the WSGI layers (blocked callers, request ids) and build what the request
    hooks use: the audit log, the rate limits and in-flight bounds, the query parameters
    declared in the spec, the PII masker and the CORS origins."""
    rapport = state_of(app)
    config = rapport.config
    audit = _init_audit_log(app)
    origins = frozenset(o.strip().rstrip("/") for o in config.cors_origins.split(",") if o.strip())
    masker = app.extensions["rapport.pii"] = Masker.from_config(config)
    blocked = Blocklist()
    limit = config.rate_limit.strip()
    limiter = None
    if limit and limit.lower() != "off":
        limiter = RateLimiter(rapport.redis, rapport.keys.rate_limit_prefix(), parse_limits(limit))
        # A caller this worker refused stays refused, before Flask and without Redis, until
        # the window that refused it ends.
        app.wsgi_app = RefuseBlockedCallers(app.wsgi_app, blocked, origins)  # type: ignore[method-assign]
    bound = config.in_flight_per_key()
    in_flight = InFlight(bound) if bound > 0 else None
    # Last: outside every other middleware, so all of them see the request's id.
    app.wsgi_app = RequestIds(app.wsgi_app)  # type: ignore[method-assign]
    declared = cache(lambda: _declared_query(api))
    return Hardening(config, audit, origins, declared, masker, limiter, blocked, in_flight)


def caller_of(req: Request) -> str:
    """Who a request counts against: its API key in a hash tag (its windows share a Cluster
    slot), else its client address when it has no valid key (or Redis cannot say)."""
    try:
        return f"{{key:{current_key().key_id}}}"
    except (Unauthenticated, redis.RedisError):
        addr = (req.remote_addr or "-").replace("{", "").replace("}", "")
        return f"{{addr:{addr}}}"


def options(req: Request) -> Response | None:
    """``OPTIONS``: the methods of the route the path matched, not those of every route the
    path could match (Flask's answer: ``/v1/actions/stats`` would list ``{id}``'s PUT)."""
    rule = req.url_rule
    if rule is None or not rule.methods:
        return None  # no route: Flask answers the 404 or 405
    response = Response(status=200)
    response.allow.update(sorted(rule.methods))
    return response


class RequestIds:
    """WSGI, outermost: every request goes by one id from the first byte on (the caller's sane
    ``X-Request-ID`` or a new one, written back into the environ), so the guards answering
    before Flask (a chunked body over the limit) carry it too (``errors.wsgi_problem``)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        rid = request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        environ["HTTP_X_REQUEST_ID"] = rid
        token = errors.WSGI_REQUEST_ID.set(rid)
        try:
            return self.app(environ, start_response)
        finally:
            errors.WSGI_REQUEST_ID.reset(token)


def _init_audit_log(app: Flask) -> AuditLog:
    """The app's ``profiles.audit.AuditLog``, kept on its state for the audit hook and reader."""
    rapport = state_of(app)
    config = rapport.config
    rapport.audit = AuditLog(
        rapport.redis,
        rapport.keys,
        retention_seconds=config.audit_retention_days * 86400,
        flush_seconds=config.audit_flush_ms / 1000,
    )
    return rapport.audit


def authorise_first(req: Request) -> None:
    """Raise the view's 401 or 403 now, if it would answer one (its ``Blueprint.auth``
    scope), so a caller without the right key learns that before anything else."""
    view = current_app.view_functions.get(req.endpoint or "")
    view_class = getattr(view, "view_class", None)
    method = getattr(view_class, req.method.lower(), None) if view_class else view
    scope = getattr(method, "required_scope", None)
    if scope is not None and not current_key().allows(scope):
        raise Forbidden(scope)


def unknown_query(req: Request, declared: dict[tuple[str, str], frozenset[str]]) -> Response | None:
    """422 when the request carries query parameters its operation does not declare."""
    if req.url_rule is None or not req.args:
        return None
    path = _RULE_ARG.sub(r"{\1}", req.url_rule.rule)
    allowed = declared.get((req.method, path))
    if allowed is None:
        return None
    unknown = sorted(set(req.args) - allowed)
    if not unknown:
        return None
    return errors.validation_problem(
        [{"field": name, "location": "query", "message": "Unknown field."} for name in unknown]
    )


def odd_json(req: Request, max_depth: int, max_items: int) -> Response | None:
    """422 when a JSON body is too deep, too big or holds a lone surrogate (before parsing)."""
    if req.method not in ("POST", "PUT", "PATCH") or not req.is_json:
        return None
    data = req.get_data(cache=True)
    why = json_shape_problem(data, max_depth, max_items)
    if why is None and lone_surrogate(data):
        why = "the JSON body holds a lone UTF-16 surrogate (\\ud800-\\udfff)"
    if not why:
        return None
    return errors.problem(
        422,
        why,
        title="Request body too complex",
        type_="urn:rapport:problem:json-shape",
        errors=[{"field": "", "location": "json", "message": why}],
    )


def cors_headers(req: Request, response: Response, origins: frozenset[str]) -> None:
    origin = req.environ.get("HTTP_ORIGIN", "").rstrip("/")
    if origin and origin in origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _CORS_EXPOSE
    if origins:
        response.vary.add("Origin")


def too_many(description: str) -> Response:
    """The 429 of a caller over its rate limit (its headers are the request hooks')."""
    return errors.problem(
        429,
        _too_many_detail(description),
        title="Too many requests",
        type_="urn:rapport:problem:rate-limited",
    )


def too_many_in_flight(limit: int) -> Response:
    """The 429 of a caller with ``limit`` requests already being served by this worker."""
    return errors.problem(
        429,
        f"too many requests in flight for this key (at most {limit} at once per worker); "
        "retry after the time in Retry-After",
        title="Too many requests",
        type_="urn:rapport:problem:rate-limited",
        headers={"Retry-After": "1"},
    )


def _too_many_detail(description: str) -> str:
    return f"rate limit exceeded ({description}); retry after the time in Retry-After"


def limited(method: str, path: str) -> bool:
    """Whether the rate limits apply: every ``/v1`` request but CORS preflights."""
    return method != "OPTIONS" and path.startswith("/v1/")


class RefuseBlockedCallers:
    """WSGI: answer 429 to a caller this worker refused (``service/ratelimit.py``
    ``Blocklist``) until its window ends, before Flask routes or reads anything: the same
    problem document, ``Retry-After``, ``X-RateLimit-*``, ``X-Request-ID``, ``no-store`` and
    CORS headers as a 429 from the limiter, for a fraction of the CPU."""

    def __init__(self, app, blocked: Blocklist, origins: frozenset[str]):
        self.app = app
        self.blocked = blocked
        self.origins = origins

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if not limited(method, path):
            return self.app(environ, start_response)
        entry = self.blocked.check(credential(environ))
        if entry is None:
            return self.app(environ, start_response)
        started = time.perf_counter()
        until, amount, description = entry
        rid = request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        document = errors.problem_document(
            429,
            _too_many_detail(description),
            title="Too many requests",
            type_="urn:rapport:problem:rate-limited",
            instance=path,
            request_id=rid,
        )
        headers = [
            ("Retry-After", str(max(1, math.ceil(until - time.time())))),
            ("X-RateLimit-Limit", str(amount)),
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", str(int(until) + 1)),
            ("X-Request-ID", rid),
            ("Cache-Control", "no-store"),
        ]
        origin = environ.get("HTTP_ORIGIN", "").rstrip("/")
        if origin and origin in self.origins:
            headers += [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Expose-Headers", _CORS_EXPOSE),
            ]
        if self.origins:
            headers.append(("Vary", "Origin"))
        body = errors.wsgi_problem(start_response, document, headers)
        metrics.observe("rate-limited", method, 429, time.perf_counter() - started)
        return body


def preflight(req: Request, origins: frozenset[str]) -> Response:
    origin = req.environ.get("HTTP_ORIGIN", "").rstrip("/")
    if not origin or origin not in origins:
        return errors.problem(
            403,
            "cross-origin requests from this origin are not allowed",
            title="Forbidden",
            type_="urn:rapport:problem:cors-origin",
        )
    response = Response(status=204)
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    response.vary.add("Origin")
    return response


def mask(response: Response, masker: Masker, key: ApiKey | None) -> None:
    """Mask the PII of a JSON response for ``key`` unless it holds ``pii:read``."""
    if key is None or key.allows(PII_SCOPE):
        return
    body = json_body(response)
    if body is None:
        return
    masked = masker.value(body)
    if masked != body:
        response.set_data(json.dumps(masked))
