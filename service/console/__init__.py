"""The agent console: one page that shows a customer at a glance (``/console``).

The page is static HTML, CSS and a little JavaScript; the browser calls the public ``/v1`` API
with the agent's API key (kept in ``sessionStorage``, sent as a bearer token), so the console
has no data path of its own. The one JSON route here, ``/console/session``, tells the page
which scopes the key holds (to disable Accept/Dismiss without ``actions:write``).

Every console response carries a strict Content-Security-Policy (scripts and styles only from
this origin, no inline code, no network except this origin) because the page shows customer
data. ``frame-ancestors`` comes from ``RAPPORT_CONSOLE_FRAME_ANCESTORS`` so a helpdesk can embed
the deep link ``/console/customers/<id>``.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template

from service.access import current_key
from service.auth import SCOPES
from service.state import state

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

# What the page needs to work at all, and what the Accept / Dismiss buttons need.
READ_SCOPES = ("profiles:read", "recommend:read")
WRITE_SCOPE = "actions:write"
PII_SCOPE = "pii:read"  # without it the API masks emails and phone numbers (service/hardening.py)


def content_security_policy(frame_ancestors: str) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        )
    )


@bp.after_request
def security_headers(response: Response) -> Response:
    ancestors = getattr(state().config, "console_frame_ancestors", None) or "'self'"
    response.headers["Content-Security-Policy"] = content_security_policy(ancestors)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if response.mimetype in ("text/html", "application/json"):
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
@bp.get("/")
def console_page():
    """The console; with no customer in the URL it opens on the look-up."""
    return render_template("console/console.html")


@bp.get("/customers/<string:customer_id>")
def customer_page(customer_id: str):
    """Deep link for a helpdesk: the page reads the id from its own URL."""
    return render_template("console/console.html")


@bp.get("/session")
def session():
    """The signed-in key: name and scopes, and whether the console can use it (401 if not)."""
    key = current_key()
    granted = [s for s in SCOPES if key.allows(s)]
    missing = [s for s in READ_SCOPES if not key.allows(s)]
    return jsonify(
        key_id=key.key_id,
        name=key.name,
        scopes=list(key.scopes),
        granted=granted,
        missing=missing,
        can_read=not missing,
        can_give_feedback=key.allows(WRITE_SCOPE),
        can_see_pii=key.allows(PII_SCOPE),
        can_admin=key.allows("admin"),
    )
