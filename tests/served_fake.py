"""A scripted OpenAI-compatible server on loopback, for tests of coilvis.run_served without a model.

``FakeServer(models=[...], completions=[...])`` answers ``GET /v1/models`` with the models
and each ``POST /v1/completions`` with the next scripted answer: a dict (sent as JSON,
status 200) or ``(status, body)``. Every request is kept in ``requests`` as
``(method, path, json body)``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeServer", "fake_server", "free_port"]


def free_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeServer:
    """The scripted server's state: its models, its answers and the requests it got."""

    def __init__(self, *, models: list[dict[str, Any]], completions: list[Any], tokenize: list[int] | None = None) -> None:
        self.models = models
        self.completions = list(completions)
        self.tokenize = tokenize
        self.requests: list[tuple[str, str, Any]] = []
        self.url = ""

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": self.models}
        if method == "POST" and path.endswith("/completions"):
            if not self.completions:
                return 500, {"error": {"message": "no more scripted answers"}}
            reply = self.completions.pop(0)
            return reply if isinstance(reply, tuple) else (200, reply)
        if method == "POST" and path == "/extras/tokenize" and self.tokenize is not None:
            return 200, {"tokens": self.tokenize}
        return 404, {"detail": "Not Found"}


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, payload = server.answer(method, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def fake_server(**kwargs: Any) -> Iterator[FakeServer]:
    """A :class:`FakeServer` listening on a free loopback port while the block runs."""
    state = FakeServer(**kwargs)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
