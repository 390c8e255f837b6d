"""Slow and idle clients against the real `rapport serve` (issue 18): they hold no thread of
the buffering worker (service/gunicorn_worker.py) and are closed after their deadline."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from tests.conftest import start_live_server, stop_live_server

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
PER_ADDRESS = 12
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
SLOW_BODY = (
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n"
)


@pytest.fixture(scope="module")
def server(redis_url, tmp_path_factory):
    """One worker with 4 threads, so a dozen slow clients are several times its threads."""
    live = start_live_server(
        redis_url,
        tmp_path_factory.mktemp("slow") / "live",
        workers=1,
        env={
            "RAPPORT_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "RAPPORT_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "RAPPORT_BODY_MIN_RATE": "1000000",
            "RAPPORT_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
        },
    )
    yield live
    stop_live_server(live)


def _port(live) -> int:
    return int(live.base_url.rsplit(":", 1)[1])


def _connect(port: int, source: str) -> socket.socket:
    """A connection from ``source`` (any 127/8 address is this machine's loopback)."""
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_slow_and_idle_clients_are_closed_after_the_deadline_and_hold_no_thread(server):
    port = _port(server)
    clients = [("head", _connect(port, "127.0.0.2")) for _ in range(10)]
    clients += [("body", _connect(port, "127.0.0.3")) for _ in range(10)]
    clients += [("idle", _connect(port, "127.0.0.4")) for _ in range(10)]
    opened = time.monotonic()
    for kind, sock in clients:
        if kind != "idle":
            sock.sendall(SLOW_HEAD if kind == "head" else SLOW_BODY)
    stop = threading.Event()

    def trickle() -> None:  # one byte every 0.5 s on each slow socket, until it is closed
        while not stop.wait(0.5):
            for kind, sock in clients:
                if kind != "idle":
                    try:
                        sock.send(b"a")
                    except OSError:
                        pass

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    answers = []
    try:
        while time.monotonic() - opened < HEADER_TIMEOUT * 0.8:  # 20 slow clients, 4 threads
            started = time.monotonic()
            status = requests.get(server.url("/healthz"), timeout=5).status_code
            answers.append((status, time.monotonic() - started))
            time.sleep(0.05)
        closed = []
        for kind, sock in clients:
            data = _read_all(sock)
            closed.append((kind, data, time.monotonic() - opened))
    finally:
        stop.set()
        trickler.join()
        for _, sock in clients:
            sock.close()
    assert len(answers) >= 10
    assert all(status == 200 for status, _ in answers)
    assert max(seconds for _, seconds in answers) < 1.0
    for kind, data, after in closed:
        deadline = HEADER_TIMEOUT + (BODY_TIMEOUT if kind == "body" else 0)
        assert after < deadline + 3.0, (kind, after)  # the deadline is checked once a second
        if kind == "idle":
            assert data == b""  # closed without an answer: it never sent a byte
        else:
            assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data[:80]
            assert b"application/problem+json" in data
    assert min(after for kind, _, after in closed if kind != "idle") >= HEADER_TIMEOUT - 0.1


def test_one_address_holds_a_bounded_number_of_connections(server):
    port = _port(server)
    held = [_connect(port, "127.0.0.5") for _ in range(PER_ADDRESS)]
    try:
        time.sleep(0.3)  # the worker has accepted them
        extra = _connect(port, "127.0.0.5")
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_all(extra) == b""  # closed on accept
        extra.close()
        other = _connect(port, "127.0.0.6")  # another address is served
        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(other).startswith(b"HTTP/1.1 200")
        other.close()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    again = _connect(port, "127.0.0.5")  # the count went down as they closed
    again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _read_all(again).startswith(b"HTTP/1.1 200")
    again.close()


def test_buffered_requests_keep_http_semantics(server):
    port = _port(server)
    # two pipelined requests on one connection, the second cut in the middle of its head
    sock = _connect(port, "127.0.0.7")
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HT")
    time.sleep(0.3)
    sock.sendall(b"TP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _read_all(sock).count(b"HTTP/1.1 200 OK") == 2
    sock.close()
    # a declared body over RAPPORT_MAX_BODY_BYTES: 413 before any of it is sent
    sock = _connect(port, "127.0.0.7")
    sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
    answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"application/problem+json" in answer
    sock.close()

    # a chunked body sent in pieces reaches the app whole (401: no key; read, not refused)
    def pieces():
        yield b'{"name":'
        time.sleep(0.2)
        yield b' "k"}'

    resp = requests.post(
        server.url("/v1/admin/keys"),
        data=pieces(),
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert resp.status_code == 401
    # a kept-alive connection serves a second request
    with requests.Session() as session:
        assert session.get(server.url("/healthz"), timeout=5).status_code == 200
        time.sleep(0.2)
        assert session.get(server.url("/healthz"), timeout=5).status_code == 200
