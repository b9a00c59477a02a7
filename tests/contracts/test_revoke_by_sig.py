"""ConsentRegistry.revokeBySig: a revocation signed by the patient (EIP-712), relayed by anyone."""

from __future__ import annotations

import brownie
from brownie import chain
from consent_values import NO_GRANT, STUDY_A, STUDY_B, error, stored
from eip712_messages import high_s_twin, sign_grant, sign_revoke


def _revoke(consent, key, patient, grantee, deadline, scope=STUDY_A, **overrides):
    """Sign a revocation and return the revokeBySig arguments."""
    sig = sign_revoke(
        consent,
        key,
        patient=patient,
        grantee=grantee,
        scope=scope,
        deadline=deadline,
        **overrides,
    )
    return (patient, grantee, scope, deadline, sig)


def test_revoke_by_sig_emits_consent_revoked(consent, signer, grantee, relayer, deadline):
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": signer})
    args = _revoke(consent, signer.private_key, signer, grantee, deadline)

    tx = consent.revokeBySig(*args, {"from": relayer})

    assert len(tx.events) == 1
    assert dict(tx.events["ConsentRevoked"]) == {
        "patient": signer,
        "grantee": grantee,
        "scope": "0x" + STUDY_A.hex(),
    }
    assert stored(consent, signer, grantee, STUDY_A) == NO_GRANT
    assert consent.nonces(signer) == 1


def test_revoke_by_sig_replay_reverts(consent, signer, grantee, relayer, deadline):
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": signer})
    args = _revoke(consent, signer.private_key, signer, grantee, deadline)
    consent.revokeBySig(*args, {"from": relayer})
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": signer})

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.revokeBySig(*args, {"from": relayer})

    assert stored(consent, signer, grantee, STUDY_A) == (1, True, 0, 0)


def test_revoke_by_sig_nonce_taken_by_grant_by_sig_reverts(
    consent, signer, grantee, relayer, deadline
):
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": signer})
    revoke_args = _revoke(consent, signer.private_key, signer, grantee, deadline)  # nonce 0
    grant_sig = sign_grant(
        consent,
        signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_B,
        purposes=1,
        nonce=0,
        deadline=deadline,
    )
    consent.grantBySig(
        signer, grantee, STUDY_B, 1, False, 0, 0, deadline, grant_sig, {"from": relayer}
    )

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.revokeBySig(*revoke_args, {"from": relayer})

    assert stored(consent, signer, grantee, STUDY_A) == (1, True, 0, 0)


def test_revoke_by_sig_grant_signature_reused_reverts(consent, signer, grantee, relayer, deadline):
    # A Grant signature is not a Revoke signature, even with the same nonce and deadline.
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": signer})
    grant_sig = sign_grant(
        consent,
        signer.private_key,
        patient=signer,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
    )

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.revokeBySig(signer, grantee, STUDY_A, deadline, grant_sig, {"from": relayer})


def test_revoke_by_sig_after_deadline_reverts(consent, signer, grantee, relayer):
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": signer})
    deadline = chain.time() + 60
    args = _revoke(consent, signer.private_key, signer, grantee, deadline)
    chain.sleep(120)

    with brownie.reverts(revert_pattern=error("ConsentRegistryExpiredSignature", deadline)):
        consent.revokeBySig(*args, {"from": relayer})

    assert stored(consent, signer, grantee, STUDY_A) == (1, True, 0, 0)


def test_revoke_by_sig_other_chain_id_reverts(consent, signer, grantee, relayer, deadline):
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": signer})
    args = _revoke(consent, signer.private_key, signer, grantee, deadline, chain_id=31337)

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.revokeBySig(*args, {"from": relayer})


def test_revoke_by_sig_other_contract_reverts(
    consent, ConsentRegistry, admin, signer, grantee, relayer, deadline
):
    other = ConsentRegistry.deploy({"from": admin})
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": signer})
    args = _revoke(
        consent, signer.private_key, signer, grantee, deadline, verifying_contract=other.address
    )

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.revokeBySig(*args, {"from": relayer})


def test_revoke_by_sig_high_s_twin_reverts(consent, signer, grantee, relayer, deadline):
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": signer})
    *fields, sig = _revoke(consent, signer.private_key, signer, grantee, deadline)

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.revokeBySig(*fields, high_s_twin(sig), {"from": relayer})


def test_revoke_by_sig_wrong_signer_reverts(
    consent, signer, other_signer, grantee, relayer, deadline
):
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": signer})
    args = _revoke(consent, other_signer.private_key, signer, grantee, deadline)

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", signer)):
        consent.revokeBySig(*args, {"from": relayer})


def test_revoke_by_sig_missing_grant_reverts(consent, signer, grantee, relayer, deadline):
    args = _revoke(consent, signer.private_key, signer, grantee, deadline)

    with brownie.reverts(
        revert_pattern=error("ConsentRegistryGrantNotFound", signer, grantee, STUDY_A)
    ):
        consent.revokeBySig(*args, {"from": relayer})

    assert consent.nonces(signer) == 0


def test_revoke_by_sig_wallet_owner_signature_accepted(
    consent, wallet, signer, grantee, relayer, deadline
):
    grant_sig = sign_grant(
        consent,
        signer.private_key,
        patient=wallet,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
    )
    consent.grantBySig(
        wallet, grantee, STUDY_A, 1, False, 0, 0, deadline, grant_sig, {"from": relayer}
    )
    args = _revoke(consent, signer.private_key, wallet, grantee, deadline)

    tx = consent.revokeBySig(*args, {"from": relayer})

    assert tx.events["ConsentRevoked"]["patient"] == wallet
    assert stored(consent, wallet, grantee, STUDY_A) == NO_GRANT
    assert consent.nonces(wallet) == 2


def test_revoke_by_sig_wallet_other_signature_reverts(
    consent, wallet, signer, other_signer, grantee, relayer, deadline
):
    grant_sig = sign_grant(
        consent,
        signer.private_key,
        patient=wallet,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
    )
    consent.grantBySig(
        wallet, grantee, STUDY_A, 1, False, 0, 0, deadline, grant_sig, {"from": relayer}
    )
    args = _revoke(consent, other_signer.private_key, wallet, grantee, deadline)

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", wallet)):
        consent.revokeBySig(*args, {"from": relayer})

    assert stored(consent, wallet, grantee, STUDY_A) == (1, False, 0, 0)


def test_revoke_by_sig_owner_signing_as_itself_does_not_move_wallet_grant(
    consent, wallet, signer, grantee, relayer, deadline
):
    # The owner's own (EOA) revocation names the owner as patient, not the wallet.
    consent.grant(grantee, STUDY_A, 1, True, 0, 0, {"from": signer})
    grant_sig = sign_grant(
        consent,
        signer.private_key,
        patient=wallet,
        grantee=grantee,
        scope=STUDY_A,
        purposes=1,
        deadline=deadline,
    )
    consent.grantBySig(
        wallet, grantee, STUDY_A, 1, False, 0, 0, deadline, grant_sig, {"from": relayer}
    )
    args = _revoke(consent, signer.private_key, signer, grantee, deadline)

    consent.revokeBySig(*args, {"from": relayer})

    assert stored(consent, signer, grantee, STUDY_A) == NO_GRANT
    assert stored(consent, wallet, grantee, STUDY_A) == (1, False, 0, 0)
