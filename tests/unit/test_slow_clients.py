"""The scan that tells the buffering worker when a request has fully arrived."""

from __future__ import annotations

import pytest

from service.config import ConfigError
from service.slow_clients import (
    COMPLETE,
    INCOMPLETE,
    TOO_LARGE,
    UNREADABLE,
    RequestScan,
    SlowClientLimits,
)

HEAD = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def _feed_bytewise(raw: bytes, limit: int = 1000) -> tuple[RequestScan, list[str]]:
    scan, buf, states = RequestScan(limit), bytearray(), []
    for byte in raw:
        buf.append(byte)
        states.append(scan.feed(buf))
        if states[-1] != INCOMPLETE:
            break
    return scan, states


def test_a_request_is_complete_only_with_its_whole_body():
    raw = HEAD + b"Content-Length: 5\r\n\r\n" + b"12345" + b"GET / HTTP/1.1\r\n"
    scan, states = _feed_bytewise(raw)
    assert states[-1] == COMPLETE
    assert scan.end == len(HEAD) + len(b"Content-Length: 5\r\n\r\n") + 5
    assert len(states) == scan.end  # complete at the body's last byte, not before
    assert scan.body_length == 5


def test_a_get_is_complete_at_the_end_of_its_head():
    raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    scan, states = _feed_bytewise(raw)
    assert states == [INCOMPLETE] * (len(raw) - 1) + [COMPLETE]
    assert scan.end == len(raw) and scan.body_length == 0


def test_a_chunked_body_ends_at_its_last_chunk_and_trailers():
    body = b"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
    raw = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + body
    scan, states = _feed_bytewise(raw)
    assert states[-1] == COMPLETE and scan.end == len(raw) == len(states)
    assert scan.chunked and scan.body_length == 1000  # the deadline allows the body limit


def test_bodies_over_the_limit_are_refused_before_they_arrive():
    scan, states = _feed_bytewise(HEAD + b"Content-Length: 1001\r\n\r\n")
    assert states[-1] == TOO_LARGE
    chunked = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"3e9\r\n"  # 1001 bytes
    assert _feed_bytewise(chunked)[1][-1] == TOO_LARGE


@pytest.mark.parametrize(
    "extra",
    [
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: 0x10\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ],
)
def test_ambiguous_framing_goes_to_gunicorns_parser(extra):
    """gunicorn answers these itself (400/501); the scan only must not wait for them."""
    assert _feed_bytewise(HEAD + extra + b"\r\n")[1][-1] == UNREADABLE


def test_a_bad_chunk_size_goes_to_gunicorns_parser():
    raw = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"zz\r\n"
    assert _feed_bytewise(raw)[1][-1] == UNREADABLE


def test_expect_continue_is_noticed():
    scan, _ = _feed_bytewise(HEAD + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert scan.expects_continue and scan.head_end > 0


def test_limits_read_from_the_environment_name_the_variable():
    limits = SlowClientLimits.from_env(
        {"RAPPORT_HEADER_TIMEOUT": "4", "RAPPORT_BODY_MIN_RATE": "1000"}
    )
    assert limits.header_timeout == 4.0
    assert limits.body_seconds(5000) == limits.body_timeout + 5.0
    with pytest.raises(ConfigError, match="RAPPORT_BODY_TIMEOUT"):
        SlowClientLimits.from_env({"RAPPORT_BODY_TIMEOUT": "0"})
    with pytest.raises(ConfigError, match="RAPPORT_MAX_CONNECTIONS_PER_ADDRESS"):
        SlowClientLimits.from_env({"RAPPORT_MAX_CONNECTIONS_PER_ADDRESS": "x"})
