"""Bulk transactions on Anvil: node-signed ``eth_sendTransaction`` in JSON-RPC batches.

Anvil's development accounts are unlocked, so the node signs; Python only encodes calldata (by
hand, a fixed layout per function) and posts batches of requests. While a bulk send runs, Anvil's
automine is off (``evm_setAutomine``) and each batch is mined with one ``evm_mine`` into one block
(the block gas limit is raised for that). One sender's transactions carry explicit, consecutive
nonces, so they are mined in order.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import keccak

from imaging_consent.chain import LocalChain

__all__ = ["BulkAnvil", "BulkSender", "selector", "word"]

#: Block gas limit of the bulk chain: about 20,000 grants per block.
BULK_GAS_LIMIT = 1_000_000_000


class BulkAnvil(LocalChain):
    """Anvil with a large block gas limit, keeping no historical states (memory)."""

    def __init__(self, *, accounts: int = 10) -> None:
        """Prepare the chain (start it with :meth:`start` or ``with``)."""
        super().__init__("anvil", accounts=accounts)

    def _command(self, binary: Path, port: int) -> list[str]:
        # LocalChain has no option for extra flags; the benchmark adds its own here.
        command = super()._command(binary, port)
        return [*command, "--gas-limit", str(BULK_GAS_LIMIT), "--prune-history"]


def selector(signature: str) -> bytes:
    """The 4-byte function selector of ``signature``, e.g. ``"revoke(address,bytes32)"``."""
    return bytes(keccak(text=signature))[:4]


def word(value: int | bytes | str | bool) -> bytes:
    """One 32-byte ABI word: an int or bool, an address (0x hex string) or up to 32 bytes."""
    if isinstance(value, bool):
        return int(value).to_bytes(32, "big")
    if isinstance(value, int):
        return value.to_bytes(32, "big")
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x")).rjust(32, b"\0")
    return bytes(value).rjust(32, b"\0")


def _post(url: str, payload: Any, timeout: float = 300.0) -> Any:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class BulkSender:
    """Sends many node-signed transactions from one unlocked account, in nonce order.

    Attributes:
        chain: The bulk Anvil chain.
        address: The sending (unlocked) account.
        gas: Gas limit of every transaction (nothing is estimated).
    """

    chain: LocalChain
    address: str
    gas: int = 300_000
    _nonce: int | None = None

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = int(
                self.chain.rpc("eth_getTransactionCount", self.address, "pending"), 16
            )
        nonce = self._nonce
        self._nonce += 1
        return nonce

    def send(self, to: str, calldata: Iterable[bytes], *, batch: int = 2_000) -> list[str]:
        """Send one transaction per calldata, mining after each batch; return their hashes.

        Raises:
            RuntimeError: If the node refuses a transaction or one of them reverts.
        """
        hashes: list[str] = []
        self.chain.rpc("evm_setAutomine", False)
        try:
            self._send(to, calldata, batch, hashes)
        finally:
            self.chain.rpc("evm_setAutomine", True)
        return hashes

    def _send(self, to: str, calldata: Iterable[bytes], batch: int, hashes: list[str]) -> None:
        for chunk in _chunks(calldata, batch):
            requests = [
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "eth_sendTransaction",
                    "params": [
                        {
                            "from": self.address,
                            "to": to,
                            "data": "0x" + data.hex(),
                            "gas": hex(self.gas),
                            "nonce": hex(self._next_nonce()),
                        }
                    ],
                }
                for i, data in enumerate(chunk)
            ]
            answers = _post(self.chain.rpc_url, requests)
            for answer in sorted(answers, key=lambda a: a["id"]):
                if "error" in answer:
                    raise RuntimeError(f"node refused a bulk transaction: {answer['error']}")
                hashes.append(answer["result"])
            self.chain.rpc("evm_mine")

    def receipts(self, hashes: Sequence[str]) -> list[dict[str, Any]]:
        """The receipts of ``hashes`` (one batch request).

        Raises:
            RuntimeError: If one is missing or failed.
        """
        requests = [
            {"jsonrpc": "2.0", "id": i, "method": "eth_getTransactionReceipt", "params": [h]}
            for i, h in enumerate(hashes)
        ]
        answers = sorted(_post(self.chain.rpc_url, requests), key=lambda a: a["id"])
        receipts = [a.get("result") for a in answers]
        for tx_hash, receipt in zip(hashes, receipts, strict=True):
            if receipt is None or int(receipt["status"], 16) != 1:
                raise RuntimeError(f"bulk transaction {tx_hash} is missing or failed")
        return receipts


def check_all_mined(sender: BulkSender, hashes: Sequence[str], sample: int = 200) -> None:
    """Check the last ``sample`` transactions (and so, by nonce order, all) succeeded.

    Raises:
        RuntimeError: If one is missing or failed.
    """
    step = max(1, len(hashes) // sample)
    sender.receipts([*hashes[::step], hashes[-1]])


def _chunks(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
