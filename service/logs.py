"""Structured JSON logs, one object per line, with the request id when there is a request."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from flask import g, has_request_context

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
        if has_request_context():
            rid = g.get("request_id")
            if rid:
                doc["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


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
