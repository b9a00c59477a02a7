"""Build and sign the v2 contracts' EIP-712 messages with eth-account, as a wallet would.

The types and the signer live in scripts/eip712.py (shared with the gas scripts); the domain is
read from the contract's ``eip712Domain()`` (ERC-5267). Tests that need a message for another
chain or another contract pass ``chain_id`` or ``verifying_contract``.
"""

from __future__ import annotations

from typing import Any

from scripts.eip712 import domain_of, sign

__all__ = [
    "domain_of",
    "high_s_twin",
    "sign_break_glass",
    "sign_cancel",
    "sign_grant",
    "sign_revoke",
]

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _overrides(chain_id: int | None, verifying_contract: str | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if chain_id is not None:
        overrides["chainId"] = chain_id
    if verifying_contract is not None:
        overrides["verifyingContract"] = verifying_contract
    return overrides


def sign_grant(
    registry: Any,
    key: Any,
    *,
    patient: Any,
    grantee: Any,
    scope: bytes,
    purposes: int,
    identified: bool = False,
    not_before: int = 0,
    expires_at: int = 0,
    issued_at: int,
    deadline: int,
    chain_id: int | None = None,
    verifying_contract: str | None = None,
) -> bytes:
    """Sign a `Grant` message."""
    message = {
        "patient": str(patient),
        "grantee": str(grantee),
        "scope": bytes(scope),
        "purposes": purposes,
        "identified": identified,
        "notBefore": not_before,
        "expiresAt": expires_at,
        "issuedAt": issued_at,
        "deadline": deadline,
    }
    return sign(registry, key, "Grant", message, **_overrides(chain_id, verifying_contract))


def _slot_message(patient: Any, grantee: Any, scope: bytes, issued_at: int, deadline: int):
    return {
        "patient": str(patient),
        "grantee": str(grantee),
        "scope": bytes(scope),
        "issuedAt": issued_at,
        "deadline": deadline,
    }


def sign_revoke(
    registry: Any,
    key: Any,
    *,
    patient: Any,
    grantee: Any,
    scope: bytes,
    issued_at: int,
    deadline: int,
    chain_id: int | None = None,
    verifying_contract: str | None = None,
) -> bytes:
    """Sign a `Revoke` message."""
    message = _slot_message(patient, grantee, scope, issued_at, deadline)
    return sign(registry, key, "Revoke", message, **_overrides(chain_id, verifying_contract))


def sign_cancel(
    registry: Any,
    key: Any,
    *,
    patient: Any,
    grantee: Any,
    scope: bytes,
    issued_at: int,
    deadline: int,
) -> bytes:
    """Sign a `Cancel` message."""
    message = _slot_message(patient, grantee, scope, issued_at, deadline)
    return sign(registry, key, "Cancel", message)


def sign_break_glass(
    log: Any,
    key: Any,
    *,
    site: Any,
    study_key: bytes,
    request_id: bytes,
    reason_commitment: bytes,
    deadline: int,
    verifying_contract: str | None = None,
) -> bytes:
    """Sign an AccessLog `BreakGlass` message, as the emergency clinician."""
    message = {
        "site": str(site),
        "studyKey": bytes(study_key),
        "requestId": bytes(request_id),
        "reasonCommitment": bytes(reason_commitment),
        "deadline": deadline,
    }
    return sign(log, key, "BreakGlass", message, **_overrides(None, verifying_contract))


def high_s_twin(signature: bytes) -> bytes:
    """The malleable twin of a valid signature: s' = n - s and v flipped. ecrecover accepts it."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
