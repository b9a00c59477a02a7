"""ConsentRegistry.revokeBySig: a signed revocation nobody can block or turn on a later grant."""

from __future__ import annotations

import brownie
from brownie import chain
from consent_values import (
    MAX_SIGNATURE_LIFETIME,
    STUDY_A,
    error,
    later,
    latest_time,
    permitted,
    stored,
)
from eip712_messages import sign_grant, sign_revoke


def _revoke(consent, signer, grantee, issued_at, deadline, key=None):
    sig = sign_revoke(
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
        identified=True,
        issued_at=issued_at,
        deadline=deadline,
    )
    return (signer, grantee, STUDY_A, 0b1, True, 0, 0, issued_at, deadline, sig)


def test_revoke_by_sig_revokes_live_grant(consent, signer, grantee, relayer, deadline):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": signer})
    issued_at = later()

    tx = consent.revokeBySig(
        *_revoke(consent, signer, grantee, issued_at, deadline), {"from": relayer}
    )

    assert len(tx.events) == 2
    assert dict(tx.events["ConsentRevoked"]) == {
        "patient": signer,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
    }
    assert dict(tx.events["SignatureUsed"]) == {
        "patient": signer,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
        "issuedAt": issued_at,
        "relayer": relayer,
    }
    assert stored(consent, signer, grantee, STUDY_A) == (0, False, 0, 0, issued_at, 0)


def test_revoke_by_sig_tie_favours_revocation(consent, signer, grantee, relayer, deadline):
    tx = consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": signer})

    consent.revokeBySig(
        *_revoke(consent, signer, grantee, tx.timestamp, deadline), {"from": relayer}
    )

    assert permitted(consent, signer, grantee, STUDY_A, 0) == (False, False)


def test_revoke_by_sig_front_run_old_grant_cannot_block_it(
    consent, signer, grantee, relayer, stranger, deadline
):
    # Attack (v1: the relayed grant consumed the nonce the revocation was signed over, so the
    # revocation reverted): the patient signed a grant, then a revocation; an attacker relays the
    # old grant just before the revocation lands.
    grant_args = _grant(consent, signer, grantee, later(), deadline)
    revoke_args = _revoke(consent, signer, grantee, later(), deadline)
    consent.grantBySig(*grant_args, {"from": stranger})

    tx = consent.revokeBySig(*revoke_args, {"from": relayer})

    assert "ConsentRevoked" in tx.events
    assert permitted(consent, signer, grantee, STUDY_A, 0) == (False, False)


def test_revoke_by_sig_front_run_then_grant_replay_reverts(
    consent, signer, grantee, relayer, stranger, deadline
):
    grant_args = _grant(consent, signer, grantee, later(), deadline)
    revoke_args = _revoke(consent, signer, grantee, later(), deadline)
    consent.grantBySig(*grant_args, {"from": stranger})
    consent.revokeBySig(*revoke_args, {"from": relayer})

    with brownie.reverts(revert_pattern=r"ConsentRegistrySupersededSignature: .*"):
        consent.grantBySig(*grant_args, {"from": stranger})


def test_revoke_by_sig_cannot_revoke_later_signed_grant(
    consent, signer, grantee, relayer, deadline
):
    revoke_args = _revoke(consent, signer, grantee, later(), deadline)
    grant_args = _grant(consent, signer, grantee, later(), deadline)
    consent.grantBySig(*grant_args, {"from": relayer})

    tx = consent.revokeBySig(*revoke_args, {"from": relayer})

    assert len(tx.events) == 1
    assert dict(tx.events["SignatureSuperseded"]) == {
        "patient": signer,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
        "issuedAt": revoke_args[3],
    }
    assert permitted(consent, signer, grantee, STUDY_A, 0) == (True, True)


def test_revoke_by_sig_cannot_revoke_later_direct_grant(
    consent, signer, grantee, relayer, deadline
):
    revoke_args = _revoke(consent, signer, grantee, later(), deadline)
    later()
    consent.grant(grantee, STUDY_A, 0b1, False, 0, 0, {"from": signer})

    tx = consent.revokeBySig(*revoke_args, {"from": relayer})

    assert "SignatureSuperseded" in tx.events
    assert permitted(consent, signer, grantee, STUDY_A, 0) == (True, False)


def test_revoke_by_sig_replay_changes_nothing(consent, signer, grantee, relayer, deadline):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": signer})
    args = _revoke(consent, signer, grantee, later(), deadline)
    consent.revokeBySig(*args, {"from": relayer})
    before = stored(consent, signer, grantee, STUDY_A)

    tx = consent.revokeBySig(*args, {"from": relayer})

    assert list(tx.events.keys()) == ["SignatureSuperseded"]
    assert stored(consent, signer, grantee, STUDY_A) == before


def test_revoke_by_sig_newer_than_tombstone_raises_it(consent, signer, grantee, relayer, deadline):
    older_grant = _grant(consent, signer, grantee, later(), deadline)
    consent.revoke(grantee, STUDY_A, {"from": signer})
    issued_at = later()

    tx = consent.revokeBySig(
        *_revoke(consent, signer, grantee, issued_at, deadline), {"from": relayer}
    )

    assert "ConsentRevoked" in tx.events and "SignatureUsed" in tx.events
    assert stored(consent, signer, grantee, STUDY_A)[4] == issued_at
    with brownie.reverts(revert_pattern=r"ConsentRegistrySupersededSignature: .*"):
        consent.grantBySig(*older_grant, {"from": relayer})


def test_revoke_by_sig_of_missing_grant_records_tombstone(
    consent, signer, grantee, relayer, deadline, issued_at
):
    tx = consent.revokeBySig(
        *_revoke(consent, signer, grantee, issued_at, deadline), {"from": relayer}
    )

    assert "ConsentRevoked" in tx.events
    assert stored(consent, signer, grantee, STUDY_A)[4] == issued_at


def test_revoke_by_sig_expired_reverts(consent, signer, grantee, relayer, issued_at):
    deadline = issued_at + 60
    args = _revoke(consent, signer, grantee, issued_at, deadline)
    chain.mine(timestamp=deadline + 1)

    with brownie.reverts(revert_pattern=error("ConsentRegistryExpiredSignature", deadline)):
        consent.revokeBySig(*args, {"from": relayer})


def test_revoke_by_sig_from_future_reverts(consent, signer, grantee, relayer, deadline):
    issued_at = latest_time() + 1000
    args = _revoke(consent, signer, grantee, issued_at, deadline)

    with brownie.reverts(revert_pattern=error("ConsentRegistrySignatureFromFuture", issued_at)):
        consent.revokeBySig.call(*args, {"from": relayer})


def test_revoke_by_sig_lifetime_too_long_reverts(consent, signer, grantee, relayer, issued_at):
    deadline = issued_at + MAX_SIGNATURE_LIFETIME + 1
    args = _revoke(consent, signer, grantee, issued_at, deadline)

    with brownie.reverts(
        revert_pattern=error("ConsentRegistrySignatureLifetimeTooLong", issued_at, deadline)
    ):
        consent.revokeBySig(*args, {"from": relayer})


def test_revoke_by_sig_other_signer_reverts(
    consent, signer, other_signer, grantee, relayer, deadline, issued_at
):
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": signer})
    args = _revoke(consent, signer, grantee, issued_at, deadline, key=other_signer.private_key)

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.revokeBySig(*args, {"from": relayer})

    assert permitted(consent, signer, grantee, STUDY_A, 0) == (True, True)
