"""ConsentRegistry.revokeFor: a delegate revokes within its delegation."""

from __future__ import annotations

import brownie
from consent_values import ALL_STUDIES, DAY, STUDY_A, STUDY_B, error, latest_time, permitted, stored


def test_revoke_for_emits_consent_revoked_and_delegate_acted(consent, patient, grantee, delegate):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})
    consent.setDelegate(delegate, STUDY_A, latest_time() + DAY, {"from": patient})

    tx = consent.revokeFor(patient, grantee, STUDY_A, {"from": delegate})

    assert len(tx.events) == 2
    assert tx.events["ConsentRevoked"]["patient"] == patient
    assert dict(tx.events["DelegateActed"]) == {
        "patient": patient,
        "delegate": delegate,
        "delegation": 1,
    }
    assert stored(consent, patient, grantee, STUDY_A)[:4] == (0, False, 0, 0)
    assert permitted(consent, patient, grantee, STUDY_A, 0) == (False, False)


def test_revoke_for_outside_scope_reverts(consent, patient, grantee, delegate):
    consent.grant(grantee, STUDY_B, 0b1, True, 0, 0, {"from": patient})
    consent.setDelegate(delegate, STUDY_A, latest_time() + DAY, {"from": patient})

    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, delegate)):
        consent.revokeFor(patient, grantee, STUDY_B, {"from": delegate})


def test_revoke_for_by_removed_delegate_reverts(consent, patient, grantee, delegate):
    consent.setDelegate(delegate, ALL_STUDIES, latest_time() + DAY, {"from": patient})
    consent.setDelegate(delegate, ALL_STUDIES, 0, {"from": patient})

    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, delegate)):
        consent.revokeFor(patient, grantee, STUDY_A, {"from": delegate})
