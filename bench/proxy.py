"""A tiny counting HTTP proxy on loopback, in front of a JSON-RPC endpoint."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
from collections import Counter
from types import TracebackType

__all__ = ["CountingProxy"]


class CountingProxy:
    """Forwards every POST to ``upstream`` and counts HTTP requests and JSON-RPC methods."""

    def __init__(self, upstream: str) -> None:
        """Prepare a proxy for ``upstream`` (start it with ``with``)."""
        self.upstream = upstream
        self.requests = 0
        self.methods: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = json.loads(body)
                calls = message if isinstance(message, list) else [message]
                with proxy._lock:
                    proxy.requests += 1
                    proxy.methods.update(str(call.get("method")) for call in calls)
                forward = urllib.request.Request(
                    proxy.upstream, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(forward, timeout=60) as answer:
                    payload = answer.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's loopback URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reset(self) -> None:
        """Zero the counters."""
        with self._lock:
            self.requests = 0
            self.methods.clear()

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
