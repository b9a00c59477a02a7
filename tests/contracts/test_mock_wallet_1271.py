"""An EIP-1271 wallet as patient: it grants, rotates its owner key and keeps its grants."""

from __future__ import annotations

import brownie
from consent_values import DAY, STUDY_A, error, later, latest_time, permitted
from eip712_messages import sign_grant


def _signed_grant(consent, key, wallet, grantee, deadline):
    issued_at = later()
    sig = sign_grant(
        consent,
        key,
        patient=wallet,
        grantee=grantee,
        scope=STUDY_A,
        purposes=0b1,
        identified=True,
        issued_at=issued_at,
        deadline=deadline,
    )
    return (wallet, grantee, STUDY_A, 0b1, True, 0, 0, issued_at, deadline, sig)


def test_mock_wallet_execute_grants_as_patient(consent, wallet, signer, grantee):
    data = consent.grant.encode_input(grantee, STUDY_A, 0b1, True, 0, 0)

    tx = wallet.execute(consent, data, {"from": signer})

    assert tx.events["ConsentGranted"]["patient"] == wallet
    assert permitted(consent, wallet, grantee, STUDY_A, 0) == (True, True)


def test_mock_wallet_execute_by_stranger_reverts(consent, wallet, stranger, grantee):
    data = consent.grant.encode_input(grantee, STUDY_A, 0b1, True, 0, 0)

    with brownie.reverts(revert_pattern=error("MockWallet1271NotOwner", stranger)):
        wallet.execute(consent, data, {"from": stranger})


def test_mock_wallet_execute_passes_revert_on(consent, wallet, signer):
    data = consent.setExclusion.encode_input(b"\x00" * 32, True)

    with brownie.reverts(revert_pattern=r"ConsentRegistryInvalidStudyKey: "):
        wallet.execute(consent, data, {"from": signer})


def test_mock_wallet_set_owner_by_stranger_reverts(wallet, stranger):
    with brownie.reverts(revert_pattern=error("MockWallet1271NotOwner", stranger)):
        wallet.setOwner(stranger, {"from": stranger})


def test_mock_wallet_rotation_keeps_grants_and_moves_signing(
    consent, wallet, signer, other_signer, admin, grantee, stranger, relayer, deadline
):
    wallet.execute(
        consent, consent.grant.encode_input(grantee, STUDY_A, 0b1, True, 0, 0), {"from": signer}
    )
    delegate_end = latest_time() + DAY
    wallet.execute(
        consent, consent.setDelegate.encode_input(stranger, STUDY_A, delegate_end), {"from": signer}
    )
    old_owner_grant = _signed_grant(consent, signer.private_key, wallet, relayer, deadline)

    tx = wallet.setOwner(other_signer, {"from": signer})

    assert dict(tx.events["OwnerSet"]) == {"previousOwner": signer, "newOwner": other_signer}
    assert wallet.owner() == other_signer
    assert permitted(consent, wallet, grantee, STUDY_A, 0) == (True, True)
    assert consent.getDelegation(wallet, stranger)[1] == delegate_end
    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidSigner", wallet)):
        consent.grantBySig(*old_owner_grant, {"from": relayer})
    new_owner_grant = _signed_grant(consent, other_signer.private_key, wallet, relayer, deadline)
    consent.grantBySig(*new_owner_grant, {"from": relayer})
    assert permitted(consent, wallet, relayer, STUDY_A, 0) == (True, True)
    with brownie.reverts(revert_pattern=error("MockWallet1271NotOwner", signer)):
        wallet.execute(consent, consent.revoke.encode_input(grantee, STUDY_A), {"from": signer})
