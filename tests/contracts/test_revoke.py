"""ConsentRegistry.revoke: the patient ends a grant."""

from __future__ import annotations

import brownie
from brownie import chain
from consent_values import (
    ALL_STUDIES,
    DAY,
    NO_GRANT,
    STUDY_A,
    STUDY_B,
    TREAT,
    error,
    permitted,
    stored,
)


def test_revoke_emits_consent_revoked(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})

    tx = consent.revoke(grantee, STUDY_A, {"from": patient})

    assert len(tx.events) == 1
    assert dict(tx.events["ConsentRevoked"]) == {
        "patient": patient,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
    }


def test_revoke_clears_grant(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})

    consent.revoke(grantee, STUDY_A, {"from": patient})

    assert stored(consent, patient, grantee, STUDY_A) == NO_GRANT
    assert permitted(consent, patient, grantee, STUDY_A, TREAT) == (False, False)


def test_revoke_expired_grant_succeeds(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, chain.time() + DAY, {"from": patient})
    chain.sleep(2 * DAY)
    chain.mine()

    tx = consent.revoke(grantee, STUDY_A, {"from": patient})

    assert "ConsentRevoked" in tx.events
    assert stored(consent, patient, grantee, STUDY_A) == NO_GRANT


def test_revoke_leaves_other_keys_alone(consent, patient, grantee, stranger):
    for scope in (STUDY_A, STUDY_B, ALL_STUDIES):
        consent.grant(grantee, scope, 0b1, True, 0, 0, {"from": patient})
    consent.grant(stranger, STUDY_A, 0b10, False, 0, 0, {"from": patient})

    consent.revoke(grantee, STUDY_A, {"from": patient})

    assert stored(consent, patient, grantee, STUDY_B) == (0b1, True, 0, 0)
    assert stored(consent, patient, grantee, ALL_STUDIES) == (0b1, True, 0, 0)
    assert stored(consent, patient, stranger, STUDY_A) == (0b10, False, 0, 0)


def test_revoke_missing_grant_reverts(consent, patient, grantee):
    with brownie.reverts(
        revert_pattern=error("ConsentRegistryGrantNotFound", patient, grantee, STUDY_A)
    ):
        consent.revoke(grantee, STUDY_A, {"from": patient})


def test_revoke_twice_reverts(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})
    consent.revoke(grantee, STUDY_A, {"from": patient})

    with brownie.reverts(revert_pattern=r"ConsentRegistryGrantNotFound: .*"):
        consent.revoke(grantee, STUDY_A, {"from": patient})


def test_revoke_other_patients_grant_is_not_reachable(consent, patient, grantee, stranger):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})

    with brownie.reverts(
        revert_pattern=error("ConsentRegistryGrantNotFound", stranger, grantee, STUDY_A)
    ):
        consent.revoke(grantee, STUDY_A, {"from": stranger})

    assert stored(consent, patient, grantee, STUDY_A) == (0b1, True, 0, 0)
