"""gunicorn's gthread worker with every request read in the event loop, not in a thread.

gunicorn's own gthread worker gives a connection to a thread as soon as it is readable; the
thread then reads the head and the body with blocking calls, so a client that sends them one
byte at a time holds that thread for as long as it likes, and a few dozen such clients hold
all of them (issue 18). Here the worker's main loop, which already waits for kept-alive
connections without a thread, also reads each request into a buffer with non-blocking reads
until ``service/slow_clients.py`` says its head and whole body are in; only then does a thread
get it, with the bytes handed to gunicorn's parser, which never waits on the socket. Past a
deadline the connection is answered 408 (or closed, if it never sent a byte); a body declared
or sent over ``RAPPORT_MAX_BODY_BYTES`` is answered 413 at once; an address over its share of
connections is closed on accept. Whole requests wait for a thread in a queue per caller, served
in turn (``service/fair_queue.py``), so one caller's many connections do not put all its
requests ahead of everybody else's. Why this and not another worker class or a proxy:
docs/reliability.md, "Slow clients".

TLS is not read here (terminate it in front, as deploy/nginx.conf does): with ``certfile`` set
the worker behaves as gunicorn's gthread.
"""

from __future__ import annotations

import errno
import selectors
import time
from collections import Counter
from functools import partial

from gunicorn import http
from gunicorn.workers.gthread import TConn, ThreadWorker

from service.fair_queue import FairQueue, caller_of
from service.gunicorn_errors import problem_answer
from service.slow_clients import (
    CONTINUE,
    INCOMPLETE,
    TOO_LARGE,
    RequestScan,
    SlowClientLimits,
)

READ_SIZE = 65536


class GuardedConn(TConn):
    """A connection that tells its worker when it closes (the per-address count), once."""

    def __init__(self, cfg, sock, client, server, on_close):
        super().__init__(cfg, sock, client, server)
        self.on_close = on_close
        self.reading: Reading | None = None
        self.ready = False  # the buffered request may go to a thread
        self.dispatched = False  # counted in the worker's requests in threads

    def close(self, graceful=False):
        try:
            super().close(graceful)
        finally:
            if self.on_close is not None:
                self.on_close, on_close = None, self.on_close
                on_close(self)


class Reading:
    """A request being read into ``buf`` by the event loop, and its deadline."""

    def __init__(self, body_limit: int, buf: bytes, deadline: float):
        self.buf = bytearray(buf)
        self.scan = RequestScan(body_limit)
        self.deadline = deadline
        self.body_deadline_set = False
        self.continue_sent = False


