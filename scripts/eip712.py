"""EIP-712 types of the v2 contracts and a signer that reads the domain from the contract.

Shared by scripts/gas*.py and tests/contracts/eip712_messages.py; the types come from the
Python package. The domain always comes from the
contract's ``eip712Domain()`` (ERC-5267), never hard-coded.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account

# The types the Python package signs: scripts and contract tests sign exactly the same messages.
from imaging_consent.access_log.break_glass import BREAK_GLASS_TYPE
from imaging_consent.consent.signing import CANCEL_TYPE, GRANT_TYPE, REVOKE_TYPE

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
