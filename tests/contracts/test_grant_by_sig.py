"""ConsentRegistry.grantBySig: a grant signed by the patient (EIP-712) and relayed by anyone."""

from __future__ import annotations

import brownie
from brownie import chain
from brownie.test import given, strategy
from consent_values import NO_GRANT, STUDY_A, STUDY_B, error, stored
from eip712_messages import high_s_twin, sign_grant, sign_revoke
from hypothesis import settings


def _grant(consent, signer, grantee, deadline, **fields):
    """Sign a grant of STUDY_A with `fields` and return the grantBySig arguments."""
    values = {"purposes": 0b101, "identified": True, "not_before": 0, "expires_at": 0} | fields
    sig = sign_grant(
        consent,
        signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
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
        deadline,
        sig,
    )


def test_grant_by_sig_emits_consent_granted(consent, signer, grantee, relayer, deadline):
    expires_at = chain.time() + 86_400
    args = _grant(consent, signer, grantee, deadline, expires_at=expires_at)

    tx = consent.grantBySig(*args, {"from": relayer})

    assert len(tx.events) == 1
    assert dict(tx.events["ConsentGranted"]) == {
        "patient": signer,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
        "purposes": 0b101,
        "identified": True,
        "notBefore": 0,
        "expiresAt": expires_at,
    }
    assert stored(consent, signer, grantee, STUDY_A) == (0b101, True, 0, expires_at)
    assert consent.nonces(signer) == 1


def test_grant_by_sig_submitted_by_grantee_accepted(consent, signer, grantee, deadline):
    args = _grant(consent, signer, grantee, deadline)

    consent.grantBySig(*args, {"from": grantee})

    assert stored(consent, signer, grantee, STUDY_A) == (0b101, True, 0, 0)


def test_grant_by_sig_replay_reverts(consent, signer, grantee, relayer, deadline):
    args = _grant(consent, signer, grantee, deadline)
    consent.grantBySig(*args, {"from": relayer})
    consent.revoke(grantee, STUDY_A, {"from": signer})

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(*args, {"from": relayer})

    assert stored(consent, signer, grantee, STUDY_A) == NO_GRANT
    assert consent.nonces(signer) == 1


def test_grant_by_sig_nonce_taken_by_revoke_by_sig_reverts(
    consent, signer, grantee, relayer, deadline
):
    consent.grant(grantee, STUDY_B, 1, False, 0, 0, {"from": signer})
    grant_args = _grant(consent, signer, grantee, deadline)  # signed with nonce 0
    revoke_sig = sign_revoke(
        consent,
        signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_B,
        nonce=0,
        deadline=deadline,
    )
    consent.revokeBySig(signer, grantee, STUDY_B, deadline, revoke_sig, {"from": relayer})

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(*grant_args, {"from": relayer})


def test_grant_by_sig_future_nonce_reverts(consent, signer, grantee, relayer, deadline):
    sig = sign_grant(
        consent,
        signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        nonce=1,
        deadline=deadline,
    )

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(
            signer, grantee, STUDY_A, 1, False, 0, 0, deadline, sig, {"from": relayer}
        )


def test_grant_by_sig_after_deadline_reverts(consent, signer, grantee, relayer):
    deadline = chain.time() + 60
    args = _grant(consent, signer, grantee, deadline)
    chain.sleep(120)

    with brownie.reverts(revert_pattern=error("ConsentRegistryExpiredSignature", deadline)):
        consent.grantBySig(*args, {"from": relayer})

    assert consent.nonces(signer) == 0


def test_grant_by_sig_at_deadline_accepted(consent, signer, grantee, relayer):
    # eth_call on Ganache runs with the latest block's timestamp, so the boundary is exact.
    deadline = chain.time() + 600
    args = _grant(consent, signer, grantee, deadline)
    chain.mine(timestamp=deadline)

    consent.grantBySig.call(*args, {"from": relayer})

    chain.mine(timestamp=deadline + 1)
    with brownie.reverts(revert_pattern=error("ConsentRegistryExpiredSignature", deadline)):
        consent.grantBySig.call(*args, {"from": relayer})


def test_grant_by_sig_other_chain_id_reverts(consent, signer, grantee, relayer, deadline):
    sig = sign_grant(
        consent,
        signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
        chain_id=1,
    )

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(
            signer, grantee, STUDY_A, 1, False, 0, 0, deadline, sig, {"from": relayer}
        )