class BufferingThreadWorker(ThreadWorker):
    """gthread with requests buffered by the event loop under deadlines (module docstring)."""

    def run(self):
        self.limits = SlowClientLimits.from_env()
        config = getattr(self.wsgi, "config", None) or {}
        self.body_limit = int(config.get("MAX_CONTENT_LENGTH") or 1024 * 1024)
        self.per_address: Counter[str] = Counter()
        self.readings: set[GuardedConn] = set()
        self.buffering = not self.cfg.is_ssl
        self.waiting: FairQueue[GuardedConn] = FairQueue()  # whole requests, no thread yet
        self.in_threads = 0  # requests of ``waiting`` handed to the pool and not finished
        super().run()

    # -- connections in --------------------------------------------------------------------
    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        address = client_addr[0] if isinstance(client_addr, tuple) else ""
        bound = self.limits.max_connections_per_address
        if address and bound and self.per_address[address] >= bound:
            self.log.debug("Closed a connection from %s: %d open already", address, bound)
            client_sock.close()
            return
        self.nr_conns += 1
        if address:
            self.per_address[address] += 1
        conn = GuardedConn(
            self.cfg, client_sock, client_addr, listener.getsockname(), self._released
        )
        self.enqueue_req(conn)

    def _released(self, conn: GuardedConn) -> None:
        address = conn.client[0] if isinstance(conn.client, tuple) else ""
        if address:
            self.per_address[address] -= 1
            if self.per_address[address] <= 0:
                del self.per_address[address]

    def enqueue_req(self, conn):
        """Every way into the thread pool passes here: a new connection, a kept-alive one
        that became readable, bytes of a pipelined request left in the parser."""
        if not self.buffering or not isinstance(conn, GuardedConn) or conn.ready:
            if isinstance(conn, GuardedConn):
                conn.ready = False
            super().enqueue_req(conn)
            return
        held = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        conn.reading = Reading(self.body_limit, held, time.monotonic() + self.limits.header_timeout)
        conn.sock.setblocking(False)
        self.readings.add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        if held:
            self._advance(conn)

    # -- reading ---------------------------------------------------------------------------
    def _on_readable(self, conn: GuardedConn, _sock) -> None:
        reading = conn.reading
        if reading is None:
            return
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:  # the client closed its side before sending a whole request
            self._drop(conn)
            return
        reading.buf += data
        self._advance(conn)

    def _advance(self, conn: GuardedConn) -> None:
        reading = conn.reading
        assert reading is not None
        state = reading.scan.feed(reading.buf)
        if state == INCOMPLETE:
            scan = reading.scan
            if scan.head_end >= 0 and not reading.body_deadline_set:
                reading.body_deadline_set = True
                reading.deadline = time.monotonic() + self.limits.body_seconds(scan.body_length)
            if scan.expects_continue and scan.head_end >= 0 and not reading.continue_sent:
                reading.continue_sent = True
                self._send(conn, CONTINUE)
            return
        if state == TOO_LARGE:
            detail = f"The body is larger than the limit of {self.body_limit} bytes."
            self._refuse(conn, problem_answer(413, "Content Too Large", detail))
            return
        # COMPLETE, or UNREADABLE: gunicorn's parser answers from the buffer without waiting
        self._stop_reading(conn)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(reading.buf))
        conn.data_ready = True
        conn.ready = True
        address = conn.client[0] if isinstance(conn.client, tuple) else ""
        caller = caller_of(reading.buf, address, max(reading.scan.head_end, 0))
        self.waiting.push(caller, conn)
        self._dispatch()

    # -- to the threads, in turn per caller --------------------------------------------------
    def _dispatch(self) -> None:
        """Hand waiting requests to the pool while a thread is free (service/fair_queue.py)."""
        while self.waiting and self.in_threads < self.cfg.threads:
            conn = self.waiting.pop()
            conn.dispatched = True
            self.in_threads += 1
            self.enqueue_req(conn)

    def finish_request(self, conn, fs):
        if isinstance(conn, GuardedConn) and conn.dispatched:
            conn.dispatched = False
            self.in_threads -= 1
        try:
            super().finish_request(conn, fs)
        finally:
            self._dispatch()

    def _stop_reading(self, conn: GuardedConn) -> None:
        self.readings.discard(conn)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _send(self, conn: GuardedConn, data: bytes) -> None:
        try:
            conn.sock.send(data)
        except OSError:
            pass  # best effort: the socket is non-blocking and the client may be gone

    def _refuse(self, conn: GuardedConn, answer: bytes) -> None:
        self._send(conn, answer)
        self._drop(conn)

    def _drop(self, conn: GuardedConn) -> None:
        self._stop_reading(conn)
        conn.reading = None
        self.nr_conns -= 1
        conn.close()

    # -- deadlines -------------------------------------------------------------------------
    def murder_pending(self):
        """gthread calls this about once a second: also close requests past their deadline
        (and, once the worker is stopping, connections that have sent nothing)."""
        super().murder_pending()
        now = time.monotonic()
        for conn in list(self.readings):
            reading = conn.reading
            if reading is None:
                continue
            if not reading.buf and (now >= reading.deadline or not self.alive):
                self._drop(conn)
            elif now >= reading.deadline:
                what = "body" if reading.scan.head_end >= 0 else "request head"
                self.log.debug(
                    "Closed a slow client %s: %s not received in time", conn.client, what
                )
                detail = f"The {what} was not received in time."
                self._refuse(conn, problem_answer(408, "Request Timeout", detail))
