"""A webhook receiver for tests and benchmarks: an HTTP/1.1 server on 127.0.0.1 that records
every POST and answers ``status`` (settable while it runs; ``None``: refuse connections by being
stopped is done with :meth:`stop`)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time


class Receiver:
    def __init__(self, port: int = 0):
        self.requests: list[dict] = []
        self.status = 204
        self.lock = threading.Lock()
        self.connections: set = set()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with receiver.lock:
                    receiver.connections.add(self.connection)

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: nothing was delivered
                    self.close_connection = True
                    return
                status = receiver.status
                with receiver.lock:
                    receiver.requests.append(
                        {"headers": {k.lower(): v for k, v in self.headers.items()},
                         "body": body, "status": status, "at": time.time()}
                    )  # fmt: skip
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[dict]:
        """The 2xx-answered requests, as (decoded body, headers) dicts, in arrival order."""
        with self.lock:
            return [
                {
                    **r,
                    "id": r["headers"]["webhook-id"],
                    "raw": r["body"],
                    "body": json.loads(r["body"]),
                }
                for r in self.requests
                if 200 <= r["status"] < 300
            ]

    def stop(self) -> None:
        """Stop listening and drop the open (keep-alive) connections: the receiver is down."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.connections.clear()