def test_grant_by_sig_other_contract_reverts(
    consent, ConsentRegistry, admin, signer, grantee, relayer, deadline
):
    other = ConsentRegistry.deploy({"from": admin})
    sig = sign_grant(
        other,
        signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
    )
    other.grantBySig(signer, grantee, STUDY_A, 1, False, 0, 0, deadline, sig, {"from": relayer})

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(
            signer, grantee, STUDY_A, 1, False, 0, 0, deadline, sig, {"from": relayer}
        )


def test_grant_by_sig_high_s_twin_reverts(consent, signer, grantee, relayer, deadline):
    *fields, sig = _grant(consent, signer, grantee, deadline)

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(*fields, high_s_twin(sig), {"from": relayer})

    consent.grantBySig(*fields, sig, {"from": relayer})  # the original is still good


def test_grant_by_sig_wrong_signer_reverts(
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

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(
            signer, grantee, STUDY_A, 1, False, 0, 0, deadline, sig, {"from": relayer}
        )


def test_grant_by_sig_changed_field_reverts(consent, signer, grantee, relayer, deadline):
    *fields, sig = _grant(consent, signer, grantee, deadline, identified=False)
    fields[4] = True  # the relayer upgrades de-identified to identified

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(*fields, sig, {"from": relayer})


def test_grant_by_sig_malformed_signature_reverts(consent, signer, grantee, relayer, deadline):
    *fields, sig = _grant(consent, signer, grantee, deadline)

    for bad in (b"", sig[:64], sig + b"\x00", sig[:64] + bytes([sig[64] + 2])):
        with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
            consent.grantBySig(*fields, bad, {"from": relayer})


def test_grant_by_sig_invalid_grant_reverts(consent, signer, grantee, relayer, deadline):
    args = _grant(consent, signer, grantee, deadline, purposes=0)

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidPurposes", 0)):
        consent.grantBySig(*args, {"from": relayer})

    assert consent.nonces(signer) == 0


def test_grant_by_sig_wallet_owner_signature_accepted(
    consent, wallet, signer, grantee, relayer, deadline
):
    sig = sign_grant(
        consent,
        signer.private_key,
        patient=wallet,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
    )

    tx = consent.grantBySig(
        wallet, grantee, STUDY_A, 1, False, 0, 0, deadline, sig, {"from": relayer}
    )

    assert tx.events["ConsentGranted"]["patient"] == wallet
    assert stored(consent, wallet, grantee, STUDY_A) == (1, False, 0, 0)
    assert consent.nonces(wallet) == 1


def test_grant_by_sig_wallet_other_signature_reverts(
    consent, wallet, other_signer, grantee, relayer, deadline
):
    sig = sign_grant(
        consent,
        other_signer.private_key,
        patient=wallet,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
    )

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", wallet)):
        consent.grantBySig(
            wallet, grantee, STUDY_A, 1, False, 0, 0, deadline, sig, {"from": relayer}
        )


def test_grant_by_sig_wallet_replay_reverts(consent, wallet, signer, grantee, relayer, deadline):
    sig = sign_grant(
        consent,
        signer.private_key,
        patient=wallet,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
    )
    args = (wallet, grantee, STUDY_A, 1, False, 0, 0, deadline, sig)
    consent.grantBySig(*args, {"from": relayer})

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", wallet)):
        consent.grantBySig(*args, {"from": relayer})


@given(
    purposes=strategy("uint32", min_value=1, max_value=0x7F),
    identified=strategy("bool"),
    expires_in=strategy("uint32", min_value=3600),
)
@settings(max_examples=10)
def test_grant_by_sig_any_grant_used_once(
    consent, signer, grantee, relayer, purposes, identified, expires_in
):
    deadline = chain.time() + 3600
    expires_at = chain.time() + expires_in
    args = _grant(
        consent,
        signer,
        grantee,
        deadline,
        purposes=purposes,
        identified=identified,
        expires_at=expires_at,
    )

    consent.grantBySig(*args, {"from": relayer})

    assert stored(consent, signer, grantee, STUDY_A) == (purposes, identified, 0, expires_at)
    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(*args, {"from": relayer})


def test_grant_by_sig_delegate_signature_reverts(
    consent, signer, other_signer, grantee, relayer, deadline
):
    # A delegate acts through grantFor; only the patient's own signature authorises grantBySig.
    consent.setDelegate(other_signer, True, {"from": signer})
    sig = sign_grant(
        consent,
        other_signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
    )

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.grantBySig(
            signer, grantee, STUDY_A, 1, False, 0, 0, deadline, sig, {"from": relayer}
        )
