"""Structured JSON logs, one object per line, with the request id when there is a request."""

from __future__ import annotations

import json
import logging
import sys
import time

from flask import g, has_request_context

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


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
