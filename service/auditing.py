"""Audit as a declared property of each route, and the hook that writes it.

Every ``/v1`` view says what it does to profiles: ``@blp.audit("read")`` (an action of
``profiles.audit.ACTIONS``) or ``@blp.not_audited("why")`` (``service/extensions.py``), on a
view method or on a whole ``MethodView`` class. :func:`audit_response`, run by
``service/hardening.py`` after every successful ``/v1`` request, reads the declaration of the
view that answered and appends an entry per profile id to ``profiles.audit.AuditLog``. The
declarations live on the functions, not in the OpenAPI document; tests/api/test_audit_declared.py
walks the url_map with :func:`undeclared_routes` and :func:`wrongly_unaudited` so a new route
cannot forget one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, Response, current_app, g, json, request

from profiles.audit import ACTIONS, AuditLog
from service import errors

log = logging.getLogger("rapport.hardening")  # the name it logged under before the move

_ATTR = "_rapport_audit"
_JSON_MIMES = {"application/json", errors.PROBLEM_MIME}
_AUTOMATIC = frozenset({"HEAD", "OPTIONS"})  # answered by Flask for every rule
# Routes holding profile data: a customer or merge id in the path, or customer ids in the body.
_PROFILE_ARG = re.compile(r"<(?:[^:<>]+:)?(customer_id|merge_id)>")
PROFILE_BODY_RULES = frozenset(
    {"/v1/profiles", "/v1/profiles/identify", "/v1/events", "/v1/ingest/segment"}
)


@dataclass(frozen=True)
class AuditDeclaration:
    """What a view declares: the audit ``action``, or None and the ``reason`` it is not audited."""

    action: str | None
    reason: str = ""


def declare_audit(action: str) -> Callable[[Any], Any]:
    """Mark a view method or ``MethodView`` class: successful answers are audited as ``action``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; one of {ACTIONS}")
    return _marker(AuditDeclaration(action))


def declare_not_audited(reason: str) -> Callable[[Any], Any]:
    """Mark a view method or ``MethodView`` class as not audited, saying why (no profile data)."""
    if not reason.strip():
        raise ValueError("say why the route is not audited")
    return _marker(AuditDeclaration(None, reason))


def _marker(declaration: AuditDeclaration) -> Callable[[Any], Any]:
    def decorator(target: Any) -> Any:
        setattr(target, _ATTR, declaration)
        return target

    return decorator


def declaration_of(view: Any, method: str) -> AuditDeclaration | None:
    """The declaration of the view function ``view`` (as in ``app.view_functions``) for HTTP
    ``method``: the method function's, else its ``MethodView`` class's, else None. Only the
    method itself counts (HEAD is not read as GET), as the table this replaces did."""
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return getattr(view, _ATTR, None)
    func = view_class.__dict__.get(method.lower())
    found = getattr(func, _ATTR, None) if func is not None else None
    return found if found is not None else view_class.__dict__.get(_ATTR)


def _routes(app: Flask, prefix: str) -> Iterable[tuple[str, str, Any]]:
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefix):
            continue
        for method in sorted((rule.methods or set()) - _AUTOMATIC):
            yield rule.rule, method, app.view_functions[rule.endpoint]


def undeclared_routes(app: Flask, prefix: str = "/v1/") -> list[str]:
    """``"METHOD rule"`` of every route under ``prefix`` (where the audit hook runs) whose view
    declares neither an audit action nor that it is not audited."""
    return [
        f"{method} {rule}"
        for rule, method, view in _routes(app, prefix)
        if declaration_of(view, method) is None
    ]


def wrongly_unaudited(app: Flask, prefix: str = "/v1/") -> list[str]:
    """``"METHOD rule"`` of every route holding profile data (see ``_PROFILE_ARG`` and
    :data:`PROFILE_BODY_RULES`) that is declared not audited."""
    out = []
    for rule, method, view in _routes(app, prefix):
        declared = declaration_of(view, method)
        profile_data = bool(_PROFILE_ARG.search(rule)) or rule in PROFILE_BODY_RULES
        if profile_data and declared is not None and declared.action is None:
            out.append(f"{method} {rule}")
    return out


# -- the hook ------------------------------------------------------------------------------------
def json_body(response: Response) -> Any:
    """The response's JSON document, or None (not JSON, streamed, or malformed)."""
    if response.mimetype not in _JSON_MIMES or response.direct_passthrough:
        return None
    try:
        return json.loads(response.get_data())
    except ValueError:
        return None


def _audited_ids(rule: str, body: Any) -> list[str]:
    """The profile ids a request touched: from the URL, the response body or (merge) the request."""
    ids: list[str] = []
    view_args = request.view_args or {}
    if "customer_id" in view_args:
        ids.append(str(view_args["customer_id"]))
    if isinstance(body, dict):
        keys = ("id",) if rule == "/v1/profiles" else ("customer_id", "target_id", "source_id")
        for key in keys:
            if isinstance(body.get(key), str):
                ids.append(body[key])
        profile = body.get("profile")
        if isinstance(profile, dict) and isinstance(profile.get("id"), str):
            ids.append(profile["id"])
        for item in body.get("results") or body.get("items") or []:
            if isinstance(item, dict) and isinstance(item.get("customer_id"), str):
                ids.append(item["customer_id"])
    if rule.endswith("/merge"):
        sent = request.get_json(silent=True)
        if isinstance(sent, dict) and isinstance(sent.get("source_id"), str):
            ids.append(sent["source_id"])
    return ids


def _declared_action() -> str | None:
    view = current_app.view_functions.get(request.endpoint or "")
    declared = declaration_of(view, request.method) if view is not None else None
    return declared.action if declared is not None else None


def audit_response(audit: AuditLog, response: Response) -> None:
    """Append who did the request's declared action to which profiles, after a 2xx answer
    with an API key; reads are written behind, changes at once (``profiles/audit.py``)."""
    key = g.get("api_key")
    if key is None or not 200 <= response.status_code < 300 or request.url_rule is None:
        return
    action = _declared_action()
    if action is None:
        return
    rule = request.url_rule.rule
    if action == "admin":  # no profile: one entry naming what was changed (the path)
        ids, rule = [""], request.path
    else:
        # a streamed answer (the export, service/json_stream.py) names its ids beside its body
        body = json_body(response)
        ids = _audited_ids(
            rule, body if body is not None else getattr(response, "audit_summary", None)
        )
    if not ids:
        return
    try:
        audit.record(
            action,
            ids,
            key_id=key.key_id,
            key_name=key.name,
            route=f"{request.method} {rule}",
            status=response.status_code,
            request_id=g.get("request_id", ""),
            defer=action == "read",  # write-behind (profiles/audit.py); changes at once
        )
    except redis.RedisError as exc:  # the answer is already computed; say the entry is missing
        log.error("audit entry not written: %s", exc.__class__.__name__)


admin_log = logging.getLogger("rapport.admin")


def admin_change(change: str, **details: Any) -> None:
    """A structured ``rapport.admin`` log line: what an admin changed (before/after, counts),
    by which key; the audit log's ``admin`` entry (``@blp.audit("admin")``) says who changed
    which path when."""
    key = g.get("api_key")
    admin_log.info(
        "admin change: %s",
        change,
        extra={
            "admin_change": change,
            "key_id": getattr(key, "key_id", ""),
            "key_name": getattr(key, "name", ""),
            **details,
        },
    )
