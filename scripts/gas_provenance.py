"""Gas of StudyRegistry and AccessLog, measured on the active brownie network.

Run with ``brownie run scripts/gas_provenance.py --network <net>``. ``measure`` deploys its own
contracts, so it can be called from another script (``scripts/gas.py``) on any fresh chain.
Each figure is the ``gasUsed`` of one real transaction, in the state named by its key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from brownie import AccessLog, ConsentRegistry, StudyRegistry, chain
from eth_hash.auto import keccak

TREAT = 0  # PurposeOfUse bit index of TREAT
BATCH_SIZE = 1000


def _key(label: str) -> bytes:
    """A fixed 32-byte value per label, so calldata (and so gas) is the same on every run."""
    return bytes(keccak(label.encode()))


def measure(accounts: Sequence[Any]) -> dict[str, int]:
    """Deploy the three contracts and return the gas of each provenance operation.

    Args:
        accounts: brownie accounts; [0] is admin, [1] site and gateway, [2] patient,
            [3] grantee, [4] emergency clinician.

    Returns:
        ``register_study``, ``update_content``, ``record_access`` (permitted by a grant for the
        study that allows identified data), ``record_access_deidentified`` (permitted by a
        de-identified grant for the study, which also reads the all-studies grant),
        ``record_access_denied`` (no grant), ``record_break_glass``, ``anchor_batch`` (1000
        records) and ``anchor_batch_per_record_1000`` (that anchor's gas / 1000, rounded up).
    """
    admin, site, patient, grantee, clinician = accounts[:5]
    consent = ConsentRegistry.deploy({"from": admin})
    studies = StudyRegistry.deploy(admin, {"from": admin})
    log = AccessLog.deploy(consent, studies, admin, {"from": admin})
    studies.grantRole(studies.SITE_ROLE(), site, {"from": admin})
    log.grantRole(log.GATEWAY_ROLE(), site, {"from": admin})
    log.grantRole(log.EMERGENCY_ROLE(), clinician, {"from": admin})

    study, other = _key("study"), _key("other")
    gas: dict[str, int] = {}
    tx = studies.registerStudy(study, patient, _key("root"), 12, {"from": site})
    gas["register_study"] = tx.gas_used
    studies.registerStudy(other, patient, _key("root"), 12, {"from": site})
    tx = studies.updateContent(study, _key("root2"), 13, {"from": site})
    gas["update_content"] = tx.gas_used

    consent.grant(grantee, study, 1 << TREAT, True, 0, 0, {"from": patient})
    consent.grant(grantee, other, 1 << TREAT, False, 0, 0, {"from": patient})
    chain.mine()
    tx = log.recordAccess(study, grantee, TREAT, _key("req1"), {"from": site})
    assert "AccessGranted" in tx.events
    gas["record_access"] = tx.gas_used
    tx = log.recordAccess(other, grantee, TREAT, _key("req2"), {"from": site})
    assert "AccessGranted" in tx.events
    gas["record_access_deidentified"] = tx.gas_used
    tx = log.recordAccess(study, clinician, TREAT, _key("req3"), {"from": site})
    assert "AccessDenied" in tx.events
    gas["record_access_denied"] = tx.gas_used
    tx = log.recordBreakGlass(study, clinician, _key("req4"), _key("reason"), {"from": site})
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
