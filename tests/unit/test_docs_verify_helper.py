"""The copyable verify helper of docs/webhooks.md works: it is extracted from the page, run
(with nothing but the standard library available to it) and checked against what the worker
signs (``service/webhooks/signing.py``), and it refuses what it must refuse."""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import pytest

from service.webhooks import payload, signing

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _helper(where: Path) -> types.ModuleType:
    blocks = [b for b in _BLOCK.findall(DOC.read_text()) if "def verify_webhook(" in b]
    assert len(blocks) == 1, "docs/webhooks.md must hold one verify_webhook block"
    code = blocks[0]
    imported = set(re.findall(r"^import (\w+)", code, re.M)) | set(
        re.findall(r"^from (\w+)", code, re.M)
    )
    assert imported <= {"base64", "hashlib", "hmac", "json", "time"}, imported
    module = types.ModuleType("docs_webhook_verify")
    compiled = compile(code, str(DOC), "exec")
    # the documented code is run as a module, exactly as a receiver would paste it
    exec(compiled, module.__dict__)
    return module


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    return _helper(tmp_path_factory.mktemp("receiver"))


def _delivery(secret: str, at: int = 1_733_241_601):
    entry = {
        "type": "profile.updated",
        "customer_id": "c-1",
        "at_ms": "1733241600000",
        "data": json.dumps({"profile": {"id": "c-1", "emails": ["ada@example.com"]}}),
        "version": "7",
    }
    msg_id, body = payload.body(entry, 3, "1733241600000-0", include_pii=True, masker=None)
    return signing.headers(secret, msg_id, at, body), body


def test_the_doc_helper_accepts_what_the_worker_signs(helper):
    secret = signing.new_secret()
    headers, body = _delivery(secret)
    event = helper.verify_webhook(secret, headers, body, now=1_733_241_601)
    assert event["type"] == "profile.updated"
    assert event["data"]["customer_id"] == "c-1" and event["data"]["version"] == 7
    assert event["data"]["profile"]["emails"] == ["ada@example.com"]
    upper = {k.title(): v for k, v in headers.items()}
    assert helper.verify_webhook(secret, upper, body.decode(), now=1_733_241_700)["type"]


def test_the_doc_helper_and_signing_agree_on_the_reference_vector(helper):
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    secret, body = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b'{"test": 2432232314}'
    assert helper.verify_webhook(secret, headers, body, now=1614265330) == {"test": 2432232314}
    signing.verify(secret, headers, body, now=1614265330)


def test_the_doc_helper_refuses_tampering_replays_and_other_secrets(helper):
    secret = signing.new_secret()
    headers, body = _delivery(secret)
    now = 1_733_241_601
    refused = [
        (secret, headers, body.replace(b"ada", b"eve"), now),
        (secret, {**headers, "webhook-timestamp": str(now + 1)}, body, now),
        (secret, {**headers, "webhook-id": "msg_3_1-0"}, body, now),
        (secret, headers, body, now + 301),  # a replay after the tolerance
        (secret, {k: v for k, v in headers.items() if k != "webhook-signature"}, body, now),
        (secret, {**headers, "webhook-timestamp": "later"}, body, now),
        (signing.new_secret(), headers, body, now),
    ]
    for args in refused:
        with pytest.raises(helper.WebhookVerificationError):
            helper.verify_webhook(*args[:3], now=args[3])
        with pytest.raises(signing.SignatureError):
            signing.verify(*args[:3], now=args[3])
