"""ConsentRegistry.grant: the patient grants, updates and validates a grant."""

from __future__ import annotations

import brownie
from brownie import ZERO_ADDRESS, chain
from consent_values import (
    ALL_STUDIES,
    DAY,
    NO_GRANT,
    STUDY_A,
    STUDY_B,
    error,
    later,
    permitted,
    stored,
    terms,
)
from eip712_messages import sign_grant


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


def test_grant_stores_grant_with_block_time_as_issued_at(consent, patient, grantee):
    not_before = chain.time() + DAY
    expires_at = not_before + DAY

    tx = consent.grant(grantee, STUDY_A, 0b11, True, not_before, expires_at, {"from": patient})

    assert stored(consent, patient, grantee, STUDY_A) == (
        0b11,
        True,
        not_before,
        expires_at,
        tx.timestamp,
        0,
    )


def test_grant_replaces_existing_grant(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})

    tx = consent.grant(grantee, STUDY_A, 0b100, False, 0, 0, {"from": patient})

    assert tx.events["ConsentGranted"]["purposes"] == 0b100
    assert terms(consent, patient, grantee, STUDY_A) == (0b100, False, 0, 0)


def test_grant_after_revoke_replaces_tombstone(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})
    consent.revoke(grantee, STUDY_A, {"from": patient})

    consent.grant(grantee, STUDY_A, 0b10, False, 0, 0, {"from": patient})

    assert permitted(consent, patient, grantee, STUDY_A, 1) == (True, False)


def test_grant_all_studies_scope_stored_under_zero(consent, patient, grantee):
    tx = consent.grant(grantee, ALL_STUDIES, 0b1, False, 0, 0, {"from": patient})

    assert tx.events["ConsentGranted"]["scope"] == "0x" + ALL_STUDIES.hex()
    assert terms(consent, patient, grantee, ALL_STUDIES) == (0b1, False, 0, 0)
    assert stored(consent, patient, grantee, STUDY_A) == NO_GRANT


def test_grant_leaves_other_keys_alone(consent, patient, grantee, stranger):
    consent.grant(grantee, STUDY_B, 0b10, True, 0, 0, {"from": patient})
    consent.grant(stranger, STUDY_A, 0b100, False, 0, 0, {"from": patient})

    consent.grant(grantee, STUDY_A, 0b1, False, 0, 0, {"from": patient})

    assert terms(consent, patient, grantee, STUDY_B) == (0b10, True, 0, 0)
    assert terms(consent, patient, stranger, STUDY_A) == (0b100, False, 0, 0)
    assert stored(consent, stranger, grantee, STUDY_A) == NO_GRANT


def test_grant_voids_grant_signatures_issued_before(consent, signer, grantee, relayer, deadline):
    issued_at = later()
    sig = sign_grant(
        consent,
        signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        purposes=0b1,
        identified=True,
        issued_at=issued_at,
        deadline=deadline,
    )
    tx = consent.grant(grantee, STUDY_A, 0b100, False, 0, 0, {"from": signer})

    with brownie.reverts(
        revert_pattern=error("ConsentRegistrySupersededSignature", issued_at, tx.timestamp)
    ):
        consent.grantBySig(
            signer, grantee, STUDY_A, 0b1, True, 0, 0, issued_at, deadline, sig, {"from": relayer}
        )


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


def test_grant_expiry_in_past_reverts(consent, patient, grantee):
    expires_at = chain.time() - 1

    with brownie.reverts(revert_pattern=rf"ConsentRegistryInvalidWindow: 0, {expires_at}"):
        consent.grant(grantee, STUDY_A, 0b1, False, 0, expires_at, {"from": patient})


def test_grant_invalid_input_changes_nothing(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})
    before = stored(consent, patient, grantee, STUDY_A)

    with brownie.reverts(revert_pattern=r"ConsentRegistryInvalidPurposes: 0"):
        consent.grant(grantee, STUDY_A, 0, False, 0, 0, {"from": patient})

    assert stored(consent, patient, grantee, STUDY_A) == before
