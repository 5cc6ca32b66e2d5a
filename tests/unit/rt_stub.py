"""A tiny threaded HTTP server that answers RT client requests with canned bodies.

Tests install one `handler(request) -> Reply` and read back what the client sent. It binds
127.0.0.1 on a free port and always stops in `__exit__`, also when the test fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "rt-samples"
RT_VERSION = "5.0.3+dfsg-3~deb12u7"


def sample(name: str) -> bytes:
    """A real RT 5.0.3 body from tests/data/rt-samples."""
    return (SAMPLES / name).read_bytes()


def rt_body(text: str = "", code: int = 200, status: str = "Ok") -> bytes:
    """A REST 1.0 body: RT's status line, a blank line, then `text`."""
    return f"RT/{RT_VERSION} {code} {status}\n\n{text}".encode()


@dataclass
class Request:
    method: str
    path: str  # decoded path without the query string
    raw_path: str  # as sent, query string included
    query: dict[str, list[str]]
    headers: dict[str, str]
    cookies: dict[str, str]
    form: dict[str, list[str]]


@dataclass
class Reply:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # answer nothing until the stub stops (at most 10 s): an RT that hangs


Handler = Callable[[Request], Reply]


class RTStub:
    """`with RTStub(handler) as stub:` then point the client at `stub.url` (or `stub.url + "/rt"`)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self.release = threading.Event()  # set on exit: held requests end at once
        self._lock = threading.Lock()
        stub = self

        class _RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                cookie = SimpleCookie(self.headers.get("Cookie", ""))
                request = Request(
                    method=self.command,
                    path=unquote(parts.path),
                    raw_path=self.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    cookies={k: m.value for k, m in cookie.items()},
                    form=parse_qs(raw, keep_blank_values=True),
                )
                with stub._lock:
                    stub.requests.append(request)
                reply = stub.handler(request)
                if reply.hold:
                    stub.release.wait(10)
                    return
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = _serve
            do_POST = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> RTStub:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def paths(self) -> list[str]:
        with self._lock:
            return [request.path for request in self.requests]
