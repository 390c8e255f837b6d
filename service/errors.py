"""One error path: every error leaves as ``application/problem+json`` (RFC 9457).

:func:`problem_document` builds the document for every answer: the Flask handlers here (through
:func:`problem`) and the WSGI guards that answer before Flask (through :func:`wsgi_problem`:
``service/wsgi.py``, ``service/hardening.py``), all encoded by :func:`problem_bytes`.

Domain exceptions are plain classes raised by ``profiles``/``recommend``; ``DOMAIN_STATUS`` is the
one table that maps them to HTTP status codes. Validation errors carry a list of field errors
``{"field": "email", "location": "json", "message": "Not a valid email address."}``, where
``location`` is where the field was sent: ``json``, ``query``, ``path`` or ``header``. Every
problem type is listed in docs/errors.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from http import HTTPStatus
from typing import Any

import marshmallow as ma
import redis
from flask import Flask, Response, g, json, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from core import errors as domain
from service.auth import Forbidden, Unauthenticated
from service.state import state

PROBLEM_MIME = "application/problem+json"
log = logging.getLogger("rapport.errors")
# The id of the WSGI request in progress, set by service/hardening.py's outermost middleware
# (RequestIds): what a guard answering before Flask puts in its problem (wsgi_problem).
WSGI_REQUEST_ID: ContextVar[str | None] = ContextVar("rapport_wsgi_request_id", default=None)

# The one problem type for a request with invalid fields, whichever layer finds them: the
# schemas (webargs), the query guard (service/hardening.py) or a domain rule (InvalidInput).
VALIDATION_TYPE = "urn:rapport:problem:validation"
VALIDATION_TITLE = "Validation failed"
VALIDATION_DETAIL = "The request has invalid fields; see errors."
LOCATIONS = ("json", "query", "path", "header")
# webargs' names of the request parts -> the locations an error reports
_WEBARGS_LOCATIONS = {"querystring": "query", "headers": "header", "view_args": "path"}

# Most specific class first is not needed: lookup walks the exception's MRO.
DOMAIN_STATUS: dict[type[domain.RapportError], int] = {
    domain.RapportError: 400,
    domain.InvalidInput: 422,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.PreconditionFailed: 412,
}


class MalformedRequest(domain.RapportError):
    """A part of the request that breaks HTTP's own syntax (an empty ``If-Match``): 400, the
    ``malformed`` type of unparseable JSON; ``location`` names the part (``header``)."""

    title = "Malformed request"


MALFORMED_TYPE = "urn:rapport:problem:malformed"


class FieldErrorSchema(ma.Schema):
    field = ma.fields.String(
        metadata={"description": "Dotted path of the input at fault, e.g. `lines.0.quantity`"}
    )
    location = ma.fields.String(
        metadata={"enum": list(LOCATIONS), "description": "Where the field was sent"}
    )
    message = ma.fields.String()


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details; documents every error response."""

    class Meta:  # extension members (RFC 9457 3.2, e.g. required_scope): additionalProperties
        unknown = ma.INCLUDE

    type = ma.fields.String(metadata={"description": "URI reference naming the problem type"})
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    instance = ma.fields.String(metadata={"description": "The request path"})
    request_id = ma.fields.String()
    errors = ma.fields.List(ma.fields.Nested(FieldErrorSchema))


def problem_document(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type_: str | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    errors: list[dict[str, str]] | None = None,
    extensions: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """The problem document (RFC 9457) every error answer carries, Flask's or the WSGI guards'.

    ``title`` defaults to the status phrase and ``detail`` to the title; ``request_id`` and
    ``errors`` are left out when empty, and so is any member of ``extensions`` (RFC 9457 3.2,
    e.g. ``required_scope``) whose value is None.
    """
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": type_ or "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail or title or phrase,
        "instance": instance,
    }
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = errors
    body.update({k: v for k, v in (extensions or {}).items() if v is not None})
    return body


