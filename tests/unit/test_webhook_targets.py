"""Webhook targets: the URL rules and the SSRF guard (IP literals and /etc/hosts names only, no
network), and the sender against a real HTTP receiver on 127.0.0.1 in a thread: status codes,
timeouts, redirects not followed, keep-alive reuse, the vetted address pinned."""

from __future__ import annotations

import contextlib
import http.server
import shutil
import ssl
import subprocess
import threading
import time

import pytest

from core.errors import InvalidInput
from service.webhooks.sender import MAX_RESPONSE, Sender
from service.webhooks.targets import TargetPolicy, TargetRefused, check_url, resolve

STRICT = TargetPolicy()
LOCAL = TargetPolicy(allowed=("127.0.0.1",))


@pytest.mark.parametrize(
    "url, why",
    [
        ("ftp://93.184.216.34/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://93.184.216.34/", "only http and https"),
        ("93.184.216.34/hook", "only http and https"),
        ("https://user:pw@93.184.216.34/", "user name or password"),
        ("https://user@93.184.216.34/", "user name or password"),
        ("https:///hook", "no host"),
        ("https://93.184.216.34:99999/", "malformed"),
        ("https://93.184.216.34/a b", "whitespace"),
        ("", "URL of at most"),
        ("https://93.184.216.34/" + "a" * 2100, "URL of at most"),
    ],
)
def test_malformed_or_non_http_urls_are_refused_with_the_field(url, why):
    with pytest.raises(InvalidInput, match=why) as caught:
        check_url(url, TargetPolicy(allow_private=True))
    assert caught.value.field == "url"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[ff02::1]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::ffff:169.254.169.254]",
        "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
        "[2002:c0a8:101::1]",  # 6to4 of 192.168.1.1
        "localhost",  # /etc/hosts, no DNS query
        "2130706433",  # 127.0.0.1 as one number
    ],
)
def test_private_loopback_link_local_and_reserved_targets_are_refused(host):
    url = f"http://{host}:8080/hook"
    with pytest.raises(InvalidInput, match="private, loopback") as caught:
        check_url(url, STRICT)
    assert caught.value.field == "url"
    with pytest.raises(TargetRefused):
        resolve(url, STRICT)
    check_url(url, TargetPolicy(allow_private=True))  # the deployment may turn the guard off


@pytest.mark.parametrize(
    "url", ["https://93.184.216.34/hook", "http://[2606:4700::1111]/x", "http://[::ffff:8.8.8.8]/"]
)
def test_public_addresses_pass(url):
    check_url(url, STRICT)


def test_allowed_hosts_ips_and_networks_pass_the_guard():
    check_url("http://127.0.0.1:9/x", TargetPolicy(allowed=("127.0.0.1",)))
    check_url("http://10.20.30.40/x", TargetPolicy(allowed=("10.0.0.0/8",)))
    check_url("http://[::ffff:10.1.1.1]/x", TargetPolicy(allowed=("10.0.0.0/8",)))
    check_url("http://localhost:9/x", TargetPolicy(allowed=("LOCALHOST",)))
    with pytest.raises(InvalidInput):
        check_url("http://10.20.30.40/x", TargetPolicy(allowed=("10.0.0.0/16", "127.0.0.1")))
    with pytest.raises(InvalidInput):
        check_url("http://localhost/x", TargetPolicy(allowed=("helpdesk.internal",)))


def test_policy_from_config_parses_the_allowed_list():
    class Cfg:
        webhook_allow_private = 0
        webhook_allowed_hosts = " 127.0.0.1, 10.0.0.0/8 ,helpdesk.internal,"

    policy = TargetPolicy.from_config(Cfg)
    assert policy == TargetPolicy(False, ("127.0.0.1", "10.0.0.0/8", "helpdesk.internal"))
    Cfg.webhook_allow_private = 1
    assert TargetPolicy.from_config(Cfg).allow_private is True


