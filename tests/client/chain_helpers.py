"""Tiny contracts from raw bytecode, and a counting HTTP proxy, for the chain tests."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
from collections import Counter
from types import TracebackType


def init_code(runtime_hex: str) -> str:
    """Return init code that deploys ``runtime_hex`` (at most 255 bytes) as the contract code."""
    runtime = bytes.fromhex(runtime_hex.removeprefix("0x"))
    size = len(runtime)
    # PUSH1 size, PUSH1 12 (offset of runtime), PUSH1 0, CODECOPY, PUSH1 size, PUSH1 0, RETURN
    prefix = bytes([0x60, size, 0x60, 12, 0x60, 0, 0x39, 0x60, size, 0x60, 0, 0xF3])
    return "0x" + (prefix + runtime).hex()


#: Runtime that always reverts with empty data: PUSH1 0 PUSH1 0 REVERT.
ALWAYS_REVERTS = "60006000fd"
#: Runtime that reverts with 4 bytes 0xdeadbeef: PUSH4 ... PUSH1 0xe0 SHL PUSH1 0 MSTORE
#: PUSH1 4 PUSH1 0 REVERT.
REVERTS_WITH_DATA = "63deadbeef60e01b60005260046000fd"
#: Runtime that returns the current block number as one uint256: NUMBER PUSH1 0 MSTORE
#: PUSH1 32 PUSH1 0 RETURN. Any function selector answers, so any view ABI works.
RETURNS_BLOCK_NUMBER = "4360005260206000f3"
#: ABI for reading it: ``function answer() view returns (uint256)``.
ANSWER_ABI = [
    {
        "type": "function",
        "name": "answer",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint256"}],
    }
]


class CountingProxy:
    """A loopback HTTP proxy in front of a JSON-RPC endpoint that counts requests by method."""

    def __init__(
        self,
        upstream: str,
        *,
        drop_answer_to: str | None = None,
        drop_request_to: str | None = None,
    ) -> None:
        """Proxy ``upstream``.

        Args:
            upstream: The JSON-RPC endpoint.
            drop_answer_to: A method whose first request is forwarded but whose answer is
                dropped (the connection is closed), as a flaky network would.
            drop_request_to: A method whose first request is not forwarded at all (the
                connection is closed).
        """
        self.upstream = upstream
        self.methods: Counter[str] = Counter()
        self.requests = 0
        self.drop_answer_to = drop_answer_to
        self.drop_request_to = drop_request_to
        self.dropped = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = json.loads(body)
                calls = message if isinstance(message, list) else [message]
                with proxy._lock:
                    proxy.requests += 1
                    proxy.methods.update(call["method"] for call in calls)
                    lose = proxy.drop_request_to is not None and any(
                        call["method"] == proxy.drop_request_to for call in calls
                    )
                    if lose:
                        proxy.drop_request_to = None
                        proxy.dropped += 1
                if lose:
                    self.close_connection = True
                    return
                forward = urllib.request.Request(
                    proxy.upstream, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(forward, timeout=30) as answer:
                    payload = answer.read()
                with proxy._lock:
                    drop = proxy.drop_answer_to is not None and any(
                        call["method"] == proxy.drop_answer_to for call in calls
                    )
                    if drop:
                        proxy.drop_answer_to = None
                        proxy.dropped += 1
                if drop:
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reset(self) -> None:
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
