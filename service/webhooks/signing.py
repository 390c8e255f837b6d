"""Standard Webhooks signatures (https://www.standardwebhooks.com/, spec/standard-webhooks.md).

A secret is ``whsec_`` + base64 of 24 random bytes; the HMAC key is the decoded bytes. The
signature of one attempt is ``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), sent
in ``webhook-signature`` beside ``webhook-id`` and ``webhook-timestamp`` (integer seconds). Only
the standard library is used, so a receiver can copy :func:`verify` (docs/webhooks.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

PREFIX = "whsec_"
SECRET_BYTES = 24
TOLERANCE = 300  # seconds a timestamp may be off (replay window)


class SignatureError(Exception):
    """The headers or the signature of a webhook do not check out."""


def new_secret() -> str:
    """A fresh signing secret, ``whsec_<base64 of 24 random bytes>``."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of ``secret`` (the bytes after ``whsec_``, base64-decoded)."""
    encoded = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("the secret is not base64") from exc


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Base64 of HMAC-SHA256 over ``{id}.{timestamp}.{body}``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64>``."""
    return "v1," + signature(secret_key(secret), msg_id, int(timestamp), body)


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header of one delivery attempt."""
    return {
        "content-type": "application/json",
        "user-agent": "Rapport-Webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = TOLERANCE,
    now: float | None = None,
) -> None:
    """Check a received webhook; raises :class:`SignatureError` when it is not genuine or its
    timestamp is more than ``tolerance`` seconds from ``now``. Header names are case-insensitive;
    ``webhook-signature`` may list several space-separated ``v1,…`` signatures (rotation)."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    sent = lower.get("webhook-signature")
    if not msg_id or not stamp or not sent:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise SignatureError("webhook-timestamp is not an integer") from exc
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance")
    expected = signature(secret_key(secret), msg_id, timestamp, body)
    for candidate in sent.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return
    raise SignatureError("no matching signature")
