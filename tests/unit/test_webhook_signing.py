"""Standard Webhooks signatures: the spec's formula computed by hand, the reference libraries'
test vector, and every way a tampered, stale or unsigned webhook is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from service.pii import Masker
from service.webhooks import payload, signing
from service.webhooks.signing import SignatureError

# The test vector of the Standard Webhooks reference libraries (standard-webhooks/standard-webhooks)
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _by_hand(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_sign_matches_the_reference_vector_and_the_formula_by_hand():
    assert signing.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE
    assert _by_hand(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE
    secret = signing.new_secret()
    body = json.dumps({"type": "profile.updated", "data": {"customer_id": "c-1"}}).encode()
    assert signing.sign(secret, "msg_3_1-0", 1733241600, body) == _by_hand(
        secret, "msg_3_1-0", 1733241600, body
    )


def test_new_secrets_are_whsec_base64_of_24_random_bytes():
    secrets = {signing.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[len("whsec_") :], validate=True)) == 24


def test_headers_carry_id_timestamp_signature_and_content_type():
    headers = signing.headers(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    assert headers == {
        "content-type": "application/json",
        "user-agent": "Rapport-Webhooks/1",
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }


def _vector_headers(**changes: str) -> dict[str, str]:
    headers = {
        "Webhook-Id": VECTOR_ID,
        "Webhook-Timestamp": str(VECTOR_TS),
        "Webhook-Signature": VECTOR_SIGNATURE,
    }
    headers.update(changes)
    return headers


def test_verify_accepts_the_genuine_webhook_with_any_header_case():
    signing.verify(VECTOR_SECRET, _vector_headers(), VECTOR_BODY, now=VECTOR_TS + 299)
    lower = {k.lower(): v for k, v in _vector_headers().items()}
    signing.verify(VECTOR_SECRET, lower, VECTOR_BODY, now=VECTOR_TS - 299)


def test_verify_accepts_any_of_several_signatures_during_a_rotation():
    other = signing.sign(signing.new_secret(), VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    both = _vector_headers(**{"Webhook-Signature": f"{other} {VECTOR_SIGNATURE}"})
    signing.verify(VECTOR_SECRET, both, VECTOR_BODY, now=VECTOR_TS)


_TS = "Webhook-Timestamp"
_SIG = "Webhook-Signature"
_REFUSED = [
    (_vector_headers(), b'{"test": 2432232315}', VECTOR_TS, "no matching"),
    (_vector_headers(**{_TS: str(VECTOR_TS + 1)}), VECTOR_BODY, VECTOR_TS, "no matching"),
    (_vector_headers(**{"Webhook-Id": "msg_other"}), VECTOR_BODY, VECTOR_TS, "no matching"),
    (_vector_headers(), VECTOR_BODY, VECTOR_TS + 301, "tolerance"),
    (_vector_headers(), VECTOR_BODY, VECTOR_TS - 301, "tolerance"),
    (_vector_headers(**{_TS: "soon"}), VECTOR_BODY, VECTOR_TS, "integer"),
    ({"webhook-id": VECTOR_ID, "webhook-timestamp": "1"}, VECTOR_BODY, 1, "missing"),
    (_vector_headers(**{_SIG: "v2" + VECTOR_SIGNATURE[2:]}), VECTOR_BODY, VECTOR_TS, "no match"),
    (_vector_headers(**{_SIG: "v1,"}), VECTOR_BODY, VECTOR_TS, "no matching"),
]


@pytest.mark.parametrize("headers, body, now, why", _REFUSED)
def test_verify_refuses_tampered_stale_or_unsigned_webhooks(headers, body, now, why):
    with pytest.raises(SignatureError, match=why):
        signing.verify(VECTOR_SECRET, headers, body, now=now)


def test_verify_refuses_a_webhook_signed_with_another_secret():
    with pytest.raises(SignatureError, match="no matching"):
        signing.verify(signing.new_secret(), _vector_headers(), VECTOR_BODY, now=VECTOR_TS)


def test_a_rotated_secret_stops_verifying_old_signatures():
    old, new = signing.new_secret(), signing.new_secret()
    headers = signing.headers(old, "msg_1_2-0", VECTOR_TS, b"{}")
    signing.verify(old, headers, b"{}", now=VECTOR_TS)
    with pytest.raises(SignatureError):
        signing.verify(new, headers, b"{}", now=VECTOR_TS)


# -- the payload the signature covers ------------------------------------------------------------
PROFILE = {"id": "c-1", "emails": ["jane.doe@example.com"], "phones": ["+436641234567"]}


def _entry(**fields: str) -> dict[str, str]:
    data = {
        "profile": {"id": "c-1", "emails": ["jane.doe@example.com"], "phones": ["+436641234567"]}
    }
    return {
        "type": "profile.updated",
        "customer_id": "c-1",
        "at_ms": "1733241600123",
        "data": json.dumps(data),
        "version": "7",
        **fields,
    }


def test_payload_is_the_standard_webhooks_shape_with_a_stable_id():
    msg_id, body = payload.body(_entry(), 3, "1733241600123-0", include_pii=True)
    assert msg_id == "msg_3_1733241600123-0"
    assert json.loads(body) == {
        "type": "profile.updated",
        "timestamp": "2024-12-03T16:00:00.123Z",
        "data": {
            "profile": {
                "id": "c-1",
                "emails": ["jane.doe@example.com"],
                "phones": ["+436641234567"],
            },
            "customer_id": "c-1",
            "version": 7,
        },
    }
    assert payload.body(_entry(), 3, b"1733241600123-0", True) == (msg_id, body)  # bytes too


def test_without_pii_emails_and_phones_are_masked_and_ids_kept():
    _, body = payload.body(_entry(), 0, "1-0", include_pii=False, masker=Masker())
    profile = json.loads(body)["data"]["profile"]
    assert profile == {"id": "c-1", "emails": ["j***@example.com"], "phones": ["+43********67"]}
    assert json.loads(body)["data"]["customer_id"] == "c-1"


def test_events_about_no_customer_have_a_null_customer_and_no_version():
    entry = _entry(type="model.activated", customer_id="", data='{"activation": {"version": "v2"}}')
    entry.pop("version")
    document = json.loads(payload.body(entry, 9, "5-1", include_pii=False)[1])
    assert document["data"] == {"activation": {"version": "v2"}, "customer_id": None}
