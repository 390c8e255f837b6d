"""Who is calling: the request's API key (:func:`current_key`) and the scope guard for views
(:func:`require_scope`; ``Blueprint.auth`` in ``service/extensions.py`` also documents it).

Keys, scopes and their verification are ``service/auth.py``'s; 401 and 403 are answered by
``service/errors.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import g, request

from service.auth import SCOPES, ApiKey, Forbidden, Unauthenticated
from service.state import state

View = TypeVar("View", bound=Callable[..., Any])


def current_key() -> ApiKey:
    """Authenticate the request's bearer token (cached on ``g``); raise on failure."""
    cached = g.get("api_key")
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token")
    key = state().api_keys.verify(token.strip())
    if key is None:
        raise Unauthenticated("unknown API key")
    g.api_key = key
    return key


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