def test_resolve_returns_the_vetted_address_and_the_path_with_query():
    target = resolve(
        "http://localhost:8123/hooks/rapport?k=1#frag", TargetPolicy(allow_private=True)
    )
    assert target.host == "localhost" and target.port == 8123
    assert target.ip in {"127.0.0.1", "::1"}
    assert (target.scheme, target.path) == ("http", "/hooks/rapport?k=1")
    assert resolve("https://93.184.216.34", STRICT).port == 443


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(InvalidInput, match="does not resolve"):
        check_url("http://no-such-host.invalid/hook", STRICT)


# -- the sender against a real receiver -------------------------------------------------------
class Receiver:
    """An HTTP/1.1 (keep-alive) server on 127.0.0.1; ``behaviour[path]`` says how to answer."""

    def __init__(self):
        self.requests: list[dict] = []
        self.peers: set[tuple[str, int]] = set()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                receiver.peers.add(self.client_address)
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                path = self.path.split("?")[0]
                if path == "/slow":
                    time.sleep(1.0)
                statuses = {"/gone": 410, "/fail": 500, "/moved": 302, "/slow": 200, "/big": 200}
                status = statuses.get(path, 204)
                payload = b"x" * (MAX_RESPONSE * 2) if path == "/big" else b"ok"
                payload = b"" if status == 204 else payload  # a 204 has no body
                self.send_response(status)
                if status == 302:
                    self.send_header("location", "http://169.254.169.254/latest/meta-data")
                self.send_header("content-length", str(len(payload)))
                if path == "/close":
                    self.send_header("connection", "close")
                    self.close_connection = True
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(payload)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver():
    rec = Receiver()
    rec.thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def sender():
    s = Sender(LOCAL, timeout=0.5)
    yield s
    s.close()


def test_a_2xx_is_delivered_with_the_body_headers_and_host(receiver, sender):
    body = b'{"type":"profile.updated"}'
    attempt = sender.post(receiver.url("/hooks?x=1"), {"webhook-id": "msg_1_1-0"}, body)
    assert (attempt.status, attempt.error, attempt.ok) == (204, None, True)
    assert 0 <= attempt.seconds < 5
    got = receiver.requests[0]
    assert got["path"] == "/hooks?x=1" and got["body"] == body
    assert got["headers"]["webhook-id"] == "msg_1_1-0"
    assert got["headers"]["Host"] == f"127.0.0.1:{receiver.port}"
    assert got["headers"]["Content-Length"] == str(len(body))


def test_error_statuses_are_failed_attempts(receiver, sender):
    assert sender.post(receiver.url("/fail"), {}, b"{}").error == "HTTP 500"
    gone = sender.post(receiver.url("/gone"), {}, b"{}")
    assert (gone.status, gone.ok) == (410, False)


def test_redirects_are_not_followed(receiver, sender):
    attempt = sender.post(receiver.url("/moved"), {}, b"{}")
    assert (attempt.status, attempt.error, attempt.ok) == (302, "redirect not followed", False)
    assert [r["path"] for r in receiver.requests] == ["/moved"]  # nothing went to the Location


def test_a_slow_receiver_times_out_and_the_next_attempt_works(receiver, sender):
    attempt = sender.post(receiver.url("/slow"), {}, b"{}")
    assert attempt.status is None and attempt.error.startswith("timeout")
    assert 0.4 < attempt.seconds < 1.0
    assert sender.post(receiver.url("/ok"), {}, b"{}").ok


def test_keep_alive_connections_are_reused_per_thread(receiver, sender):
    for _ in range(5):
        assert sender.post(receiver.url("/ok"), {}, b"{}").ok
    assert sender.connections_opened == 1 and len(receiver.peers) == 1
    other = []
    thread = threading.Thread(
        target=lambda: other.append(sender.post(receiver.url("/ok"), {}, b""))
    )
    thread.start()
    thread.join()
    assert other[0].ok and sender.connections_opened == 2 and len(receiver.peers) == 2


def test_closed_and_oversized_answers_drop_the_connection(receiver, sender):
    assert sender.post(receiver.url("/close"), {}, b"{}").ok
    assert sender.post(receiver.url("/ok"), {}, b"{}").ok
    assert sender.connections_opened == 2  # the server closed the first one
    assert sender.post(receiver.url("/big"), {}, b"{}").ok  # 128 kB answer, 64 kB read
    assert sender.post(receiver.url("/ok"), {}, b"{}").ok
    assert sender.connections_opened == 3


