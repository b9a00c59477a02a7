"""Contract reads that fail closed with typed errors (used by every layer above).

web3.py raises its own exceptions for reverts (``ContractCustomError`` with raw data) and lets
transport errors from ``requests`` through. The gate must never act on an unclear answer, so every
read goes through :func:`call`, which turns them into the package's typed errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception
from web3.types import BlockIdentifier

from imaging_consent.chain.session import ChainSession, redact_url
from imaging_consent.contracts.revert import decode_revert
from imaging_consent.errors import ChainUnavailableError, ContractRevertedError

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    ConnectionError,
    TimeoutError,
    OSError,
)


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


def block_number(session: ChainSession) -> int:
    """The chain's latest block number.

    Raises:
        ChainUnavailableError: If the node cannot be reached or answers unclearly.
    """
    with fail_closed(session):
        return int(session.w3.eth.block_number)