def problem_bytes(document: Mapping[str, Any]) -> bytes:
    """``document`` as the body bytes: the same encoding inside and outside a Flask app (the
    default JSON provider's: sorted keys, ASCII)."""
    return json.dumps(document, sort_keys=True).encode()


def problem(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type_: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, object] | None = None,
) -> Response:
    """A problem response for the current request (its path and request id filled in)."""
    document = problem_document(
        status,
        detail,
        title=title,
        type_=type_,
        instance=request.path if request else None,
        request_id=g.get("request_id") if g else None,
        errors=errors,
        extensions=extensions,
    )
    resp = Response(problem_bytes(document), status=status, mimetype=PROBLEM_MIME)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def wsgi_problem(
    start_response: Callable[..., Any],
    document: Mapping[str, Any],
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """Answer ``document`` from WSGI middleware, before Flask: its status, ``Content-Type``
    and ``Content-Length``, then ``headers``; the request id (:data:`WSGI_REQUEST_ID`) in the
    document and in ``X-Request-ID`` when they lack it. Returns the WSGI body."""
    headers = list(headers)
    rid = document.get("request_id") or WSGI_REQUEST_ID.get()
    if rid:
        document = {**document, "request_id": rid}
        if not any(name.lower() == "x-request-id" for name, _ in headers):
            headers.append(("X-Request-ID", rid))
    body = problem_bytes(document)
    status = int(document["status"])
    start_response(
        f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown Error')}",
        [("Content-Type", PROBLEM_MIME), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


def field_errors(messages: Any, location: str = "json", prefix: str = "") -> list[dict[str, str]]:
    """Flatten marshmallow/webargs messages into ``[{field, location, message}]``."""
    return list(_walk(messages, _WEBARGS_LOCATIONS.get(location, location), prefix))


def _walk(messages: Any, location: str, prefix: str) -> Iterator[dict[str, str]]:
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                path = prefix
            yield from _walk(value, location, path)
    elif isinstance(messages, list | tuple):
        for item in messages:
            if isinstance(item, str):
                yield {"field": prefix, "location": location, "message": item}
            else:
                yield from _walk(item, location, prefix)
    else:
        yield {"field": prefix, "location": location, "message": str(messages)}


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    data = getattr(error, "data", None) or {}
    headers.update(data.get("headers") or {})
    errors: list[dict[str, str]] = []
    messages = data.get("errors") or data.get("messages")
    if isinstance(messages, Mapping):
        # webargs nests messages by location: {"json": {...}, "query": {...}}
        for location, msgs in messages.items():
            errors.extend(field_errors(msgs, location))
    if status == 422:
        return validation_problem(errors, headers=headers)
    if status == 400 and errors:
        return problem(
            400,
            "; ".join(e["message"] for e in errors),
            title=MalformedRequest.title,
            type_=MALFORMED_TYPE,
            errors=errors,
            headers=headers,
        )
    detail = data.get("message") or error.description
    return problem(status, detail, headers=headers)


def validation_problem(
    errors: list[dict[str, str]],
    detail: str = VALIDATION_DETAIL,
    *,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, object] | None = None,
) -> Response:
    """The 422 for a request with invalid fields (``errors``: every field at fault)."""
    return problem(
        422,
        detail,
        title=VALIDATION_TITLE,
        type_=VALIDATION_TYPE,
        errors=errors,
        headers=headers,
        extensions=extensions,
    )


def problem_type(error_class: type[domain.RapportError]) -> str:
    """The problem type of a domain error: ``validation`` for every :class:`InvalidInput`
    (the same kind as a schema's 422), else the class name as a slug (``profile-not-found``)."""
    if issubclass(error_class, domain.InvalidInput):
        return VALIDATION_TYPE
    if issubclass(error_class, MalformedRequest):
        return MALFORMED_TYPE
    return f"urn:rapport:problem:{_slug(error_class.__name__)}"


def field_location(field: str, given: object = None) -> str:
    """Where the current request sent ``field``: ``given`` when the error says so, else the
    URL path for a path parameter, the query string for a query parameter the JSON body does
    not also hold, else the JSON body."""
    if given in LOCATIONS:
        return str(given)
    top = field.split(".", 1)[0]
    if top in (request.view_args or {}):
        return "path"
    if top in request.args:
        body = request.get_json(silent=True) if request.is_json else None
        if not (isinstance(body, Mapping) and top in body):
            return "query"
    return "json"


def handle_domain_error(error: domain.RapportError) -> Response:
    status = next((DOMAIN_STATUS[cls] for cls in type(error).__mro__ if cls in DOMAIN_STATUS), 400)
    extra = dict(error.extra)
    location = extra.pop("location", None)
    extensions = {k: v for k, v in extra.items() if _jsonable(v)}
    errors = None
    if error.field:
        where = field_location(error.field, location)
        errors = [{"field": error.field, "location": where, "message": error.detail}]
    if isinstance(error, domain.InvalidInput):
        return validation_problem(errors or [], error.detail, extensions=extensions)
    return problem(
        status,
        error.detail,
        title=error.title,
        type_=problem_type(type(error)),
        errors=errors,
        extensions=extensions,
    )


def handle_redis_unavailable(error: redis.RedisError) -> Response:
    log.warning("redis unavailable: %s", error.__class__.__name__)
    return problem(
        503,
        "The profile store is unavailable; retry later.",
        title="Service unavailable",
        type_="urn:rapport:problem:store-unavailable",
        headers={"Retry-After": str(state().config.retry_after)},
    )


# Error replies with which Redis refuses a command for now (memory full, replicas behind, busy
# script, loading its data): the request may succeed later, so 503 + Retry-After, not 500.
TRANSIENT_REPLIES = ("OOM", "NOREPLICAS", "BUSY", "LOADING", "MASTERDOWN", "CLUSTERDOWN")


def handle_redis_reply(error: redis.ResponseError) -> Response:
    if isinstance(error, redis.exceptions.OutOfMemoryError) or str(error).startswith(
        TRANSIENT_REPLIES
    ):
        return handle_redis_unavailable(error)
    return handle_unexpected(error)


def handle_unauthenticated(error: Unauthenticated) -> Response:
    return problem(
        401,
        f"{error}: send 'Authorization: Bearer <API key>'.",
        title="Unauthorized",
        type_="urn:rapport:problem:unauthenticated",
        headers={"WWW-Authenticate": 'Bearer realm="rapport"'},
    )


def handle_forbidden(error: Forbidden) -> Response:
    return problem(
        403,
        f"this API key lacks the scope {error.scope!r}",
        title="Forbidden",
        type_="urn:rapport:problem:missing-scope",
        extensions={"required_scope": error.scope},
    )


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem(500, "An unexpected error occurred; it has been logged.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(domain.RapportError, handle_domain_error)
    app.register_error_handler(Unauthenticated, handle_unauthenticated)
    app.register_error_handler(Forbidden, handle_forbidden)
    for exc in (
        redis.ConnectionError,
        redis.TimeoutError,
        redis.exceptions.ReadOnlyError,
        redis.exceptions.MasterDownError,
        # Redis Cluster: down, resharding, or a slot with no node right now (redis_connect.py)
        redis.exceptions.ClusterError,
        redis.exceptions.TryAgainError,
        redis.exceptions.SlotNotCoveredError,
    ):
        app.register_error_handler(exc, handle_redis_unavailable)
    app.register_error_handler(redis.ResponseError, handle_redis_reply)
    app.register_error_handler(Exception, handle_unexpected)


def _slug(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("-")
        out.append(ch.lower())
    return "".join(out)


def _jsonable(value: object) -> bool:
    return isinstance(value, str | int | float | bool | list | dict) or value is None
