"""ConsentRegistry.revoke: the patient revokes; a tombstone stays, and revocation never fails."""

from __future__ import annotations

import brownie
from consent_values import ALL_STUDIES, STUDY_A, STUDY_B, error, later, permitted, stored, terms
from eip712_messages import sign_grant


def test_revoke_emits_consent_revoked(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})

    tx = consent.revoke(grantee, STUDY_A, {"from": patient})

    assert len(tx.events) == 1
    assert dict(tx.events["ConsentRevoked"]) == {
        "patient": patient,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
    }


def test_revoke_leaves_tombstone_with_block_time(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})

    tx = consent.revoke(grantee, STUDY_A, {"from": patient})

    assert stored(consent, patient, grantee, STUDY_A) == (0, False, 0, 0, tx.timestamp, 0)
    assert permitted(consent, patient, grantee, STUDY_A, 0) == (False, False)


def test_revoke_missing_grant_still_records_revocation(consent, patient, grantee):
    tx = consent.revoke(grantee, STUDY_B, {"from": patient})

    assert "ConsentRevoked" in tx.events
    assert stored(consent, patient, grantee, STUDY_B)[4] == tx.timestamp


def test_revoke_leaves_other_scopes_alone(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})
    consent.grant(grantee, ALL_STUDIES, 0b10, False, 0, 0, {"from": patient})

    consent.revoke(grantee, STUDY_A, {"from": patient})

    assert terms(consent, patient, grantee, ALL_STUDIES) == (0b10, False, 0, 0)


def test_revoke_by_stranger_touches_only_own_slot(consent, patient, grantee, stranger):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})

    consent.revoke(grantee, STUDY_A, {"from": stranger})

    assert terms(consent, patient, grantee, STUDY_A) == (0b1, True, 0, 0)


def test_revoke_old_grant_signature_cannot_revive_it(consent, signer, grantee, relayer, deadline):
    # Attack: the patient signed a grant, it was used, then the patient revoked directly. A relayer
    # who kept the signature submits it again (v1: a fresh nonce-less copy would also do).
    issued_at = later()
    args = (signer, grantee, STUDY_A, 0b1, True, 0, 0, issued_at, deadline)
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
    consent.grantBySig(*args, sig, {"from": relayer})
    tx = consent.revoke(grantee, STUDY_A, {"from": signer})

    with brownie.reverts(
        revert_pattern=error("ConsentRegistrySupersededSignature", issued_at, tx.timestamp)
    ):
        consent.grantBySig(*args, sig, {"from": relayer})

    assert permitted(consent, signer, grantee, STUDY_A, 0) == (False, False)


def test_revoke_unused_older_grant_signature_cannot_revive_it(
    consent, signer, grantee, relayer, deadline
):
    # The signature was never used at all: a direct revoke after it still voids it.
    issued_at = later()
    sig = sign_grant(
        consent,
        signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        purposes=0b1,
        issued_at=issued_at,
        deadline=deadline,
    )
    later()
    consent.revoke(grantee, STUDY_A, {"from": signer})

    with brownie.reverts(revert_pattern=r"ConsentRegistrySupersededSignature: .*"):
        consent.grantBySig(
            signer, grantee, STUDY_A, 0b1, False, 0, 0, issued_at, deadline, sig, {"from": relayer}
        )
