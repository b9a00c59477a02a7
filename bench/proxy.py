"""A counting HTTP proxy on loopback, in front of a JSON-RPC endpoint (benchmarks and tests).

It counts HTTP requests and JSON-RPC methods, and can play a few faults a real network or a
hosted endpoint produces: losing one request or one answer of a given method, refusing
``eth_getLogs`` over a wide block range, and answering late (a slow or overloaded node).
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.request
from collections import Counter
from typing import Any

__all__ = ["LOG_RANGE_ERROR", "CountingProxy"]

#: The error a range-limited endpoint answers (the message Geth-style providers send).
LOG_RANGE_ERROR = {"code": -32005, "message": "query returned more than 10000 results"}


def _log_span(call: dict[str, Any]) -> int:
    params = call["params"][0]
    return int(params["toBlock"], 16) - int(params["fromBlock"], 16) + 1


class CountingProxy:
    """Forwards every POST to ``upstream``; counts HTTP requests and JSON-RPC methods.

    Args:
        upstream: The JSON-RPC endpoint.
        drop_answer_to: A method whose first request is forwarded but whose answer is dropped
            (the connection is closed), as a flaky network would.
        drop_request_to: A method whose first request is not forwarded at all (the connection
            is closed).
        max_log_blocks: Refuse ``eth_getLogs`` over more than this many blocks with
            :data:`LOG_RANGE_ERROR`, as hosted endpoints do (None: no limit).
        delay: Seconds every request waits before it is forwarded (0: none). The attribute
            can be changed at any time, so a test can slow the node in the middle of a run.

    Attributes:
        requests: HTTP requests received since the last :meth:`reset`.
        methods: JSON-RPC calls per method (a batch counts each of its calls).
        dropped: Requests or answers dropped.
        refused: ``eth_getLogs`` calls refused for their range.
    """

    def __init__(
        self,
        upstream: str,
        *,
        drop_answer_to: str | None = None,
        drop_request_to: str | None = None,
        max_log_blocks: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.upstream = upstream
        self.drop_answer_to = drop_answer_to
        self.drop_request_to = drop_request_to
        self.max_log_blocks = max_log_blocks
        self.delay = delay
        self.requests = 0
        self.methods: Counter[str] = Counter()
        self.dropped = 0
        self.refused = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                payload = proxy._answer(body)
                if payload is None:
                    self.close_connection = True
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client stopped waiting
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's loopback URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reset(self) -> None:
        """Zero the request and method counters."""
        with self._lock:
            self.requests = 0
            self.methods.clear()

    def _take_drop(self, attribute: str, calls: list[dict[str, Any]]) -> bool:
        """True (once) if a call of the method named by ``attribute`` is in ``calls``."""
        with self._lock:
            method = getattr(self, attribute)
            if method is None or all(call.get("method") != method for call in calls):
                return False
            setattr(self, attribute, None)
            self.dropped += 1
            return True

    def _refuses(self, call: dict[str, Any]) -> bool:
        if self.max_log_blocks is None or call.get("method") != "eth_getLogs":
            return False
        if _log_span(call) <= self.max_log_blocks:
            return False
        with self._lock:
            self.refused += 1
        return True

    def _forward(self, body: bytes) -> bytes:
        forward = urllib.request.Request(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(forward, timeout=60) as answer:
            return answer.read()  # type: ignore[no-any-return]

    def _answer(self, body: bytes) -> bytes | None:
        """The answer to send back, or None to close the connection without one."""
        message = json.loads(body)
        batch = isinstance(message, list)
        calls: list[dict[str, Any]] = message if batch else [message]
        with self._lock:
            self.requests += 1
            self.methods.update(str(call.get("method")) for call in calls)
        if self._take_drop("drop_request_to", calls):
            return None
        if self.delay > 0:
            time.sleep(self.delay)
        refused = [call for call in calls if self._refuses(call)]
        if not refused:
            payload = self._forward(body)
        else:
            errors = [
                {"jsonrpc": "2.0", "id": c.get("id"), "error": LOG_RANGE_ERROR} for c in refused
            ]
            rest = [call for call in calls if call not in refused]
            answers = json.loads(self._forward(json.dumps(rest).encode())) if rest else []
            payload = json.dumps(answers + errors if batch else errors[0]).encode()
        if self._take_drop("drop_answer_to", calls):
            return None
        return payload

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
