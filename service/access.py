"""Who is calling: the request's API key (:func:`current_key`) and the scope guard for views
(:func:`require_scope`; ``Blueprint.auth`` in ``service/extensions.py`` also documents it).

Keys, scopes and their verification are ``service/auth.py``'s; 401 and 403 are answered by
``service/errors.py``.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import g, request

from service.auth import SCOPES, ApiKey, Forbidden, Unauthenticated
from service.state import state

View = TypeVar("View", bound=Callable[..., Any])


def current_key() -> ApiKey:
    """Authenticate the request's API key (cached on ``g``); raise on failure.

    The key is a bearer token, or the user name of HTTP Basic (``Basic base64(key:)``, the
    password empty or ignored), which is how a Segment webhook destination sends it."""
    cached = g.get("api_key")
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "basic":
        token = _basic_user(token.strip())
    elif scheme.lower() != "bearer":
        token = ""
    if not token.strip():
        raise Unauthenticated("missing bearer token or Basic credentials")
    key = state().api_keys.verify(token.strip())
    if key is None:
        raise Unauthenticated("unknown API key")
    g.api_key = key
    return key


def _basic_user(credentials: str) -> str:
    """The user name of HTTP Basic ``credentials`` (``base64(user:password)``), or ""."""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""
    return decoded.partition(":")[0]


def require_scope(scope: str) -> Callable[[View], View]:
    """Decorator for a view function: authenticate, then check ``scope``."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope}")

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = current_key()
            if not key.allows(scope):
                raise Forbidden(scope)
            return view(*args, **kwargs)

        wrapper.required_scope = scope  # type: ignore[attr-defined]
        return cast(View, wrapper)

    return decorator
