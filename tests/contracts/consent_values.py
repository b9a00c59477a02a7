"""Values and small helpers shared by the contract tests."""

from __future__ import annotations

import re
from typing import Any

from brownie import chain, web3
from eth_utils import keccak

STUDY_A = keccak(text="study A")  # stands in for keccak256(pepper ‖ StudyInstanceUID)
STUDY_B = keccak(text="study B")
ALL_STUDIES = b"\x00" * 32
TREAT, ETREAT, HRESCH, PATRQT = 0, 1, 2, 3  # PurposeOfUse bit indexes
KNOWN_PURPOSES = 0x7F
DAY = 86_400
MAX_SIGNATURE_LIFETIME = 30 * DAY

# getGrant: (purposes, identified, notBefore, expiresAt, issuedAt, delegation)
NO_GRANT = (0, False, 0, 0, 0, 0)


def stored(consent: Any, patient: Any, grantee: Any, scope: bytes) -> tuple[int, ...]:
    """`getGrant` as a plain tuple (brownie's ReturnValue does not compare with a tuple of ints)."""
    purposes, identified, not_before, expires_at, issued_at, delegation = consent.getGrant(
        patient, grantee, scope
    )
    return (
        int(purposes),
        bool(identified),
        int(not_before),
        int(expires_at),
        int(issued_at),
        int(delegation),
    )


def terms(consent: Any, patient: Any, grantee: Any, scope: bytes) -> tuple[int, bool, int, int]:
    """The grant's terms alone: (purposes, identified, notBefore, expiresAt)."""
    return stored(consent, patient, grantee, scope)[:4]  # type: ignore[return-value]


def issued_at_of(consent: Any, patient: Any, grantee: Any, scope: bytes) -> int:
    return stored(consent, patient, grantee, scope)[4]


def permitted(
    consent: Any, patient: Any, grantee: Any, key: bytes, purpose: int
) -> tuple[bool, bool]:
    """`isPermitted` as a plain tuple."""
    allowed, identified = consent.isPermitted(patient, grantee, key, purpose)
    return bool(allowed), bool(identified)


def latest_time() -> int:
    """Timestamp of the latest block: what eth_call sees, and a safe `issuedAt` to sign."""
    return int(web3.eth.get_block("latest").timestamp)


def later(seconds: int = 2) -> int:
    """Mine a block `seconds` after the latest one and return its timestamp.

    A signature must be strictly newer than the state it replaces; a state written in the latest
    block has that block's timestamp, so a fresh `issuedAt` needs a later block.
    """
    chain.mine(timestamp=latest_time() + seconds)
    return latest_time()


def error(name: str, *args: Any) -> str:
    """The exact revert message brownie decodes for a custom error, as a full-match pattern.

    brownie renders it as ``Name: arg1, arg2``: addresses in lower case, bytes32 as a Python
    bytes literal and integers in decimal.
    """
    rendered = []
    for arg in args:
        if isinstance(arg, bytes):
            rendered.append(repr(arg))
        elif isinstance(arg, bool):
            rendered.append(str(arg))
        elif isinstance(arg, int):
            rendered.append(str(int(arg)))
        else:
            rendered.append(str(arg).lower())
    return re.escape(f"{name}: {', '.join(rendered)}")


def delegation_of(consent: Any, patient: Any, delegate: Any) -> tuple[bytes, int, int]:
    """`getDelegation` as a plain tuple: (scope, expiresAt, delegation id)."""
    scope, expires_at, delegation = consent.getDelegation(patient, delegate)
    return bytes.fromhex(str(scope)[2:]), int(expires_at), int(delegation)
