"""Slow-client limits and the scan that tells when a request has fully arrived.

``service/gunicorn_worker.py`` reads every request in the worker's event loop, without a
thread, and hands it to a thread only once the scan here says the head and the whole body are
in its buffer. These are the deadlines it enforces (README, "Configuration"):

- the request head must arrive within ``RAPPORT_HEADER_TIMEOUT`` seconds of the connection
  being accepted (or of a kept-alive connection becoming readable again);
- the body within ``RAPPORT_BODY_TIMEOUT`` seconds of the head, plus one second per
  ``RAPPORT_BODY_MIN_RATE`` bytes it declares (a chunked body: per byte of the body limit);
- an address may hold ``RAPPORT_MAX_CONNECTIONS_PER_ADDRESS`` connections per worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from service.config import ConfigError

# What the scan found (``RequestScan.state``).
INCOMPLETE = "incomplete"  # wait for more bytes
COMPLETE = "complete"  # head and body are buffered: hand the request to a thread
TOO_LARGE = "too_large"  # the body is over the limit: answer 413 at once
UNREADABLE = "unreadable"  # let gunicorn's parser answer it (400, 414, 431, 501)

# A head this long without its end is over gunicorn's own limits (request line 8190, 100
# fields of 8190): its parser answers 414/431 from the buffer without waiting for more.
MAX_HEAD_BYTES = 8190 + 100 * 8192 + 4
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(frozen=True)
class SlowClientLimits:
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    body_min_rate: int = 50_000
    max_connections_per_address: int = 64

    ENV = (
        ("RAPPORT_HEADER_TIMEOUT", "header_timeout", float),
        ("RAPPORT_BODY_TIMEOUT", "body_timeout", float),
        ("RAPPORT_BODY_MIN_RATE", "body_min_rate", int),
        ("RAPPORT_MAX_CONNECTIONS_PER_ADDRESS", "max_connections_per_address", int),
    )

    def __post_init__(self) -> None:
        if not 0 < self.header_timeout <= 3600:
            raise ConfigError("RAPPORT_HEADER_TIMEOUT: must be in (0, 3600]")
        if not 0 < self.body_timeout <= 3600:
            raise ConfigError("RAPPORT_BODY_TIMEOUT: must be in (0, 3600]")
        if self.body_min_rate < 1:
            raise ConfigError("RAPPORT_BODY_MIN_RATE: must be at least 1 (bytes per second)")
        if self.max_connections_per_address < 0:
            raise ConfigError("RAPPORT_MAX_CONNECTIONS_PER_ADDRESS: must be 0 (no bound) or more")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SlowClientLimits:
        environ = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        for env, name, kind in cls.ENV:
            raw = environ.get(env)
            if raw:
                try:
                    values[name] = kind(raw)
                except ValueError:
                    raise ConfigError(f"{env}: cannot read {raw!r} as {kind.__name__}") from None
        return cls(**values)  # type: ignore[arg-type]

    def body_seconds(self, length: int) -> float:
        """Seconds a body of ``length`` bytes may take after the head."""
        return self.body_timeout + length / self.body_min_rate


@dataclass
class RequestScan:
    """The state of one request being read: feed it the buffer as it grows.

    ``end`` is the offset just past the request once ``state`` is COMPLETE (bytes after it
    belong to the next, pipelined request). ``body_length`` is the declared length (the body
    limit for a chunked body), known once the head is in.
    """

    body_limit: int
    state: str = INCOMPLETE
    head_end: int = -1
    body_length: int = 0
    chunked: bool = False
    expects_continue: bool = False
    end: int = -1
    _chunk_pos: int = 0
    _chunk_total: int = 0

    def feed(self, buf: bytearray) -> str:
        if self.head_end < 0:
            self._scan_head(buf)
        if self.head_end >= 0 and self.state == INCOMPLETE:
            self._scan_chunks(buf) if self.chunked else self._scan_length(buf)
        return self.state

    def _scan_head(self, buf: bytearray) -> None:
        ends = [i for i in (buf.find(b"\r\n\r\n"), buf.find(b"\n\n")) if i >= 0]
        if not ends:
            if len(buf) > MAX_HEAD_BYTES:
                self.state = UNREADABLE
            return
        cut = min(ends)
        self.head_end = cut + (4 if buf.startswith(b"\r\n\r\n", cut) else 2)
        lengths, codings = [], []
        for line in bytes(buf[:cut]).split(b"\n")[1:]:
            name, sep, value = line.partition(b":")
            name = name.strip().lower()
            if not sep:
                continue
            if name == b"content-length":
                lengths.append(value.strip())
            elif name == b"transfer-encoding":
                codings.append(value.strip().lower())
            elif name == b"expect" and value.strip().lower() == b"100-continue":
                self.expects_continue = True
        if codings:
            if len(codings) > 1 or codings[0] != b"chunked" or lengths:
                self.state = UNREADABLE  # gunicorn refuses (or decides) these itself
                return
            self.chunked = True
            self._chunk_pos = self.head_end
            self.body_length = self.body_limit
        elif lengths:
            if len(set(lengths)) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
                self.state = UNREADABLE
                return
            self.body_length = int(lengths[0])
            if self.body_length > self.body_limit:
                self.state = TOO_LARGE

    def _scan_length(self, buf: bytearray) -> None:
        if len(buf) >= self.head_end + self.body_length:
            self.end = self.head_end + self.body_length
            self.state = COMPLETE

    def _scan_chunks(self, buf: bytearray) -> None:
        pos = self._chunk_pos
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if len(buf) - pos > 4096:  # no chunk-size line is that long
                    self.state = UNREADABLE
                return
            size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                self.state = UNREADABLE
                return
            if size == 0:
                self._scan_trailers(buf, eol + 2)
                return
            if self._chunk_total + size > self.body_limit:
                self.state = TOO_LARGE
                return
            following = eol + 2 + size + 2
            if len(buf) < following:
                return
            pos = self._chunk_pos = following
            self._chunk_total += size

    def _scan_trailers(self, buf: bytearray, pos: int) -> None:
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if len(buf) - pos > MAX_HEAD_BYTES:
                    self.state = UNREADABLE
                return
            if eol == pos:
                self.end = eol + 2
                self.state = COMPLETE
                return
            pos = eol + 2
