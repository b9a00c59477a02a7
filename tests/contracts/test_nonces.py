"""ConsentRegistry.nonces: the nonce the patient's next signed consent must carry."""

from __future__ import annotations

import brownie
from consent_values import STUDY_A
from eip712_messages import sign_grant, sign_revoke


def test_nonces_start_at_zero(consent, signer):
    result = consent.nonces(signer)

    assert result == 0


def test_nonces_advance_per_signed_grant_and_revoke(consent, signer, grantee, relayer, deadline):
    key = signer.private_key
    sig = sign_grant(
        consent, key, patient=signer, grantee=grantee, scope=STUDY_A, purposes=1, deadline=deadline
    )
    consent.grantBySig(signer, grantee, STUDY_A, 1, False, 0, 0, deadline, sig, {"from": relayer})
    sig = sign_revoke(
        consent, key, patient=signer, grantee=grantee, scope=STUDY_A, deadline=deadline
    )

    consent.revokeBySig(signer, grantee, STUDY_A, deadline, sig, {"from": relayer})

    assert consent.nonces(signer) == 2


def test_nonces_untouched_by_direct_calls(consent, signer, grantee, delegate):
    consent.grant(grantee, STUDY_A, 1, False, 0, 0, {"from": signer})
    consent.setDelegate(delegate, True, {"from": signer})
    consent.revokeFor(signer, grantee, STUDY_A, {"from": delegate})

    result = consent.nonces(signer)

    assert result == 0


def test_nonces_untouched_by_rejected_signature(
    consent, signer, other_signer, grantee, relayer, deadline
):
    sig = sign_grant(
        consent,
        other_signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
    )

    with brownie.reverts(revert_pattern=r"ConsentRegistryInvalidSigner: .*"):
        consent.grantBySig(
            signer, grantee, STUDY_A, 1, False, 0, 0, deadline, sig, {"from": relayer}
        )

    assert consent.nonces(signer) == 0


def test_nonces_are_per_patient(consent, signer, other_signer, grantee, relayer, deadline):
    sig = sign_grant(
        consent,
        signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
    )

    consent.grantBySig(signer, grantee, STUDY_A, 1, False, 0, 0, deadline, sig, {"from": relayer})

    assert consent.nonces(signer) == 1
    assert consent.nonces(other_signer) == 0
