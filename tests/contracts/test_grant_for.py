"""ConsentRegistry.grantFor: a delegate grants within its delegation, and never beyond it."""

from __future__ import annotations

import brownie
import pytest
from brownie import chain
from consent_values import (
    ALL_STUDIES,
    DAY,
    STUDY_A,
    STUDY_B,
    error,
    latest_time,
    permitted,
    stored,
)


@pytest.fixture
def delegation_end(consent, patient, delegate):
    """`delegate` may act for `patient` on all studies for 10 days; returns its end."""
    end = latest_time() + 10 * DAY
    consent.setDelegate(delegate, ALL_STUDIES, end, {"from": patient})
    return end


def test_grant_for_emits_consent_granted_and_delegate_acted(
    consent, patient, grantee, delegate, delegation_end
):
    tx = consent.grantFor(
        patient, grantee, STUDY_A, 0b1, True, 0, delegation_end, {"from": delegate}
    )

    assert len(tx.events) == 2
    assert tx.events["ConsentGranted"]["patient"] == patient
    assert tx.events["ConsentGranted"]["expiresAt"] == delegation_end
    assert dict(tx.events["DelegateActed"]) == {
        "patient": patient,
        "delegate": delegate,
        "delegation": 1,
    }
    assert stored(consent, patient, grantee, STUDY_A) == (
        0b1,
        True,
        0,
        delegation_end,
        tx.timestamp,
        1,
    )
    assert permitted(consent, patient, grantee, STUDY_A, 0) == (True, True)


def test_grant_for_to_itself_reverts(consent, patient, delegate, delegation_end):
    with brownie.reverts(revert_pattern=error("ConsentRegistrySelfGrant", delegate)):
        consent.grantFor(
            patient, delegate, STUDY_A, 0b1, True, 0, delegation_end, {"from": delegate}
        )


def test_grant_for_beyond_delegation_expiry_reverts(
    consent, patient, grantee, delegate, delegation_end
):
    too_late = delegation_end + 1

    with brownie.reverts(
        revert_pattern=error("ConsentRegistryOutsideDelegation", STUDY_A, too_late, delegation_end)
    ):
        consent.grantFor(patient, grantee, STUDY_A, 0b1, True, 0, too_late, {"from": delegate})


def test_grant_for_without_expiry_reverts(consent, patient, grantee, delegate, delegation_end):
    with brownie.reverts(
        revert_pattern=error("ConsentRegistryOutsideDelegation", STUDY_A, 0, delegation_end)
    ):
        consent.grantFor(patient, grantee, STUDY_A, 0b1, True, 0, 0, {"from": delegate})


def test_grant_for_outside_scope_reverts(consent, patient, grantee, delegate):
    end = latest_time() + DAY
    consent.setDelegate(delegate, STUDY_A, end, {"from": patient})

    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, delegate)):
        consent.grantFor(patient, grantee, STUDY_B, 0b1, True, 0, end, {"from": delegate})
    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, delegate)):
        consent.grantFor(patient, grantee, ALL_STUDIES, 0b1, True, 0, end, {"from": delegate})


def test_grant_for_by_stranger_reverts(consent, patient, grantee, stranger):
    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, stranger)):
        consent.grantFor(
            patient, grantee, STUDY_A, 0b1, True, 0, latest_time() + DAY, {"from": stranger}
        )


def test_grant_for_after_delegation_expired_reverts(
    consent, patient, grantee, delegate, delegation_end
):
    chain.mine(timestamp=delegation_end)

    with brownie.reverts(revert_pattern=error("ConsentRegistryNotDelegate", patient, delegate)):
        consent.grantFor(
            patient, grantee, STUDY_A, 0b1, True, 0, delegation_end, {"from": delegate}
        )


def test_grant_for_grants_end_when_delegation_removed(
    consent, patient, grantee, stranger, delegate, delegation_end
):
    consent.grantFor(patient, grantee, STUDY_A, 0b1, True, 0, delegation_end, {"from": delegate})
    consent.grantFor(
        patient, stranger, ALL_STUDIES, 0b1, True, 0, delegation_end, {"from": delegate}
    )

    consent.setDelegate(delegate, ALL_STUDIES, 0, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, 0) == (False, False)
    assert permitted(consent, patient, stranger, STUDY_B, 0) == (False, False)


def test_grant_for_front_run_before_removal_still_ends(
    consent, patient, grantee, stranger, delegate, delegation_end
):
    # Attack: seeing the patient's removal in the mempool, the delegate slips in one more grant
    # (here: mined just before the removal). It must end with the removal all the same.
    consent.grantFor(
        patient, stranger, ALL_STUDIES, 0x7F, True, 0, delegation_end, {"from": delegate}
    )
    assert permitted(consent, patient, stranger, STUDY_A, 0) == (True, True)

    consent.setDelegate(delegate, ALL_STUDIES, 0, {"from": patient})

    assert permitted(consent, patient, stranger, STUDY_A, 0) == (False, False)


def test_grant_for_grants_end_when_delegation_replaced(
    consent, patient, grantee, delegate, delegation_end
):
    consent.grantFor(patient, grantee, STUDY_A, 0b1, True, 0, delegation_end, {"from": delegate})

    consent.setDelegate(delegate, ALL_STUDIES, delegation_end, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, 0) == (False, False)


def test_grant_for_patient_grant_replaces_delegated_one(
    consent, patient, grantee, delegate, delegation_end
):
    consent.grantFor(patient, grantee, STUDY_A, 0b1, True, 0, delegation_end, {"from": delegate})
    consent.grant(grantee, STUDY_A, 0b1, False, 0, 0, {"from": patient})

    consent.setDelegate(delegate, ALL_STUDIES, 0, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, 0) == (True, False)


def test_grant_for_invalid_terms_revert(consent, patient, grantee, delegate, delegation_end):
    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidPurposes", 0)):
        consent.grantFor(patient, grantee, STUDY_A, 0, True, 0, delegation_end, {"from": delegate})
