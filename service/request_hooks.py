"""The app's one before/after hook pair (and the teardown that frees an in-flight place).

One function before and one after every request, each binding ``request`` and ``g`` once,
in place of a chain of hooks each looking them up again; what they do, in order:

- before: the request's clock and id; 415 for a body that is not JSON, 413 past the body
  limit; ``OPTIONS`` (preflight or ``Allow``); for a routed ``/v1`` request, the rate limit
  (one script call) and the per-key in-flight bound; then the query parameters the operation
  does not declare and a body too deep or too big (422), after the 401/403 the route would
  answer (``service/hardening.py`` ``authorise_first``);
- after: ``no-store``, the audit entry and the PII masking of ``/v1`` answers, CORS, the
  ``X-RateLimit-*`` headers (``Retry-After`` on 429 and 503 only), ``X-Request-ID`` and the
  metrics.
"""

from __future__ import annotations

import time

import redis
from flask import Flask, Response, g, request

from service import errors, metrics
from service.auditing import audit_response
from service.hardening import (
    Hardening,
    authorise_first,
    caller_of,
    cors_headers,
    credential,
    mask,
    odd_json,
    options,
    preflight,
    too_many,
    too_many_in_flight,
    unknown_query,
)
from service.logs import request_id

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_REFUSED = frozenset({429, 503})  # the answers a Retry-After means something on


class RequestHooks:
    def __init__(self, guard: Hardening, max_body: int):
        self.guard = guard
        self.max_body = max_body
        self.max_depth = guard.config.max_json_depth
        self.max_items = guard.config.max_json_items

    def before(self) -> Response | None:
        req = request._get_current_object()  # type: ignore[attr-defined]
        ctx = g._get_current_object()
        ctx.started = time.perf_counter()
        environ = req.environ
        ctx.request_id = request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        method = req.method
        length = req.content_length
        if method in _BODY_METHODS and _has_body(length, environ) and not req.is_json:
            return errors.problem(
                415,
                "Send a JSON body with 'Content-Type: application/json'.",
                title="Unsupported media type",
                type_="urn:rapport:problem:media-type",
            )
        if length is not None and length > self.max_body:
            return errors.problem(
                413,
                f"The body is larger than the limit of {self.max_body} bytes.",
                title="Content too large",
            )
        if method == "OPTIONS":
            if environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
                return preflight(req, self.guard.origins)
            return options(req)
        if req.url_rule is not None and req.path.startswith("/v1/"):
            refused = self._limit(req, ctx)
            if refused is not None:
                return refused
        refused = unknown_query(req, self.guard.declared())
        if refused is None:
            refused = odd_json(req, self.max_depth, self.max_items)
        if refused is not None:
            authorise_first(req)  # 401/403 before any 422 about the request's shape
        return refused

    def _limit(self, req, ctx) -> Response | None:
        """Count the request against its caller's windows and take its in-flight place."""
        guard = self.guard
        if guard.limiter is None and guard.in_flight is None:
            return None
        caller = caller_of(req)
        if guard.limiter is not None:
            try:
                verdict = guard.limiter.count(caller, time.time())
            except redis.RedisError:
                verdict = None  # Redis down: serve (the route answers 503) rather than block
            if verdict is not None:
                ctx.rate_limit = verdict
                if verdict.refused:
                    window = verdict.window
                    guard.blocked.block(
                        credential(req.environ), verdict.ends, window.amount, str(window)
                    )
                    return too_many(str(window))
        if guard.in_flight is not None:
            if not guard.in_flight.enter(caller):
                return too_many_in_flight(guard.in_flight.limit)
            ctx.in_flight = caller
        return None

    def after(self, response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        ctx = g._get_current_object()
        guard = self.guard
        headers = response.headers
        if req.path.startswith("/v1/"):
            headers["Cache-Control"] = "no-store"
            audit_response(guard.audit, response)
            mask(response, guard.masker, ctx.get("api_key"))
        cors_headers(req, response, guard.origins)
        verdict = ctx.get("rate_limit")
        if verdict is not None:
            headers.extend(verdict.headers())
            if response.status_code == 429 and "Retry-After" not in headers:
                headers["Retry-After"] = verdict.retry_after(time.time())
        if guard.limiter is not None and response.status_code not in _REFUSED:
            headers.pop("Retry-After", None)
        headers["X-Request-ID"] = ctx.get("request_id", "")
        started = ctx.get("started")
        if started is not None:
            rule = req.url_rule.rule if req.url_rule else "unmatched"
            metrics.observe(rule, req.method, response.status_code, time.perf_counter() - started)
        return response

    def teardown(self, _exc: BaseException | None) -> None:
        caller = g.pop("in_flight", None)
        if caller is not None and self.guard.in_flight is not None:
            self.guard.in_flight.leave(caller)


def _has_body(length: int | None, environ: dict) -> bool:
    if length:
        return True
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def install(app: Flask, guard: Hardening) -> RequestHooks:
    """Register the hooks on ``app`` (before any blueprint's own)."""
    hooks = RequestHooks(guard, app.config["MAX_CONTENT_LENGTH"])
    app.before_request(hooks.before)
    app.after_request(hooks.after)
    app.teardown_request(hooks.teardown)
    return hooks
