"""ConsentRegistry.cancelSignatures: the patient voids outstanding grant signatures for a slot."""

from __future__ import annotations

import brownie
from consent_values import STUDY_A, error, later, permitted, stored, terms
from eip712_messages import sign_grant


def _signed_grant(consent, signer, grantee, issued_at, deadline):
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
    return (signer, grantee, STUDY_A, 0b1, False, 0, 0, issued_at, deadline, sig)


def test_cancel_signatures_emits_signatures_cancelled(consent, patient, grantee):
    tx = consent.cancelSignatures(grantee, STUDY_A, {"from": patient})

    assert len(tx.events) == 1
    assert dict(tx.events["SignaturesCancelled"]) == {
        "patient": patient,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
        "issuedAt": tx.timestamp,
    }


def test_cancel_signatures_keeps_terms(consent, patient, grantee):
    consent.grant(grantee, STUDY_A, 0b11, True, 0, 0, {"from": patient})

    tx = consent.cancelSignatures(grantee, STUDY_A, {"from": patient})

    assert terms(consent, patient, grantee, STUDY_A) == (0b11, True, 0, 0)
    assert stored(consent, patient, grantee, STUDY_A)[4] == tx.timestamp
    assert permitted(consent, patient, grantee, STUDY_A, 1) == (True, True)


def test_cancel_signatures_voids_outstanding_grant_signature(
    consent, signer, grantee, relayer, deadline
):
    args = _signed_grant(consent, signer, grantee, later(), deadline)
    later()

    tx = consent.cancelSignatures(grantee, STUDY_A, {"from": signer})

    with brownie.reverts(
        revert_pattern=error("ConsentRegistrySupersededSignature", args[7], tx.timestamp)
    ):
        consent.grantBySig(*args, {"from": relayer})


def test_cancel_signatures_spares_later_signature(consent, signer, grantee, relayer, deadline):
    consent.cancelSignatures(grantee, STUDY_A, {"from": signer})
    args = _signed_grant(consent, signer, grantee, later(), deadline)

    consent.grantBySig(*args, {"from": relayer})

    assert permitted(consent, signer, grantee, STUDY_A, 0) == (True, False)
