"""POST one webhook attempt to a vetted address, with keep-alive connections per thread.

The URL is resolved and vetted (:func:`service.webhooks.targets.resolve`) at most every
``resolve_ttl`` seconds (5 by default; again at once after a network error) and the
connection is made to that vetted IP address, with ``Host`` (and, for https, SNI and certificate
checks) for the URL's host name, so a DNS answer cannot change between the check and the
connection. Redirects are never followed (a 3xx is a failed attempt); the response body is read
up to 64 kB and dropped. Network errors never raise: they are an :class:`Attempt` with ``error``.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from service.webhooks.targets import Target, TargetPolicy, TargetRefused, resolve

MAX_RESPONSE = 64 * 1024
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Attempt:
    """One attempt's outcome: the HTTP ``status`` (None when none came back), the ``error``
    (None when a 2xx came back) and how long it took in ``seconds``."""

    status: int | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to ``host`` that connects to the vetted ``ip``."""

    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self.ip = target.ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self.ip, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(_PinnedHTTP):
    """An HTTPS connection to the vetted ``ip``; TLS checks the certificate for ``host``."""

    default_port = 443

    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext):
        super().__init__(target, timeout)
        self.context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


def _key(target: Target) -> tuple[str, str, int, str]:
    """Connections are shared by targets with the same scheme, host, port and address."""
    return (target.scheme, target.host, target.port, target.ip)


class Sender:
    """Sends webhook attempts under ``policy``; ``timeout`` (seconds) bounds connecting and each
    read. One instance may be shared by threads: each thread keeps its own connections."""

    def __init__(
        self,
        policy: TargetPolicy,
        timeout: float,
        *,
        ssl_context: ssl.SSLContext | None = None,
        resolve_ttl: float = 5.0,
    ):
        self.policy = policy
        self.timeout = timeout
        # url -> (vetted target, monotonic expiry): a lookup and the checks cost ~0.13 ms per
        # send; a cached target is still the vetted address, so a DNS change cannot bypass them
        self.resolve_ttl = resolve_ttl
        self._targets: dict[str, tuple[Target, float]] = {}
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._local = threading.local()
        self._pools: list[dict[tuple[str, str, int, str], _PinnedHTTP]] = []  # every thread's
        self._lock = threading.Lock()
        self.connections_opened = 0  # for tests and metrics: new TCP connections made

    def _pool(self) -> dict[tuple[str, str, int, str], _PinnedHTTP]:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
            with self._lock:
                self._pools.append(pool)
        return pool

    def _connection(self, target: Target) -> tuple[_PinnedHTTP, bool]:
        """A connection for ``target`` and whether it was reused from this thread's pool."""
        pool = self._pool()
        conn = pool.get(_key(target))
        if conn is not None:
            return conn, True
        if target.scheme == "https":
            conn = _PinnedHTTPS(target, self.timeout, self.ssl_context)
        else:
            conn = _PinnedHTTP(target, self.timeout)
        self.connections_opened += 1
        pool[_key(target)] = conn
        return conn, False

    def _drop(self, target: Target | tuple[str, str, int, str]) -> None:
        key = _key(target) if isinstance(target, Target) else target
        conn = self._pool().pop(key, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close every thread's connections (at shutdown; a thread's next post reconnects)."""
        with self._lock:
            pools = list(self._pools)
        for pool in pools:
            for key in list(pool):
                conn = pool.pop(key, None)
                if conn is not None:
                    conn.close()

    def _exchange(self, target: Target, headers: dict[str, str], body: bytes) -> int:
        """POST once and return the status; a reused connection the server had closed is
        retried once on a fresh one (nothing was answered on it)."""
        for _ in range(2):
            conn, reused = self._connection(target)
            try:
                conn.request("POST", target.path, body=body, headers=headers)
                response = conn.getresponse()
            except _STALE:
                self._drop(target)
                if reused:
                    continue
                raise
            except BaseException:
                self._drop(target)
                raise
            try:
                response.read(MAX_RESPONSE)
            except BaseException:
                self._drop(target)
                raise
            if not response.isclosed() or response.will_close:
                self._drop(target)  # more than we read, or the server closes it
            return response.status
        raise http.client.RemoteDisconnected("the connection was closed")  # pragma: no cover

    def _target(self, url: str, now: float) -> Target:
        """The vetted target of ``url``, looked up again after ``resolve_ttl`` seconds."""
        cached = self._targets.get(url)
        if cached is not None and cached[1] > now:
            return cached[0]
        target = resolve(url, self.policy)
        self._targets[url] = (target, now + self.resolve_ttl)
        return target

    def post(self, url: str, headers: dict[str, str], body: bytes) -> Attempt:
        """POST ``body`` to ``url``; never raises for refused targets or network errors."""
        started = time.monotonic()

        def attempt(status: int | None, error: str | None) -> Attempt:
            if error is not None and status is None:
                self._targets.pop(url, None)  # a network error: look the name up again
            return Attempt(status, error, time.monotonic() - started)

        try:
            target = self._target(url, started)
        except TargetRefused as exc:
            return attempt(None, f"target refused: {exc.detail}")
        sent = {k: v for k, v in headers.items() if k.lower() not in {"host", "content-length"}}
        try:
            status = self._exchange(target, sent, body)
        except TimeoutError:
            return attempt(None, f"timeout after {self.timeout:g} s")
        except ssl.SSLError as exc:
            return attempt(None, f"tls: {exc.reason or exc}")
        except (OSError, http.client.HTTPException) as exc:
            return attempt(None, f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= status < 300:
            return attempt(status, None)
        if 300 <= status < 400:
            return attempt(status, "redirect not followed")
        return attempt(status, f"HTTP {status}")
