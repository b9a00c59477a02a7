"""Sessions and local chains: connecting, chain-id checks, start and stop, request counts."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from chain_helpers import ANSWER_ABI, RETURNS_BLOCK_NUMBER, init_code

from bench.proxy import CountingProxy
from imaging_consent.chain import (
    LocalChain,
    TransactionSender,
    connect,
    dev_accounts,
    find_chain_binary,
)
from imaging_consent.chain.session import is_loopback_host
from imaging_consent.errors import (
    ChainBinaryNotFoundError,
    ChainUnavailableError,
    InsecureEndpointError,
    WrongChainError,
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _port_is_free(port: int) -> bool:
    """Nobody listens on ``port`` (connections in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def _pid_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_connect_reports_chain_id(chain: LocalChain) -> None:
    session = connect(chain.rpc_url, chain.chain_id)

    assert session.chain_id == chain.chain_id
    assert session.rpc_url == chain.rpc_url
    assert session.w3.eth.block_number >= 0


def test_connect_unreachable_raises_quickly() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()

    with pytest.raises(ChainUnavailableError, match=url) as caught:
        connect(url, timeout=1.0)

    assert isinstance(caught.value, ConnectionError)
    assert time.monotonic() - started < 3.0


def test_connect_non_http_url_raises() -> None:
    with pytest.raises(ChainUnavailableError, match="unsupported RPC URL"):
        connect("ws://127.0.0.1:8546")


def _own_address() -> str:
    """This machine's address on its outbound interface (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address: str = probe.getsockname()[0]
    return address


class _RemoteNode:
    """The local chain seen through a non-loopback address: a node on the network."""

    def __init__(self, upstream: str) -> None:
        self.requests = 0
        node = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                node.requests += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answer = requests.post(
                    upstream, data=body, headers={"Content-Type": "application/json"}, timeout=10
                ).content
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((_own_address(), 0), Handler)
        host, port = self.server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def remote_node(chain: LocalChain) -> Iterator[_RemoteNode]:
    if is_loopback_host(_own_address()):
        pytest.skip("this machine has no non-loopback address")
    node = _RemoteNode(chain.rpc_url)
    yield node
    node.server.shutdown()
    node.server.server_close()


def test_connect_refuses_plain_http_to_a_remote_node(
    chain: LocalChain, remote_node: _RemoteNode
) -> None:
    with pytest.raises(InsecureEndpointError, match="https://") as caught:
        connect(remote_node.url, chain.chain_id)

    assert remote_node.url in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert remote_node.requests == 0  # refused before any request

    allowed = connect(remote_node.url, chain.chain_id, allow_insecure_http=True)

    assert allowed.chain_id == chain.chain_id and remote_node.requests >= 1


def test_connect_allows_plain_http_on_loopback(chain: LocalChain) -> None:
    port = chain.rpc_url.rsplit(":", 1)[1]

    for host in ("localhost", "[::1]" if socket.has_ipv6 else "127.0.0.1", "127.0.0.1"):
        try:
            session = connect(f"http://{host}:{port}", chain.chain_id, timeout=2.0)
        except ChainUnavailableError:
            assert host == "[::1]"  # the chain listens on IPv4 only; the URL was accepted
            continue
        assert session.chain_id == chain.chain_id


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LocalHost.", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("example.org", False),
        ("localhost.example.org", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_connect_wrong_chain_names_both_ids(chain: LocalChain) -> None:
    with pytest.raises(WrongChainError) as caught:
        connect(chain.rpc_url, expected_chain_id=5)

    message = str(caught.value)
    assert chain.rpc_url in message
    assert "5" in message and str(chain.chain_id) in message
    assert isinstance(caught.value, ValueError)


def test_local_chain_accounts_match_node(chain: LocalChain) -> None:
    node_accounts = chain.session.w3.eth.accounts

    assert [a.address for a in chain.accounts] == node_accounts[: len(chain.accounts)]
    assert chain.accounts[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_increase_time_moves_block_timestamp(clean_chain: LocalChain) -> None:
    w3 = clean_chain.session.w3
    before = w3.eth.get_block("latest")

    clean_chain.increase_time(3600)

    after = w3.eth.get_block("latest")
    assert after["number"] == before["number"] + 1
    assert after["timestamp"] >= before["timestamp"] + 3600


def test_snapshot_revert_restores_block(clean_chain: LocalChain) -> None:
    w3 = clean_chain.session.w3
    start = w3.eth.block_number
    snapshot_id = clean_chain.snapshot()
    clean_chain.mine(3)

    clean_chain.revert(snapshot_id)

    assert w3.eth.block_number == start


@pytest.mark.parametrize("kind", ["ganache", "anvil"])
def test_local_chain_stops_process_when_body_raises(kind: str) -> None:
    local = LocalChain(kind, accounts=1)

    with pytest.raises(RuntimeError, match="boom"), local:
        pid, port = local.pid, local.port
        assert pid is not None and local.running
        raise RuntimeError("boom")

    assert pid is not None and _pid_is_gone(pid)
    assert _port_is_free(port)
    assert not local.running


def test_find_chain_binary_missing_says_npm_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    monkeypatch.setenv("IMAGING_CONSENT_NODE_MODULES", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("imaging_consent.chain.local._node_modules_candidates", lambda: [])

    with pytest.raises(ChainBinaryNotFoundError, match="npm ci"):
        find_chain_binary("anvil")


def test_dev_accounts_are_deterministic() -> None:
    first, second = dev_accounts(2)

    assert first.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert second.address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_contract_read_costs_one_request_and_is_never_cached(clean_chain: LocalChain) -> None:
    sender = TransactionSender(clean_chain.session, clean_chain.accounts[0])
    deployed = sender.send({"data": init_code(RETURNS_BLOCK_NUMBER)})
    assert deployed.contract_address is not None

    with CountingProxy(clean_chain.rpc_url) as proxy:
        session = connect(proxy.url, clean_chain.chain_id)
        contract = session.w3.eth.contract(address=deployed.contract_address, abi=ANSWER_ABI)
        contract.functions.answer().call()  # warms nothing but is counted anyway
        proxy.reset()

        first = contract.functions.answer().call()
        one_read = proxy.requests
        clean_chain.mine()
        second = contract.functions.answer().call()

    assert one_read == 1
    assert proxy.requests == 2
    assert proxy.methods == {"eth_call": 2}
    assert second == first + 1  # a fresh answer after a new block: eth_call is not cached