def test_a_connection_the_server_dropped_is_replaced_once(receiver, sender):
    assert sender.post(receiver.url("/ok"), {}, b"{}").ok
    for conn in sender._pool().values():  # the receiver restarts: the kept socket is dead
        conn.sock.shutdown(2)
    assert sender.post(receiver.url("/ok"), {}, b"{}").ok
    assert len(receiver.requests) == 2


def test_refused_targets_and_dead_ports_are_errors_not_exceptions(receiver):
    strict = Sender(STRICT, timeout=0.5)
    attempt = strict.post(receiver.url("/ok"), {}, b"{}")
    assert attempt.status is None and attempt.error.startswith("target refused")
    assert receiver.requests == [] and strict.connections_opened == 0
    dead = Sender(LOCAL, timeout=0.5).post("http://127.0.0.1:1/x", {}, b"{}")
    assert dead.status is None and "Connection" in dead.error
    bad = Sender(LOCAL, timeout=0.5).post("ftp://127.0.0.1/x", {}, b"{}")
    assert bad.error.startswith("target refused: only http")


def test_the_connection_goes_to_the_vetted_address_not_a_new_lookup(receiver):
    """``localhost`` allowed by name: the sender connects to the address ``resolve`` vetted and
    sends the name as Host."""
    sender = Sender(TargetPolicy(allowed=("localhost",)), timeout=0.5)
    target = resolve(f"http://localhost:{receiver.port}/x", sender.policy)
    if target.ip != "127.0.0.1":
        pytest.skip("localhost resolves to ::1 first here; the receiver listens on 127.0.0.1")
    try:
        assert sender.post(f"http://localhost:{receiver.port}/x", {}, b"{}").ok
        assert receiver.requests[0]["headers"]["Host"] == f"localhost:{receiver.port}"
        assert list(sender._pool()) == [("http", "localhost", receiver.port, "127.0.0.1")]
    finally:
        sender.close()


# -- https: TLS to the vetted address, the certificate checked for the URL's host --------------
@pytest.fixture
def tls_receiver(tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    rec = Receiver()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    rec.server.socket = server_context.wrap_socket(rec.server.socket, server_side=True)
    rec.thread.start()
    client_context = ssl.create_default_context(cafile=str(cert))
    yield rec, client_context
    rec.server.shutdown()
    rec.server.server_close()


def test_https_checks_the_certificate_for_the_host_name(tls_receiver):
    rec, context = tls_receiver
    sender = Sender(TargetPolicy(allowed=("localhost", "127.0.0.1")), 2.0, ssl_context=context)
    try:
        target = resolve(f"https://localhost:{rec.port}/x", sender.policy)
        if target.ip != "127.0.0.1":
            pytest.skip("localhost resolves to ::1 first here; the receiver is on 127.0.0.1")
        good = sender.post(f"https://localhost:{rec.port}/hook", {}, b"{}")
        assert (good.status, good.error) == (204, None)
        assert rec.requests[0]["headers"]["Host"] == f"localhost:{rec.port}"
        # the same server under its IP address: the certificate does not name it
        bad = sender.post(f"https://127.0.0.1:{rec.port}/hook", {}, b"{}")
        assert bad.status is None and bad.error.startswith("tls")
        assert len(rec.requests) == 1
    finally:
        sender.close()


def test_a_vetted_target_is_reused_for_its_ttl_and_looked_up_again_after_an_error(receiver):
    sender = Sender(LOCAL, timeout=0.5, resolve_ttl=60.0)
    url = receiver.url("/ok")
    try:
        assert sender.post(url, {}, b"{}").ok
        vetted, _ = sender._targets[url]
        assert sender.post(url, {}, b"{}").ok and sender._targets[url][0] is vetted
        dead = "http://127.0.0.1:1/x"
        assert not sender.post(dead, {}, b"{}").ok
        assert dead not in sender._targets  # a network error: the next send resolves again
        sender._targets[url] = (vetted, 0.0)  # its ttl is over
        assert sender.post(url, {}, b"{}").ok
        assert sender._targets[url][0] is not vetted  # past its ttl: resolved and vetted again
    finally:
        sender.close()
