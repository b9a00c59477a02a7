"""Contract reads that fail closed with typed errors (used by every binding).

web3.py raises its own exceptions for reverts (``ContractCustomError`` with raw data) and lets
transport errors from ``requests`` through. The gate must never act on an unclear answer, so every
read goes through :func:`call` or :func:`raw_call`, which turn them into the package's typed
errors.

:func:`raw_call` is the hot path (the consent check): calldata encoded by the caller with
``eth_abi``, one JSON-RPC ``eth_call`` sent straight to the provider (no contract-function
machinery, no middleware), and the returned bytes handed back for ``eth_abi`` to decode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from eth_typing import ChecksumAddress
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception
from web3.types import BlockIdentifier, RPCEndpoint

from imaging_consent.chain.session import ChainSession, redact_url
from imaging_consent.contracts.revert import decode_revert
from imaging_consent.errors import ChainUnavailableError, ContractRevertedError

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    ConnectionError,
    TimeoutError,
    OSError,
)
_ETH_CALL = RPCEndpoint("eth_call")
_SELECTOR_BYTES = 4


@contextmanager
def fail_closed(session: ChainSession) -> Iterator[None]:
    """Turn transport errors and unclear answers inside the block into ChainUnavailableError.

    Raises:
        ChainUnavailableError: If the node cannot be reached, times out, or gives no clear
            answer.
    """
    try:
        yield
    except _TRANSPORT_ERRORS as exc:
        raise ChainUnavailableError(
            f"cannot reach {redact_url(session.rpc_url)}: {type(exc).__name__}"
        ) from exc
    except (Web3Exception, ValueError) as exc:
        if isinstance(exc, ContractLogicError):
            raise
        raise ChainUnavailableError(
            f"no clear answer from {redact_url(session.rpc_url)}: {type(exc).__name__}"
        ) from exc


def call(
    session: ChainSession, function: ContractFunction, block: BlockIdentifier = "latest"
) -> Any:
    """Make one ``eth_call`` of ``function`` at ``block`` and return the decoded answer.

    Raises:
        ContractRevertedError: The decoded custom error (e.g. ``StudyNotRegisteredError``) if
            the call reverts.
        ChainUnavailableError: If the node cannot be reached, times out, or gives no clear
            answer.
    """
    try:
        with fail_closed(session):
            return function.call(block_identifier=block)
    except ContractCustomError as exc:
        data = exc.data if isinstance(exc.data, str) else ""
        raise decode_revert(data) from exc
    except ContractLogicError as exc:
        raise ContractRevertedError(f"contract call reverted ({exc.message})") from exc


def _revert_data(error: Any) -> str | None:
    """The revert bytes (hex) of a JSON-RPC error object, in the shapes nodes use."""
    data = error.get("data") if isinstance(error, dict) else None
    if isinstance(data, dict):  # Ganache: {"result": "0x..", "reason": ..}
        data = data.get("result") or data.get("data")
    return data if isinstance(data, str) and data.startswith("0x") else None


def raw_call(
    session: ChainSession, to: ChecksumAddress, data: bytes, block: BlockIdentifier = "latest"
) -> bytes:
    """Send one ``eth_call`` of ready calldata straight to the provider; return the result.

    Args:
        session: The chain.
        to: The contract.
        data: ABI-encoded calldata (selector and arguments).
        block: A block number or tag.

    Raises:
        ContractRevertedError: The decoded custom error if the call reverts.
        ChainUnavailableError: If the node cannot be reached or gives no clear answer.
    """
    tag = hex(block) if isinstance(block, int) else block
    with fail_closed(session):
        response = session.w3.provider.make_request(
            _ETH_CALL, [{"to": to, "data": "0x" + data.hex()}, tag]
        )
    error = response.get("error")
    if error is not None:
        revert = _revert_data(error)
        if revert is not None and len(revert) >= 2 + 2 * _SELECTOR_BYTES:
            raise decode_revert(revert)
        raise ChainUnavailableError(
            f"no clear answer from {redact_url(session.rpc_url)}: eth_call failed"
        )
    result = response.get("result")
    if not isinstance(result, str) or not result.startswith("0x"):
        raise ChainUnavailableError(
            f"no clear answer from {redact_url(session.rpc_url)}: malformed eth_call result"
        )
    try:
        return bytes.fromhex(result[2:])
    except ValueError as exc:
        raise ChainUnavailableError(
            f"no clear answer from {redact_url(session.rpc_url)}: malformed eth_call result"
        ) from exc


def block_number(session: ChainSession) -> int:
    """The chain's latest block number.

    Raises:
        ChainUnavailableError: If the node cannot be reached or answers unclearly.
    """
    with fail_closed(session):
        return int(session.w3.eth.block_number)


def block_time(session: ChainSession) -> int:
    """The latest block's timestamp (chain time, unix seconds).

    Raises:
        ChainUnavailableError: If the node cannot be reached or answers unclearly.
    """
    with fail_closed(session):
        return int(session.w3.eth.get_block("latest")["timestamp"])
