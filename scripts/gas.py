"""Measure the gas of the main contract calls and write bench/gas.json.

Run: ``brownie run scripts/gas.py --network ganache-cli``.

Each contract has its own measurement function returning ``{key: gas}``. ``main`` runs every
function in ``MEASUREMENTS`` on a chain snapshot (so each starts from the same state), merges the
results into one flat dict, refuses duplicate keys and writes them with sorted keys.

Method, the same for every key:
- Transactions: ``gasUsed`` from the receipt, so the 21,000 base, calldata and refunds included.
- Views (``is_permitted*``): execution gas only, i.e. ``eth_estimateGas`` of the call minus the
  21,000 base minus the EIP-2028 calldata cost (4 per zero byte, 16 per non-zero byte).

Every input is fixed (private keys, deployer nonce, the chain time and the signed fields), so the
signatures and hence the calldata are the same on every run and the figures are exact. The
EIP-712 types are the v2 contracts' (scripts/eip712.py).
tests/contracts/test_gas*.py measure again and assert the same figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brownie import ConsentRegistry, accounts, chain, web3
from eth_utils import keccak

from scripts.eip712 import sign
from scripts.gas_provenance import measure as measure_provenance

OUTPUT = Path(__file__).resolve().parent.parent / "bench" / "gas.json"
ALL_STUDIES = bytes(32)
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
OTHER_STUDY = keccak(text="gas bench other study key")
TREAT_AND_RESEARCH = 0b101
# Signed messages carry `issuedAt` (<= block time) and a deadline at most 30 days later, so the
# measurements first move the chain to this fixed time (2065-01-24): every signed field, hence
# every signature and all calldata, is then the same on every run.
FIXED_TIME = 3_000_000_000
EXPIRES_AT = FIXED_TIME + 365 * 86_400
DEADLINE = FIXED_TIME + 86_400


def at_fixed_time() -> int:
    """Mine a block at FIXED_TIME (the chain must not be past it) and return it."""
    latest = web3.eth.get_block("latest").timestamp
    if latest > FIXED_TIME:
        raise RuntimeError(f"chain time {latest} is past the gas bench's fixed time {FIXED_TIME}")
    chain.mine(timestamp=FIXED_TIME)
    return FIXED_TIME


def consent_registry_gas() -> dict[str, int]:
    """Gas of ConsentRegistry's state-changing calls and of `isPermitted`.

    Runs on a chain snapshot and reverts it, because it moves the chain to FIXED_TIME.
    """
    chain.snapshot()
    try:
        return _consent_registry_gas()
    finally:
        chain.revert()


def _consent_registry_gas() -> dict[str, int]:
    deployer = fixed_account("deployer")
    patient = fixed_account("patient")
    signer = fixed_account("signing patient")
    grantee = fixed_account("grantee")
    delegate = fixed_account("delegate")
    relayer = accounts[0]
    # First transaction of `deployer`: a fixed address, so fixed signatures and calldata.
    registry = ConsentRegistry.deploy({"from": deployer, "silent": True})
    issued_at = at_fixed_time()
    gas: dict[str, int] = {}

    def used(tx: Any) -> int:
        return int(tx.gas_used)

    def send(method: str, *args: Any, sender: Any = patient) -> int:
        return used(getattr(registry, method)(*args, {"from": sender, "silent": True}))

    args = (grantee, STUDY, TREAT_AND_RESEARCH, True, 0, EXPIRES_AT)
    gas["grant"] = send("grant", *args)
    # Best case: the study-scoped grant is in force and decides alone: one grant slot read.
    gas["is_permitted_study"] = view_execution_gas(
        registry, "isPermitted", patient, grantee, STUDY, 0
    )
    gas["grant_update"] = send("grant", grantee, STUDY, 0b1, False, 0, EXPIRES_AT)
    gas["revoke"] = send("revoke", grantee, STUDY)
    # A later second, so the cancellation really rewrites the slot's issuedAt.
    chain.mine(timestamp=FIXED_TIME + 5)
    gas["cancel_signatures"] = send("cancelSignatures", grantee, STUDY)
    gas["set_exclusion"] = send("setExclusion", OTHER_STUDY, True)

    gas["set_delegate"] = send("setDelegate", delegate, ALL_STUDIES, EXPIRES_AT)
    gas["grant_for"] = send(
        "grantFor", patient, grantee, ALL_STUDIES, 0b1, True, 0, EXPIRES_AT, sender=delegate
    )
    # Worst case of a patient-made grant: no study-scoped grant in force (a tombstone), so the
    # exclusion and the all-studies slot are read too. Made by the patient here, see below.
    send("grant", grantee, ALL_STUDIES, 0b1, True, 0, EXPIRES_AT)
    gas["is_permitted"] = view_execution_gas(registry, "isPermitted", patient, grantee, STUDY, 0)
    # And when the deciding all-studies grant was made by a delegate: its delegation is read too.
    send("grantFor", patient, grantee, ALL_STUDIES, 0b1, True, 0, EXPIRES_AT, sender=delegate)
    gas["is_permitted_delegated"] = view_execution_gas(
        registry, "isPermitted", patient, grantee, STUDY, 0
    )
    gas["revoke_for"] = send("revokeFor", patient, grantee, ALL_STUDIES, sender=delegate)

    # The signing patient's first signed grant: its grant slot is new.
    grant_message = {
        "patient": signer.address,
        "grantee": grantee.address,
        "scope": STUDY,
        "purposes": TREAT_AND_RESEARCH,
        "identified": True,
        "notBefore": 0,
        "expiresAt": EXPIRES_AT,
        "issuedAt": issued_at,
        "deadline": DEADLINE,
    }
    signature = sign(registry, signer.private_key, "Grant", grant_message)
    tx = registry.grantBySig(
        signer, *args, issued_at, DEADLINE, signature, {"from": relayer, "silent": True}
    )
    gas["grant_by_sig"] = used(tx)

    # Later signatures need later (fixed) block times.
    chain.mine(timestamp=FIXED_TIME + 10)
    slot_message = {
        "patient": signer.address,
        "grantee": grantee.address,
        "scope": STUDY,
        "issuedAt": FIXED_TIME + 10,
        "deadline": DEADLINE,
    }
    signature = sign(registry, signer.private_key, "Revoke", slot_message)
    tx = registry.revokeBySig(
        signer,
        grantee,
        STUDY,
        FIXED_TIME + 10,
        DEADLINE,
        signature,
        {"from": relayer, "silent": True},
    )
    gas["revoke_by_sig"] = used(tx)

    chain.mine(timestamp=FIXED_TIME + 20)
    slot_message["issuedAt"] = FIXED_TIME + 20
    signature = sign(registry, signer.private_key, "Cancel", slot_message)
    tx = registry.cancelBySig(
        signer,
        grantee,
        STUDY,
        FIXED_TIME + 20,
        DEADLINE,
        signature,
        {"from": relayer, "silent": True},
    )
    gas["cancel_by_sig"] = used(tx)
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
