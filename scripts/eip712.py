"""EIP-712 types of the v2 contracts and a signer that reads the domain from the contract.

Shared by scripts/gas*.py and tests/contracts/eip712_messages.py. The domain always comes from the
contract's ``eip712Domain()`` (ERC-5267), never hard-coded.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account

GRANT_TYPE = [
    ("patient", "address"),
    ("grantee", "address"),
    ("scope", "bytes32"),
    ("purposes", "uint32"),
    ("identified", "bool"),
    ("notBefore", "uint48"),
    ("expiresAt", "uint48"),
    ("issuedAt", "uint48"),
    ("deadline", "uint256"),
]
REVOKE_TYPE = [
    ("patient", "address"),
    ("grantee", "address"),
    ("scope", "bytes32"),
    ("issuedAt", "uint48"),
    ("deadline", "uint256"),
]
CANCEL_TYPE = REVOKE_TYPE
BREAK_GLASS_TYPE = [
    ("site", "address"),
    ("studyKey", "bytes32"),
    ("requestId", "bytes32"),
    ("reasonCommitment", "bytes32"),
    ("deadline", "uint256"),
]
TYPES = {
    "Grant": GRANT_TYPE,
    "Revoke": REVOKE_TYPE,
    "Cancel": CANCEL_TYPE,
    "BreakGlass": BREAK_GLASS_TYPE,
}
DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def domain_of(contract: Any) -> dict[str, Any]:
    """The EIP-712 domain as the contract reports it (name, version, chainId, verifyingContract)."""
    fields, name, version, chain_id, verifying_contract, _salt, _extensions = (
        contract.eip712Domain()
    )
    assert int(fields.hex() if isinstance(fields, bytes) else fields, 16) == 0x0F
    return {
        "name": name,
        "version": version,
        "chainId": chain_id,
        "verifyingContract": str(verifying_contract),
    }


def sign(contract: Any, key: Any, primary: str, message: dict[str, Any], **domain: Any) -> bytes:
    """Sign `message` of type `primary` for `contract`; `domain` overrides fields of its domain."""
    full_message = {
        "types": {
            "EIP712Domain": DOMAIN_TYPE,
            primary: [{"name": n, "type": t} for n, t in TYPES[primary]],
        },
        "primaryType": primary,
        "domain": domain_of(contract) | domain,
        "message": message,
    }
    return bytes(Account.sign_typed_data(key, full_message=full_message).signature)
