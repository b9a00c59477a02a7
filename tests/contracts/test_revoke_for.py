"""ConsentRegistry.revokeFor: a delegate (guardian) revokes for the patient."""

from __future__ import annotations

import brownie
from consent_values import NO_GRANT, STUDY_A, error, stored


def test_revoke_for_by_delegate_emits_consent_revoked(consent, patient, grantee, delegate):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})
    consent.setDelegate(delegate, True, {"from": patient})

    tx = consent.revokeFor(patient, grantee, STUDY_A, {"from": delegate})

    assert len(tx.events) == 1
    assert dict(tx.events["ConsentRevoked"]) == {
        "patient": patient,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
    }
    assert stored(consent, patient, grantee, STUDY_A) == NO_GRANT


def test_revoke_for_by_stranger_reverts(consent, patient, grantee, stranger):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})

    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, stranger)):
        consent.revokeFor(patient, grantee, STUDY_A, {"from": stranger})

    assert stored(consent, patient, grantee, STUDY_A) == (0b1, True, 0, 0)


def test_revoke_for_by_removed_delegate_reverts(consent, patient, grantee, delegate):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})
    consent.setDelegate(delegate, True, {"from": patient})
    consent.setDelegate(delegate, False, {"from": patient})

    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, delegate)):
        consent.revokeFor(patient, grantee, STUDY_A, {"from": delegate})

    assert stored(consent, patient, grantee, STUDY_A) == (0b1, True, 0, 0)


def test_revoke_for_by_grantee_reverts(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})

    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, grantee)):
        consent.revokeFor(patient, grantee, STUDY_A, {"from": grantee})


def test_revoke_for_missing_grant_reverts(consent, patient, grantee, delegate):
    consent.setDelegate(delegate, True, {"from": patient})

    with brownie.reverts(
        revert_pattern=error("ConsentRegistryGrantNotFound", patient, grantee, STUDY_A)
    ):
        consent.revokeFor(patient, grantee, STUDY_A, {"from": delegate})
