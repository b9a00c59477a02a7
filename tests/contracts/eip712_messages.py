"""Build and sign ConsentRegistry's EIP-712 messages with eth-account, as a wallet would.

The domain is read from the contract's ``eip712Domain()`` (ERC-5267). Tests that need a message
for another chain or another contract override ``chain_id`` or ``verifying_contract``.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

GRANT_TYPE = [
    {"name": "patient", "type": "address"},
    {"name": "grantee", "type": "address"},
    {"name": "scope", "type": "bytes32"},
    {"name": "purposes", "type": "uint32"},
    {"name": "identified", "type": "bool"},
    {"name": "notBefore", "type": "uint48"},
    {"name": "expiresAt", "type": "uint48"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
REVOKE_TYPE = [
    {"name": "patient", "type": "address"},
    {"name": "grantee", "type": "address"},
    {"name": "scope", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def domain_of(registry: Any) -> dict[str, Any]:
    """The EIP-712 domain as the contract reports it."""
    fields, name, version, chain_id, verifying_contract, _salt, _extensions = (
        registry.eip712Domain()
    )
    assert int(fields.hex() if isinstance(fields, bytes) else fields, 16) == 0x0F
    return {
        "name": name,
        "version": version,
        "chainId": chain_id,
        "verifyingContract": str(verifying_contract),
    }


def _sign(
    registry: Any,
    key: Any,
    primary: str,
    fields: list[dict[str, str]],
    message: dict[str, Any],
    **domain_overrides: Any,
) -> bytes:
    domain = domain_of(registry) | domain_overrides
    full_message = {
        "types": {"EIP712Domain": DOMAIN_TYPE, primary: fields},
        "primaryType": primary,
        "domain": domain,
        "message": message,
    }
    return bytes(Account.sign_typed_data(key, full_message=full_message).signature)


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
    nonce: int | None = None,
    deadline: int,
    chain_id: int | None = None,
    verifying_contract: str | None = None,
) -> bytes:
    """Sign a `Grant` message; the nonce defaults to the patient's current one."""
    message = {
        "patient": str(patient),
        "grantee": str(grantee),
        "scope": bytes(scope),
        "purposes": purposes,
        "identified": identified,
        "notBefore": not_before,
        "expiresAt": expires_at,
        "nonce": registry.nonces(patient) if nonce is None else nonce,
        "deadline": deadline,
    }
    overrides = _overrides(chain_id, verifying_contract)
    return _sign(registry, key, "Grant", GRANT_TYPE, message, **overrides)


def sign_revoke(
    registry: Any,
    key: Any,
    *,
    patient: Any,
    grantee: Any,
    scope: bytes,
    nonce: int | None = None,
    deadline: int,
    chain_id: int | None = None,
    verifying_contract: str | None = None,
) -> bytes:
    """Sign a `Revoke` message; the nonce defaults to the patient's current one."""
    message = {
        "patient": str(patient),
        "grantee": str(grantee),
        "scope": bytes(scope),
        "nonce": registry.nonces(patient) if nonce is None else nonce,
        "deadline": deadline,
    }
    overrides = _overrides(chain_id, verifying_contract)
    return _sign(registry, key, "Revoke", REVOKE_TYPE, message, **overrides)


def _overrides(chain_id: int | None, verifying_contract: str | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if chain_id is not None:
        overrides["chainId"] = chain_id
    if verifying_contract is not None:
        overrides["verifyingContract"] = verifying_contract
    return overrides


def high_s_twin(signature: bytes) -> bytes:
    """The malleable twin of a valid signature: s' = n - s and v flipped. ecrecover accepts it."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
