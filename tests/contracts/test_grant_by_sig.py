"""ConsentRegistry.grantBySig: a grant signed by the patient (EIP-712) and relayed by anyone."""

from __future__ import annotations

import brownie
from brownie import chain
from consent_values import (
    MAX_SIGNATURE_LIFETIME,
    NO_GRANT,
    STUDY_A,
    error,
    later,
    latest_time,
    permitted,
    stored,
)
from eip712_messages import high_s_twin, sign_grant


def _grant(consent, signer, grantee, deadline, issued_at, key=None, **fields):
    """Sign a grant of STUDY_A with `fields` and return the grantBySig arguments."""
    values = {"purposes": 0b101, "identified": True, "not_before": 0, "expires_at": 0} | fields
    sig = sign_grant(
        consent,
        key or signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        issued_at=issued_at,
        deadline=deadline,
        **values,
    )
    return (
        signer,
        grantee,
        STUDY_A,
        values["purposes"],
        values["identified"],
        values["not_before"],
        values["expires_at"],
        issued_at,
        deadline,
        sig,
    )


def test_grant_by_sig_emits_consent_granted_and_signature_used(
    consent, signer, grantee, relayer, deadline, issued_at
):
    expires_at = chain.time() + 86_400
    args = _grant(consent, signer, grantee, deadline, issued_at, expires_at=expires_at)

    tx = consent.grantBySig(*args, {"from": relayer})

    assert len(tx.events) == 2
    assert dict(tx.events["ConsentGranted"]) == {
        "patient": signer,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
        "purposes": 0b101,
        "identified": True,
        "notBefore": 0,
        "expiresAt": expires_at,
    }
    assert dict(tx.events["SignatureUsed"]) == {
        "patient": signer,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
        "issuedAt": issued_at,
        "relayer": relayer,
    }
    assert stored(consent, signer, grantee, STUDY_A) == (0b101, True, 0, expires_at, issued_at, 0)


def test_grant_by_sig_relayed_twice_reverts(consent, signer, grantee, relayer, deadline, issued_at):
    args = _grant(consent, signer, grantee, deadline, issued_at)
    consent.grantBySig(*args, {"from": relayer})

    with brownie.reverts(
        revert_pattern=error("ConsentRegistrySupersededSignature", issued_at, issued_at)
    ):
        consent.grantBySig(*args, {"from": relayer})


def test_grant_by_sig_older_signature_cannot_undo_newer(
    consent, signer, grantee, relayer, deadline
):
    old = _grant(consent, signer, grantee, deadline, later(), purposes=0b1)
    new = _grant(consent, signer, grantee, deadline, later(), purposes=0b100)
    consent.grantBySig(*new, {"from": relayer})

    with brownie.reverts(
        revert_pattern=error("ConsentRegistrySupersededSignature", old[7], new[7])
    ):
        consent.grantBySig(*old, {"from": relayer})

    assert stored(consent, signer, grantee, STUDY_A)[0] == 0b100


def test_grant_by_sig_signatures_for_other_slots_independent(
    consent, signer, grantee, stranger, relayer, deadline, issued_at
):
    first = _grant(consent, signer, grantee, deadline, issued_at)
    second = _grant(consent, signer, stranger, deadline, issued_at)

    consent.grantBySig(*second, {"from": relayer})
    consent.grantBySig(*first, {"from": relayer})

    assert permitted(consent, signer, grantee, STUDY_A, 0) == (True, True)
    assert permitted(consent, signer, stranger, STUDY_A, 0) == (True, True)


def test_grant_by_sig_after_deadline_reverts(consent, signer, grantee, relayer, issued_at):
    deadline = chain.time() + 60
    args = _grant(consent, signer, grantee, deadline, issued_at)
    chain.sleep(120)

    with brownie.reverts(revert_pattern=error("ConsentRegistryExpiredSignature", deadline)):
        consent.grantBySig(*args, {"from": relayer})

    assert stored(consent, signer, grantee, STUDY_A) == NO_GRANT


