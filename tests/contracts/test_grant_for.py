"""ConsentRegistry.grantFor: a delegate (guardian) grants for the patient."""

from __future__ import annotations

import brownie
from brownie import ZERO_ADDRESS
from consent_values import NO_GRANT, STUDY_A, error, stored


def test_grant_for_by_delegate_emits_consent_granted(consent, patient, grantee, delegate):
    consent.setDelegate(delegate, True, {"from": patient})

    tx = consent.grantFor(patient, grantee, STUDY_A, 0b1, True, 0, 0, {"from": delegate})

    assert len(tx.events) == 1
    assert dict(tx.events["ConsentGranted"]) == {
        "patient": patient,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
        "purposes": 0b1,
        "identified": True,
        "notBefore": 0,
        "expiresAt": 0,
    }


def test_grant_for_by_delegate_stores_under_patient(consent, patient, grantee, delegate):
    consent.setDelegate(delegate, True, {"from": patient})

    consent.grantFor(patient, grantee, STUDY_A, 0b10, False, 0, 0, {"from": delegate})

    assert stored(consent, patient, grantee, STUDY_A) == (0b10, False, 0, 0)
    assert stored(consent, delegate, grantee, STUDY_A) == NO_GRANT


def test_grant_for_by_stranger_reverts(consent, patient, grantee, stranger):
    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, stranger)):
        consent.grantFor(patient, grantee, STUDY_A, 0b1, True, 0, 0, {"from": stranger})

    assert stored(consent, patient, grantee, STUDY_A) == NO_GRANT


def test_grant_for_by_removed_delegate_reverts(consent, patient, grantee, delegate):
    consent.setDelegate(delegate, True, {"from": patient})
    consent.setDelegate(delegate, False, {"from": patient})

    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, delegate)):
        consent.grantFor(patient, grantee, STUDY_A, 0b1, True, 0, 0, {"from": delegate})


def test_grant_for_by_delegate_of_another_patient_reverts(
    consent, patient, grantee, delegate, stranger
):
    consent.setDelegate(delegate, True, {"from": stranger})

    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, delegate)):
        consent.grantFor(patient, grantee, STUDY_A, 0b1, True, 0, 0, {"from": delegate})


def test_grant_for_by_patient_itself_reverts(consent, patient, grantee):
    # A patient uses grant(); grantFor is for delegates only.
    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, patient)):
        consent.grantFor(patient, grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})


def test_grant_for_validates_grant(consent, patient, delegate):
    consent.setDelegate(delegate, True, {"from": patient})

    with brownie.reverts(revert_pattern=r"ConsentRegistryZeroGrantee: "):
        consent.grantFor(patient, ZERO_ADDRESS, STUDY_A, 0b1, True, 0, 0, {"from": delegate})
