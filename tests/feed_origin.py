"""A data source's origin for tests: a real HTTP server on 127.0.0.1 that records every
request it is sent and answers as :attr:`Feed.mode` says (``ok`` with ETag and 304, or one
of the faults). Used by the agent's source tests and the fleet-wide source tests."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Feed:
    """What the origin sends, and what it was asked."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.body = b"# blocked addresses\n10.0.0.1\n\n10.0.0.2\n"
        self.etag = '"v1"'
        self.requests: list[dict[str, str]] = []
        self.answers: list[int] = []
        self.port = 0
        self._server: http.server.ThreadingHTTPServer | None = None

    def stop(self) -> None:
        """Take the origin down (connections to its port are refused from now on)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def serve_feed() -> Iterator[Feed]:
    state = Feed()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append(
                {k.lower(): v for k, v in self.headers.items()}
                | {"path": self.path, "at": str(time.time())}
            )
            mode = state.mode
            body = state.body if self.path == "/feed" else json.dumps({"v": state.etag}).encode()
            if mode == "500":
                return self._send(500, b"down")
            if mode == "slow":
                time.sleep(2.0)
            if mode == "notutf8":
                body = b"caf\xe9\n"
            if mode == "notjson":
                body = b"{oops"
            if mode == "big":
                body = b"x\n" * 600_000
            if mode == "drip":
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                for _ in range(10):
                    self.wfile.write(b"a\n" * 5)
                    self.wfile.flush()
                    time.sleep(0.3)
                return None
            if mode == "bigstream":  # no Content-Length: the cap must stop the stream
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                for _ in range(40):
                    self.wfile.write(b"y" * 65536)
                self.close_connection = True
                return None
            if mode == "ok" and self.headers.get("If-None-Match") == state.etag:
                return self._send(304, b"")
            return self._send(
                200, body, {"ETag": state.etag, "Last-Modified": "Wed, 02 Dec 2026 03:00:00 GMT"}
            )

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            state.answers.append(status)
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port, state._server = server.server_port, server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        state.stop()
