"""Structured JSON logs, one object per line, with the request id when there is a request.

Emails and phone numbers in a message or a string field (a path, a query) are masked
(``service/pii.py`` ``redact``), with the app's ``RAPPORT_PII_REGIONS`` when there is one.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
import uuid

from flask import current_app, g, has_app_context, has_request_context

from service import pii

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id(incoming: str) -> str:
    """The id a request goes by in logs, answers and ``X-Request-ID``: the caller's
    ``X-Request-ID`` (``incoming``) when it is 1-128 of ``A-Za-z0-9._:-``, else a new one."""
    return incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        masker = _masker()
        doc["msg"] = pii.redact(doc["msg"], masker)
        if has_request_context():
            rid = g.get("request_id")
            if rid:
                doc["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = pii.redact(value, masker) if isinstance(value, str) else value
        if record.exc_info:
            doc["exc"] = pii.redact(self.formatException(record.exc_info), masker)
        return json.dumps(doc, default=str)


def _masker() -> pii.Masker:
    """The app's masker (its RAPPORT_PII_REGIONS), else one from the environment."""
    if has_app_context():
        masker = current_app.extensions.get("rapport.pii")
        if masker is not None:
            return masker
    return _env_masker()


@functools.cache
def _env_masker() -> pii.Masker:
    try:
        return pii.Masker.from_env()
    except ValueError:
        return pii.DEFAULT  # a bad RAPPORT_PII_REGIONS is refused by the config, not here


def redact_access_atoms(atoms: dict) -> dict:
    """gunicorn's access-log atoms with the path, request line, query and referer redacted."""
    masker = _env_masker()
    for name in ("U", "r", "q", "f", "{referer}i"):
        value = atoms.get(name)
        if isinstance(value, str):
            atoms[name] = pii.redact(value, masker)
    return atoms


def configure_logging(level: str = "INFO", stream=None) -> None:
    """Send the ``rapport`` loggers to ``stream`` (stderr) as JSON lines; idempotent."""
    logger = logging.getLogger("rapport")
    logger.setLevel(level.upper())
    for h in list(logger.handlers):
        if getattr(h, "_rapport", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._rapport = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
