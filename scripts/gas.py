"""Measure the gas of the main contract calls and write bench/gas.json.

Run: ``brownie run scripts/gas.py --network ganache-cli``.

Each contract has its own measurement function returning ``{key: gas}``. ``main`` runs every
function in ``MEASUREMENTS`` on a chain snapshot (so each starts from the same state), merges the
results into one flat dict, refuses duplicate keys and writes them with sorted keys.

Method, the same for every key:
- Transactions: ``gasUsed`` from the receipt, so the 21,000 base, calldata and refunds included.
- Views (``is_permitted*``): execution gas only, i.e. ``eth_estimateGas`` of the call minus the
  21,000 base minus the EIP-2028 calldata cost (4 per zero byte, 16 per non-zero byte).

Every input is fixed (private keys, deployer nonce, timestamps in the signed messages), so the
signatures and hence the calldata are the same on every run and the figures are exact. The
EIP-712 `Grant` and `Revoke` types are the client's own (`imaging_consent.consent.signing`).
tests/contracts/test_gas*.py measure again and assert the same figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brownie import ConsentRegistry, accounts, chain, web3
from eth_account import Account
from eth_utils import keccak

from imaging_consent.consent.signing import GRANT_TYPE, REVOKE_TYPE
from scripts.gas_provenance import measure as measure_provenance

OUTPUT = Path(__file__).resolve().parent.parent / "bench" / "gas.json"
BASE_TX_GAS = 21_000

Measurement = Callable[[], dict[str, int]]


def calldata_gas(data: bytes) -> int:
    """EIP-2028 intrinsic cost of transaction data."""
    return sum(4 if byte == 0 else 16 for byte in data)


def view_execution_gas(contract: Any, method: str, *args: Any) -> int:
    """Execution gas of a view: eth_estimateGas minus the base and the calldata cost."""
    data = bytes.fromhex(getattr(contract, method).encode_input(*args)[2:])
    estimate = web3.eth.estimate_gas({"to": contract.address, "data": data.hex()})
    return estimate - BASE_TX_GAS - calldata_gas(data)


def fixed_account(label: str) -> Any:
    """A local account whose key is derived from `label`, funded from accounts[0]."""
    account = accounts.add(keccak(text=f"imaging-consent gas bench: {label}").hex())
    if account.balance() == 0:
        accounts[0].transfer(account, "10 ether", silent=True)
    return account


# ---------------------------------------------------------------------------------------------
# ConsentRegistry
# ---------------------------------------------------------------------------------------------

STUDY = keccak(text="gas bench study key")  # stands in for keccak256(pepper ‖ StudyInstanceUID)
TREAT_AND_RESEARCH = 0b101
EXPIRES_AT = 1_893_456_000  # 2030-01-01T00:00:00Z
DEADLINE = 4_102_444_800  # 2100-01-01T00:00:00Z


def _sign(registry: Any, key: str, primary: str, message: dict[str, Any]) -> bytes:
    fields, name, version, chain_id, verifying_contract, _salt, _ext = registry.eip712Domain()
    assert fields == "0x0f"  # name, version, chainId, verifyingContract
    fields_of = {"Grant": GRANT_TYPE, "Revoke": REVOKE_TYPE}[primary]
    full_message = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: [{"name": n, "type": t} for n, t in fields_of],
        },
        "primaryType": primary,
        "domain": {
            "name": name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": verifying_contract,
        },
        "message": message,
    }
    return bytes(Account.sign_typed_data(key, full_message=full_message).signature)


def consent_registry_gas() -> dict[str, int]:
    """Gas of ConsentRegistry's state-changing calls and of `isPermitted`."""
    deployer = fixed_account("deployer")
    patient = fixed_account("patient")
    signer = fixed_account("signing patient")
    grantee = fixed_account("grantee")
    delegate = fixed_account("delegate")
    relayer = accounts[0]
    # First transaction of `deployer`: a fixed address, so fixed signatures and calldata.
    registry = ConsentRegistry.deploy({"from": deployer, "silent": True})
    gas: dict[str, int] = {}

    def used(tx: Any) -> int:
        return int(tx.gas_used)

    args = (grantee, STUDY, TREAT_AND_RESEARCH, True, 0, EXPIRES_AT)
    gas["grant"] = used(registry.grant(*args, {"from": patient, "silent": True}))
    # Best case: the study-scoped grant permits with identified data, so one slot is read.
    gas["is_permitted_study"] = view_execution_gas(
        registry, "isPermitted", patient, grantee, STUDY, 0
    )
    gas["grant_update"] = used(
        registry.grant(grantee, STUDY, 0b1, False, 0, EXPIRES_AT, {"from": patient, "silent": True})
    )
    # Worst case: the study-scoped grant does not permit, so the all-studies slot is read too.
    gas["is_permitted"] = view_execution_gas(registry, "isPermitted", patient, grantee, STUDY, 2)
    gas["revoke"] = used(registry.revoke(grantee, STUDY, {"from": patient, "silent": True}))

    gas["set_delegate"] = used(
        registry.setDelegate(delegate, True, {"from": patient, "silent": True})
    )
    gas["grant_for"] = used(registry.grantFor(patient, *args, {"from": delegate, "silent": True}))
    gas["revoke_for"] = used(
        registry.revokeFor(patient, grantee, STUDY, {"from": delegate, "silent": True})
    )

    # The signing patient's first signed grant: its nonce slot is still empty.
    grant_message = {
        "patient": signer.address,
        "grantee": grantee.address,
        "scope": STUDY,
        "purposes": TREAT_AND_RESEARCH,
        "identified": True,
        "notBefore": 0,
        "expiresAt": EXPIRES_AT,
        "nonce": 0,
        "deadline": DEADLINE,
    }
    signature = _sign(registry, signer.private_key, "Grant", grant_message)
    tx = registry.grantBySig(signer, *args, DEADLINE, signature, {"from": relayer, "silent": True})
    gas["grant_by_sig"] = used(tx)

    revoke_message = {
        "patient": signer.address,
        "grantee": grantee.address,
        "scope": STUDY,
        "nonce": 1,
        "deadline": DEADLINE,
    }
    signature = _sign(registry, signer.private_key, "Revoke", revoke_message)
    tx = registry.revokeBySig(
        signer, grantee, STUDY, DEADLINE, signature, {"from": relayer, "silent": True}
    )
    gas["revoke_by_sig"] = used(tx)
    return gas


def provenance_gas() -> dict[str, int]:
    """StudyRegistry and AccessLog figures (scripts/gas_provenance.py)."""
    return measure_provenance(accounts)


# One measurement function per contract family.
MEASUREMENTS: list[Measurement] = [consent_registry_gas, provenance_gas]


def measure_all() -> dict[str, int]:
    """Run every measurement from the same chain state and merge the results."""
    results: dict[str, int] = {}
    for measure in MEASUREMENTS:
        chain.snapshot()
        try:
            figures = measure()
        finally:
            chain.revert()
        clash = results.keys() & figures.keys()
        if clash:
            raise ValueError(f"gas keys measured twice: {sorted(clash)}")
        results.update(figures)
    return dict(sorted(results.items()))


def main() -> None:
    results = measure_all()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    for key, value in results.items():
        print(f"{key:30} {value:>9,}")
    print(f"written to {OUTPUT}")
