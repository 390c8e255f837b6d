"""WSGI-level guards that run before Flask parses anything."""

from __future__ import annotations

import io

from service.errors import problem_document, wsgi_problem


class ChunkedBodyLimit:
    """Enforce the body limit on chunked uploads, which carry no Content-Length.

    The body is read up to ``limit + 1`` bytes: over the limit the client gets 413 at once;
    otherwise Flask sees an ordinary body with a Content-Length.
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked:  # RFC 9112: Transfer-Encoding overrides any Content-Length
            stream = environ["wsgi.input"]
            data = bytearray()
            while len(data) <= self.limit:
                chunk = stream.read(min(65536, self.limit + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
            if len(data) > self.limit:
                document = problem_document(
                    413,
                    f"The body is larger than the limit of {self.limit} bytes.",
                    title="Content too large",
                    instance=environ.get("PATH_INFO", ""),
                )
                return wsgi_problem(start_response, document, [("Connection", "close")])
            environ["wsgi.input"] = io.BytesIO(bytes(data))
            environ["CONTENT_LENGTH"] = str(len(data))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)
