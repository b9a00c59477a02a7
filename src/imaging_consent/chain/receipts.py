"""What a sent transaction gives back: its receipt, how its revert data become errors, and where
a transaction sent earlier (perhaps by a process that died) stands now."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from eth_typing import ChecksumAddress, HexStr
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.types import LogReceipt, TxReceipt

from imaging_consent.errors import ChainUnavailableError

__all__ = [
    "OnSigned",
    "RevertDecoder",
    "TransactionReceipt",
    "TxState",
    "TxStatus",
    "look_up",
]

OnSigned = Callable[[HexStr, int, bytes], None]
"""Called with a transaction's hash, nonce and signed bytes after it is signed and before it is
broadcast (again for each fee-bumped replacement). If it raises, that transaction is not sent."""


class RevertDecoder(Protocol):
    """Turns raw revert data into a typed exception, or None if it does not recognise it.

    If the result is a :class:`~imaging_consent.errors.ContractRevertedError`, the sender
    fills in its ``revert_data`` and ``tx_hash``.
    """

    def __call__(self, revert_data: bytes, /) -> Exception | None: ...


@dataclass(frozen=True, slots=True)
class TransactionReceipt:
    """A mined, successful transaction.

    Attributes:
        tx_hash: 0x-prefixed transaction hash.
        nonce: The sender's nonce the transaction used.
        sender: The sending account.
        block_number: The block it was mined in.
        block_hash: That block's hash.
        gas_used: Gas it used.
        effective_gas_price: Wei paid per gas.
        status: 1 (success); failures raise instead of returning.
        contract_address: Address of the contract it created, if any.
        logs: The event logs it emitted, for ``contract.events.X().process_receipt(raw)``.
        raw: web3.py's receipt, for anything not copied here.
    """

    tx_hash: HexStr
    nonce: int
    sender: ChecksumAddress
    block_number: int
    block_hash: HexStr
    gas_used: int
    effective_gas_price: int
    status: int
    contract_address: ChecksumAddress | None
    logs: tuple[LogReceipt, ...]
    raw: TxReceipt = field(repr=False, compare=False)

    @classmethod
    def of(
        cls, receipt: TxReceipt, tx_hash: HexStr, nonce: int, sender: ChecksumAddress
    ) -> TransactionReceipt:
        """Copy web3.py's receipt of a transaction sent with ``nonce`` by ``sender``."""
        address = receipt.get("contractAddress")
        return cls(
            tx_hash=tx_hash,
            nonce=nonce,
            sender=sender,
            block_number=int(receipt["blockNumber"]),
            block_hash=HexStr("0x" + bytes(receipt["blockHash"]).hex()),
            gas_used=int(receipt["gasUsed"]),
            effective_gas_price=int(receipt.get("effectiveGasPrice", 0) or 0),
            status=int(receipt["status"]),
            contract_address=Web3.to_checksum_address(address) if address else None,
            logs=tuple(receipt["logs"]),
            raw=receipt,
        )


class TxState(enum.Enum):
    """Where a transaction stands on the node asked."""

    MINED = "mined"
    """In a block of the current chain (``status`` says whether it succeeded)."""
    PENDING = "pending"
    """Known to the node, not in a block yet."""
    UNKNOWN = "unknown"
    """Neither: never arrived, dropped from the pool, or removed by a reorganisation."""


@dataclass(frozen=True, slots=True)
class TxStatus:
    """A transaction's state, and for a mined one its receipt and depth.

    Attributes:
        state: Mined, pending or unknown.
        receipt: web3.py's receipt if mined.
        confirmations: Blocks mined on top of its block (0 in the head block); 0 unless mined.
    """

    state: TxState
    receipt: TxReceipt | None = None
    confirmations: int = 0

    @property
    def succeeded(self) -> bool:
        """True if mined with status 1."""
        return self.receipt is not None and int(self.receipt["status"]) == 1


def look_up(w3: Web3, tx_hash: HexStr) -> TxStatus:
    """Ask the node where ``tx_hash`` stands now (a fresh answer: reorganisations are followed).

    Raises:
        ChainUnavailableError: If the node cannot be reached.
    """
    try:
        return _look_up(w3, tx_hash)
    except OSError as exc:  # requests' connection errors and timeouts are OSErrors
        raise ChainUnavailableError(
            f"cannot look up transaction {tx_hash}: {type(exc).__name__}"
        ) from exc


def _look_up(w3: Web3, tx_hash: HexStr) -> TxStatus:
    try:
        receipt = w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        receipt = None
    if receipt is not None and receipt.get("blockNumber") is not None:
        depth = int(w3.eth.block_number) - int(receipt["blockNumber"])
        return TxStatus(TxState.MINED, receipt, max(depth, 0))
    try:
        w3.eth.get_transaction(tx_hash)
    except TransactionNotFound:
        return TxStatus(TxState.UNKNOWN)
    return TxStatus(TxState.PENDING)
