"""What a sent transaction gives back: its receipt, and how its revert data become errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from eth_typing import ChecksumAddress, HexStr
from web3.types import LogReceipt, TxReceipt

__all__ = ["RevertDecoder", "TransactionReceipt"]


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
