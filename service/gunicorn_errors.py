"""gunicorn's own error answers as problem+json, like every other error of the service.

gunicorn answers a request it cannot parse itself, before the app sees it: a request line over
``limit_request_line`` (414), too many or too large header fields (431), a malformed request
line or header (400), an unsupported transfer coding (501). Its answer is an HTML page;
:func:`install` (called by ``gunicorn.conf.py``'s ``post_worker_init``) makes it the problem
document of ``service/errors.py`` instead, with a new ``request_id`` (the request's own
``X-Request-ID`` is not read by then) in the body and in ``X-Request-ID``.
"""

from __future__ import annotations

import socket

from gunicorn import util

from service.errors import PROBLEM_MIME, problem_bytes, problem_document
from service.logs import request_id


def problem_answer(status: int, reason: str, message: str) -> bytes:
    """The whole HTTP/1.1 answer for gunicorn's error ``status`` (the connection closes)."""
    rid = request_id("")
    document = problem_document(status, message or reason, title=reason, request_id=rid)
    document.pop("instance")  # the request target is what could not be read
    body = problem_bytes(document)
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_MIME}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {rid}\r\n"
        "Cache-Control: no-store\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, answering problem+json."""
    util.write_nonblock(sock, problem_answer(status_int, reason, mesg))


def install() -> None:
    """Answer gunicorn's errors in this worker as problem documents. gunicorn has no hook for
    them; its workers call ``gunicorn.util.write_error`` at the time of the error, which this
    replaces."""
    util.write_error = write_problem
