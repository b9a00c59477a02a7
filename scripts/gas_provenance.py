"""Gas of StudyRegistry and AccessLog, measured on the active brownie network.

Run with ``brownie run scripts/gas_provenance.py --network <net>``. ``measure`` deploys its own
contracts, so it can be called from another script (``scripts/gas.py``) on any fresh chain.
Each figure is the ``gasUsed`` of one real transaction, in the state named by its key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from brownie import AccessLog, ConsentRegistry, StudyRegistry, chain, web3
from eth_hash.auto import keccak

from scripts.eip712 import sign

TREAT = 0  # PurposeOfUse bit index of TREAT
BATCH_SIZE = 1000
# As scripts/gas.py: a fixed chain time makes the break-glass signature, so its calldata, fixed.
FIXED_TIME = 3_000_000_000
CLINICIAN_KEY = "0x" + keccak(b"imaging-consent gas bench: emergency clinician").hex()


def _key(label: str) -> bytes:
    """A fixed 32-byte value per label, so calldata (and so gas) is the same on every run."""
    return bytes(keccak(label.encode()))


def measure(accounts: Sequence[Any]) -> dict[str, int]:
    """Deploy the three contracts and return the gas of each provenance operation.

    Runs on a chain snapshot and reverts it, because it moves the chain to FIXED_TIME.

    Args:
        accounts: brownie accounts; [0] is admin, [1] site and its own gateway, [2] patient,
            [3] grantee.

    Returns:
        ``register_study``, ``update_content``, ``record_access`` (permitted by a grant for the
        study that allows identified data), ``record_access_deidentified`` (permitted by a
        de-identified all-studies grant: the study slot, the exclusion and the all-studies slot
        are read), ``record_access_denied`` (no grant), ``record_break_glass`` (first in its
        window, signed by the clinician), ``anchor_batch`` (1000 records) and
        ``anchor_batch_per_record_1000`` (that anchor's gas / 1000, rounded up).
    """
    chain.snapshot()
    try:
        return _measure(accounts)
    finally:
        chain.revert()


def _measure(accounts: Sequence[Any]) -> dict[str, int]:
    admin, site, patient, grantee = accounts[:4]
    clinician = accounts.add(CLINICIAN_KEY)  # type: ignore[attr-defined]
    consent = ConsentRegistry.deploy({"from": admin})
    studies = StudyRegistry.deploy(0, admin, {"from": admin})
    log = AccessLog.deploy(consent, studies, {"from": admin})
    studies.grantRole(studies.SITE_ROLE(), site, {"from": admin})
    log.setGateway(site, True, {"from": site})
    log.setEmergencyClinician(clinician, True, {"from": site})
    if web3.eth.get_block("latest").timestamp > FIXED_TIME:
        raise RuntimeError(f"chain time is past the gas bench's fixed time {FIXED_TIME}")
    chain.mine(timestamp=FIXED_TIME)

    study, other = _key("study"), _key("other")
    gas: dict[str, int] = {}
    tx = studies.registerStudy(study, patient, _key("root"), 12, {"from": site})
    gas["register_study"] = tx.gas_used
    studies.registerStudy(other, patient, _key("root"), 12, {"from": site})
    tx = studies.updateContent(study, _key("root2"), 13, {"from": site})
    gas["update_content"] = tx.gas_used

    consent.grant(grantee, study, 1 << TREAT, True, 0, 0, {"from": patient})
    consent.grant(grantee, bytes(32), 1 << TREAT, False, 0, 0, {"from": patient})
    chain.mine()
    tx = log.recordAccess(study, grantee, TREAT, _key("req1"), {"from": site})
    assert tuple(tx.return_value) == (True, True)
    gas["record_access"] = tx.gas_used
    tx = log.recordAccess(other, grantee, TREAT, _key("req2"), {"from": site})
    assert tuple(tx.return_value) == (True, False)
    gas["record_access_deidentified"] = tx.gas_used
    tx = log.recordAccess(study, clinician, TREAT, _key("req3"), {"from": site})
    assert "AccessDenied" in tx.events
    gas["record_access_denied"] = tx.gas_used

    deadline = FIXED_TIME + 3600
    message = {
        "site": site.address,
        "studyKey": study,
        "requestId": _key("req4"),
        "reasonCommitment": _key("reason"),
        "deadline": deadline,
    }
    signature = sign(log, CLINICIAN_KEY, "BreakGlass", message)
    tx = log.recordBreakGlass(
        study, clinician, _key("req4"), _key("reason"), deadline, signature, {"from": site}
    )
    gas["record_break_glass"] = tx.gas_used
    tx = log.anchorBatch(_key("batchroot"), BATCH_SIZE, _key("batch"), {"from": site})
    gas["anchor_batch"] = tx.gas_used
    gas["anchor_batch_per_record_1000"] = -(-tx.gas_used // BATCH_SIZE)
    return gas


def main() -> None:
    """Print each figure as ``name: gas``."""
    from brownie import accounts

    for name, used in measure(accounts).items():
        print(f"{name}: {used:,}")
