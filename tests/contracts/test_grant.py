"""ConsentRegistry.grant: the patient grants, updates and validates a grant."""

from __future__ import annotations

import brownie
from brownie import ZERO_ADDRESS, chain
from consent_values import ALL_STUDIES, DAY, NO_GRANT, STUDY_A, STUDY_B, stored


def test_grant_emits_consent_granted(consent, patient, grantee):
    expires_at = chain.time() + 30 * DAY

    tx = consent.grant(grantee, STUDY_A, 0b101, True, 0, expires_at, {"from": patient})

    assert len(tx.events) == 1
    assert dict(tx.events["ConsentGranted"]) == {
        "patient": patient,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
        "purposes": 0b101,
        "identified": True,
        "notBefore": 0,
        "expiresAt": expires_at,
    }


def test_grant_stores_grant(consent, patient, grantee):
    not_before = chain.time() + DAY
    expires_at = not_before + DAY

    consent.grant(grantee, STUDY_A, 0b11, True, not_before, expires_at, {"from": patient})

    assert stored(consent, patient, grantee, STUDY_A) == (0b11, True, not_before, expires_at)


def test_grant_replaces_existing_grant(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})

    tx = consent.grant(grantee, STUDY_A, 0b100, False, 0, 0, {"from": patient})

    assert tx.events["ConsentGranted"]["purposes"] == 0b100
    assert tx.events["ConsentGranted"]["identified"] is False
    assert stored(consent, patient, grantee, STUDY_A) == (0b100, False, 0, 0)


def test_grant_all_studies_scope_stored_under_zero(consent, patient, grantee):
    tx = consent.grant(grantee, ALL_STUDIES, 0b1, False, 0, 0, {"from": patient})

    assert tx.events["ConsentGranted"]["scope"] == "0x" + ALL_STUDIES.hex()
    assert stored(consent, patient, grantee, ALL_STUDIES) == (0b1, False, 0, 0)
    assert stored(consent, patient, grantee, STUDY_A) == NO_GRANT


def test_grant_leaves_other_keys_alone(consent, patient, grantee, stranger):
    consent.grant(grantee, STUDY_B, 0b10, True, 0, 0, {"from": patient})
    consent.grant(stranger, STUDY_A, 0b100, False, 0, 0, {"from": patient})

    consent.grant(grantee, STUDY_A, 0b1, False, 0, 0, {"from": patient})

    assert stored(consent, patient, grantee, STUDY_B) == (0b10, True, 0, 0)
    assert stored(consent, patient, stranger, STUDY_A) == (0b100, False, 0, 0)
    assert stored(consent, stranger, grantee, STUDY_A) == NO_GRANT


def test_grant_all_known_purposes_accepted(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0x7F, False, 0, 0, {"from": patient})

    assert stored(consent, patient, grantee, STUDY_A)[0] == 0x7F


def test_grant_zero_grantee_reverts(consent, patient):
    with brownie.reverts(revert_pattern=r"ConsentRegistryZeroGrantee: "):
        consent.grant(ZERO_ADDRESS, STUDY_A, 0b1, False, 0, 0, {"from": patient})


def test_grant_empty_purposes_reverts(consent, patient, grantee):
    with brownie.reverts(revert_pattern=r"ConsentRegistryInvalidPurposes: 0"):
        consent.grant(grantee, STUDY_A, 0, False, 0, 0, {"from": patient})


def test_grant_reserved_purpose_bit_reverts(consent, patient, grantee):
    with brownie.reverts(revert_pattern=r"ConsentRegistryInvalidPurposes: 129"):
        consent.grant(grantee, STUDY_A, 0x81, False, 0, 0, {"from": patient})


def test_grant_expiry_before_start_reverts(consent, patient, grantee):
    not_before = chain.time() + 2 * DAY
    expires_at = not_before - DAY

    with brownie.reverts(
        revert_pattern=rf"ConsentRegistryInvalidWindow: {not_before}, {expires_at}"
    ):
        consent.grant(grantee, STUDY_A, 0b1, False, not_before, expires_at, {"from": patient})


def test_grant_expiry_equal_to_start_reverts(consent, patient, grantee):
    not_before = chain.time() + DAY

    with brownie.reverts(revert_pattern=r"ConsentRegistryInvalidWindow: .*"):
        consent.grant(grantee, STUDY_A, 0b1, False, not_before, not_before, {"from": patient})


def test_grant_expiry_in_past_reverts(consent, patient, grantee):
    expires_at = chain.time() - 1

    with brownie.reverts(revert_pattern=rf"ConsentRegistryInvalidWindow: 0, {expires_at}"):
        consent.grant(grantee, STUDY_A, 0b1, False, 0, expires_at, {"from": patient})


def test_grant_invalid_input_changes_nothing(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})

    with brownie.reverts(revert_pattern=r"ConsentRegistryInvalidPurposes: 0"):
        consent.grant(grantee, STUDY_A, 0, False, 0, 0, {"from": patient})

    assert stored(consent, patient, grantee, STUDY_A) == (0b1, True, 0, 0)
