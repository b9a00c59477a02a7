"""ConsentRegistry.cancelBySig: signed voiding of outstanding grant signatures for a slot."""

from __future__ import annotations

import brownie
from consent_values import STUDY_A, error, later, latest_time, stored, terms
from eip712_messages import sign_cancel, sign_grant


def _cancel(consent, signer, grantee, issued_at, deadline, key=None):
    sig = sign_cancel(
        consent,
        key or signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        issued_at=issued_at,
        deadline=deadline,
    )
    return (signer, grantee, STUDY_A, issued_at, deadline, sig)


def _grant(consent, signer, grantee, issued_at, deadline):
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


def test_cancel_by_sig_emits_signatures_cancelled_and_signature_used(
    consent, signer, grantee, relayer, deadline, issued_at
):
    tx = consent.cancelBySig(
        *_cancel(consent, signer, grantee, issued_at, deadline), {"from": relayer}
    )

    assert len(tx.events) == 2
    assert dict(tx.events["SignaturesCancelled"]) == {
        "patient": signer,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
        "issuedAt": issued_at,
    }
    assert tx.events["SignatureUsed"]["relayer"] == relayer


def test_cancel_by_sig_voids_outstanding_grant_signature(
    consent, signer, grantee, relayer, deadline
):
    grant_args = _grant(consent, signer, grantee, later(), deadline)
    cancel_at = later()
    consent.cancelBySig(*_cancel(consent, signer, grantee, cancel_at, deadline), {"from": relayer})

    with brownie.reverts(
        revert_pattern=error("ConsentRegistrySupersededSignature", grant_args[7], cancel_at)
    ):
        consent.grantBySig(*grant_args, {"from": relayer})


def test_cancel_by_sig_keeps_live_grant(consent, signer, grantee, relayer, deadline):
    consent.grant(grantee, STUDY_A, 0b11, True, 0, 0, {"from": signer})

    consent.cancelBySig(*_cancel(consent, signer, grantee, later(), deadline), {"from": relayer})

    assert terms(consent, signer, grantee, STUDY_A) == (0b11, True, 0, 0)


def test_cancel_by_sig_older_than_state_changes_nothing(
    consent, signer, grantee, relayer, deadline
):
    args = _cancel(consent, signer, grantee, later(), deadline)
    later()
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": signer})
    before = stored(consent, signer, grantee, STUDY_A)

    tx = consent.cancelBySig(*args, {"from": relayer})

    assert list(tx.events.keys()) == ["SignatureSuperseded"]
    assert stored(consent, signer, grantee, STUDY_A) == before


def test_cancel_by_sig_from_future_reverts(consent, signer, grantee, relayer, deadline):
    issued_at = latest_time() + 1000
    args = _cancel(consent, signer, grantee, issued_at, deadline)

    with brownie.reverts(revert_pattern=error("ConsentRegistrySignatureFromFuture", issued_at)):
        consent.cancelBySig.call(*args, {"from": relayer})


def test_cancel_by_sig_other_signer_reverts(
    consent, signer, other_signer, grantee, relayer, deadline, issued_at
):
    args = _cancel(consent, signer, grantee, issued_at, deadline, key=other_signer.private_key)

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.cancelBySig(*args, {"from": relayer})