def test_grant_by_sig_at_deadline_accepted(consent, signer, grantee, relayer, issued_at):
    # eth_call on Ganache runs with the latest block's timestamp, so the boundary is exact.
    deadline = latest_time() + 600
    args = _grant(consent, signer, grantee, deadline, issued_at)
    chain.mine(timestamp=deadline)

    consent.grantBySig.call(*args, {"from": relayer})

    chain.mine(timestamp=deadline + 1)
    with brownie.reverts(revert_pattern=error("ConsentRegistryExpiredSignature", deadline)):
        consent.grantBySig.call(*args, {"from": relayer})


def test_grant_by_sig_from_future_reverts(consent, signer, grantee, relayer, deadline):
    issued_at = latest_time() + 1000
    args = _grant(consent, signer, grantee, deadline + 1000, issued_at)

    with brownie.reverts(revert_pattern=error("ConsentRegistrySignatureFromFuture", issued_at)):
        consent.grantBySig.call(*args, {"from": relayer})


def test_grant_by_sig_lifetime_too_long_reverts(consent, signer, grantee, relayer, issued_at):
    deadline = issued_at + MAX_SIGNATURE_LIFETIME + 1
    args = _grant(consent, signer, grantee, deadline, issued_at)

    with brownie.reverts(
        revert_pattern=error("ConsentRegistrySignatureLifetimeTooLong", issued_at, deadline)
    ):
        consent.grantBySig(*args, {"from": relayer})


def test_grant_by_sig_lifetime_of_thirty_days_accepted(
    consent, signer, grantee, relayer, issued_at
):
    args = _grant(consent, signer, grantee, issued_at + MAX_SIGNATURE_LIFETIME, issued_at)

    consent.grantBySig(*args, {"from": relayer})

    assert permitted(consent, signer, grantee, STUDY_A, 0) == (True, True)


def test_grant_by_sig_other_signer_reverts(
    consent, signer, other_signer, grantee, relayer, deadline, issued_at
):
    args = _grant(consent, signer, grantee, deadline, issued_at, key=other_signer.private_key)

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(*args, {"from": relayer})


def test_grant_by_sig_altered_terms_revert(consent, signer, grantee, relayer, deadline, issued_at):
    args = list(_grant(consent, signer, grantee, deadline, issued_at, identified=False))
    args[4] = True  # the relayer upgrades to identified data

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(*args, {"from": relayer})


def test_grant_by_sig_other_chain_reverts(consent, signer, grantee, relayer, deadline, issued_at):
    sig = sign_grant(
        consent,
        signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        purposes=0b101,
        identified=True,
        issued_at=issued_at,
        deadline=deadline,
        chain_id=1,
    )

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(
            signer, grantee, STUDY_A, 0b101, True, 0, 0, issued_at, deadline, sig, {"from": relayer}
        )


def test_grant_by_sig_high_s_twin_reverts(consent, signer, grantee, relayer, deadline, issued_at):
    args = list(_grant(consent, signer, grantee, deadline, issued_at))
    args[9] = high_s_twin(args[9])

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(*args, {"from": relayer})


def test_grant_by_sig_invalid_terms_revert(consent, signer, grantee, relayer, deadline, issued_at):
    args = _grant(consent, signer, grantee, deadline, issued_at, purposes=0x80)

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidPurposes", 0x80)):
        consent.grantBySig(*args, {"from": relayer})


def test_grant_by_sig_eip1271_wallet_accepted(
    consent, wallet, signer, grantee, relayer, deadline, issued_at
):
    sig = sign_grant(
        consent,
        signer.private_key,
        patient=wallet,
        grantee=grantee,
        scope=STUDY_A,
        purposes=0b1,
        issued_at=issued_at,
        deadline=deadline,
    )

    consent.grantBySig(
        wallet, grantee, STUDY_A, 0b1, False, 0, 0, issued_at, deadline, sig, {"from": relayer}
    )

    assert permitted(consent, wallet, grantee, STUDY_A, 0) == (True, False)


def test_grant_by_sig_eip1271_wallet_refuses_stranger(
    consent, wallet, other_signer, grantee, relayer, deadline, issued_at
):
    sig = sign_grant(
        consent,
        other_signer.private_key,
        patient=wallet,
        grantee=grantee,
        scope=STUDY_A,
        purposes=0b1,
        issued_at=issued_at,
        deadline=deadline,
    )

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", wallet)):
        consent.grantBySig(
            wallet, grantee, STUDY_A, 0b1, False, 0, 0, issued_at, deadline, sig, {"from": relayer}
        )
