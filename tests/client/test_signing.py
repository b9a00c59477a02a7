"""EIP-712 consents: typed data from the chain domain, local signing, relaying by others."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from imaging_consent import errors
from imaging_consent.chain import LocalChain
from imaging_consent.consent import (
    DEFAULT_SIGNATURE_LIFETIME,
    ConsentClient,
    Purpose,
    SignedConsent,
)
from imaging_consent.contracts.deployment import Suite, deploy, sender_for

STUDY = bytes.fromhex("33" * 32)


def _setup(chain: LocalChain) -> tuple[Suite, ConsentClient]:
    suite = deploy(chain.session, sender_for(chain.session, chain.accounts[0]), out_dir=None)
    relayer = ConsentClient(suite, sender_for(chain.session, chain.accounts[3]))
    return suite, relayer


def _counts(chain: LocalChain) -> tuple[int, int]:
    w3 = chain.session.w3
    return (
        w3.eth.get_transaction_count(chain.accounts[3].address),
        w3.eth.get_transaction_count(chain.accounts[1].address),
    )


def test_typed_data_uses_chain_domain_and_signature_recovers(clean_chain: LocalChain) -> None:
    suite, client = _setup(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    fields, name, version, chain_id, verifying, _salt, _ext = (
        suite.consent.functions.eip712Domain().call()
    )
    now = clean_chain.session.w3.eth.get_block("latest")["timestamp"]

    signed = client.sign_grant(
        patient.address, doctor.address, STUDY, ["TREAT", "HRESCH"], identified=False,
        key=patient,
    )  # fmt: skip
    data = signed.typed_data

    assert fields == b"\x0f"
    assert version == "2"
    assert data["primaryType"] == "Grant"
    assert data["domain"] == {
        "name": name,
        "version": version,
        "chainId": chain_id,
        "verifyingContract": verifying,
    }
    assert chain_id == clean_chain.chain_id
    assert [f["name"] for f in data["types"]["EIP712Domain"]] == [
        "name",
        "version",
        "chainId",
        "verifyingContract",
    ]
    assert ",".join(f"{f['type']} {f['name']}" for f in data["types"]["Grant"]) == (
        "address patient,address grantee,bytes32 scope,uint32 purposes,bool identified,"
        "uint48 notBefore,uint48 expiresAt,uint48 issuedAt,uint256 deadline"
    )
    assert data["message"]["purposes"] == Purpose.TREAT.bit | Purpose.HRESCH.bit
    assert data["message"]["scope"] == "0x" + STUDY.hex()
    assert data["message"]["issuedAt"] == now
    assert data["message"]["deadline"] == now + DEFAULT_SIGNATURE_LIFETIME
    recovered = Account.recover_message(
        encode_typed_data(full_message=data), signature=signed.signature
    )
    assert recovered == patient.address
    assert SignedConsent.from_json(signed.to_json()) == signed


def test_revoke_typed_data(clean_chain: LocalChain) -> None:
    _suite, client = _setup(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]

    now = clean_chain.session.w3.eth.get_block("latest")["timestamp"]

    unsigned = client.sign_revoke(patient.address, doctor.address, None, deadline=now + 86400)

    assert unsigned.signature is None
    assert unsigned.typed_data["primaryType"] == "Revoke"
    assert [f["name"] for f in unsigned.typed_data["types"]["Revoke"]] == [
        "patient",
        "grantee",
        "scope",
        "issuedAt",
        "deadline",
    ]
    assert unsigned.deadline == now + 86400
    assert unsigned.issued_at == now


def test_relay_grant_and_revoke_patient_pays_nothing(clean_chain: LocalChain) -> None:
    _suite, client = _setup(clean_chain)
    w3 = clean_chain.session.w3
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    balance = w3.eth.get_balance(patient.address)

    grant = client.sign_grant(
        patient.address, doctor.address, STUDY, ["TREAT"], identified=True, key=patient
    )
    # A wallet's signature arrives as hex, attached to the typed data it was shown.
    wallet_signed = SignedConsent.from_json(
        grant.with_signature("0x" + (grant.signature or b"").hex()).to_json()
    )
    client.relay_grant(wallet_signed)
    permitted = client.is_permitted(patient.address, doctor.address, STUDY, "TREAT")
    revoke = client.sign_revoke(patient.address, doctor.address, STUDY, key=patient)
    client.relay_revoke(revoke)

    assert permitted.permitted
    assert revoke.issued_at >= grant.issued_at
    assert client.get_grant(patient.address, doctor.address, STUDY) is None
    assert w3.eth.get_balance(patient.address) == balance
    assert w3.eth.get_transaction_count(patient.address) == 0


def test_relay_expired_is_typed_and_sends_nothing(clean_chain: LocalChain) -> None:
    _suite, client = _setup(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    now = clean_chain.session.w3.eth.get_block("latest")["timestamp"]
    signed = client.sign_grant(
        patient.address, doctor.address, STUDY, ["TREAT"], identified=True, key=patient,
        deadline=now + 60,
    )  # fmt: skip
    clean_chain.increase_time(600)
    before = _counts(clean_chain)

    with pytest.raises(errors.SignatureExpiredError, match="expired") as local:
        client.relay_grant(signed)
    with pytest.raises(errors.SignatureExpiredError) as on_chain:
        client.relay_grant(signed, check=False)

    assert local.value.error_name == ""
    assert on_chain.value.error_name == "ConsentRegistryExpiredSignature"
    assert on_chain.value.tx_hash is None
    assert _counts(clean_chain) == before


def test_relay_replayed_is_typed_and_sends_nothing(clean_chain: LocalChain) -> None:
    _suite, client = _setup(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    signed = client.sign_grant(
        patient.address, doctor.address, STUDY, ["TREAT"], identified=True, key=patient
    )
    client.relay_grant(signed)
    before = _counts(clean_chain)

    with pytest.raises(errors.SupersededSignatureError, match="superseded"):
        client.relay_grant(signed)
    with pytest.raises(errors.SupersededSignatureError) as on_chain:
        client.relay_grant(signed, check=False)

    assert on_chain.value.error_name == "ConsentRegistrySupersededSignature"
    assert _counts(clean_chain) == before


def test_relay_wrong_signer_is_typed_and_sends_nothing(clean_chain: LocalChain) -> None:
    _suite, client = _setup(clean_chain)
    patient, doctor, mallory = (clean_chain.accounts[i] for i in (1, 2, 5))
    forged = client.sign_grant(
        patient.address, doctor.address, None, ["TREAT"], identified=True, key=mallory
    )
    unsigned = client.sign_grant(patient.address, doctor.address, None, ["TREAT"], identified=True)
    before = _counts(clean_chain)

    with pytest.raises(errors.InvalidSignatureError, match=f"signed by {mallory.address}"):
        client.relay_grant(forged)
    with pytest.raises(errors.InvalidSignatureError, match="not signed yet"):
        client.relay_grant(unsigned)
    with pytest.raises(errors.InvalidSignatureError, match="expected a signed revoke"):
        client.relay_revoke(forged)
    with pytest.raises(errors.InvalidSignatureError) as on_chain:
        client.relay_grant(forged, check=False)

    assert on_chain.value.error_name == "ConsentRegistryInvalidSigner"
    assert _counts(clean_chain) == before


def test_sign_bad_input_is_typed(clean_chain: LocalChain) -> None:
    _suite, client = _setup(clean_chain)
    patient = clean_chain.accounts[1]

    with pytest.raises(errors.UnknownPurposeError):
        client.sign_grant(patient.address, patient.address, None, ["NOPE"], identified=True)
    with pytest.raises(errors.InvalidGrantError, match="zero address"):
        client.sign_grant(patient.address, "0x" + "00" * 20, None, ["TREAT"], identified=True)
    with pytest.raises(errors.InvalidGrantError, match="must be after"):
        client.sign_grant(
            patient.address, patient.address, None, ["TREAT"], identified=True,
            not_before=100, expires_at=50,
        )  # fmt: skip


def test_relay_tampered_message_is_refused(clean_chain: LocalChain) -> None:
    _suite, client = _setup(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    signed = client.sign_grant(
        patient.address, doctor.address, STUDY, ["TREAT"], identified=False, key=patient
    )
    data = {**signed.typed_data, "message": {**signed.message, "identified": True}}
    tampered = SignedConsent("grant", data, signed.signature)
    before = _counts(clean_chain)

    with pytest.raises(errors.InvalidSignatureError, match="not by patient"):
        client.relay_grant(tampered)

    assert _counts(clean_chain) == before


def test_cancel_voids_outstanding_grant_signatures(clean_chain: LocalChain) -> None:
    suite, client = _setup(clean_chain)
    patient, doctor, nurse = (clean_chain.accounts[i] for i in (1, 2, 4))
    patient_client = ConsentClient(suite, sender_for(clean_chain.session, patient))
    to_doctor = client.sign_grant(
        patient.address, doctor.address, STUDY, ["TREAT"], identified=True, key=patient
    )
    to_nurse = client.sign_grant(
        patient.address, nurse.address, STUDY, ["TREAT"], identified=True, key=patient
    )
    clean_chain.mine()

    client.relay_cancel(client.sign_cancel(patient.address, doctor.address, STUDY, key=patient))
    patient_client.cancel_signatures(nurse.address, STUDY)
    before = _counts(clean_chain)

    with pytest.raises(errors.SupersededSignatureError):
        client.relay_grant(to_doctor)
    with pytest.raises(errors.SupersededSignatureError):
        client.relay_grant(to_nurse, check=False)
    assert _counts(clean_chain)[0] == before[0]
    assert not client.is_permitted(patient.address, doctor.address, STUDY, "TREAT").permitted
    assert not client.is_permitted(patient.address, nurse.address, STUDY, "TREAT").permitted


def test_signature_lifetime_and_future_issue_are_refused(clean_chain: LocalChain) -> None:
    _suite, client = _setup(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    now = clean_chain.session.w3.eth.get_block("latest")["timestamp"]
    future = client.sign_grant(
        patient.address, doctor.address, STUDY, ["TREAT"], identified=True, key=patient,
        issued_at=now + 3600,
    )  # fmt: skip
    before = _counts(clean_chain)

    with pytest.raises(errors.InvalidSignatureError, match="at most 30 days"):
        client.sign_grant(
            patient.address, doctor.address, STUDY, ["TREAT"], identified=True, key=patient,
            deadline=now + 31 * 86400,
        )  # fmt: skip
    with pytest.raises(errors.InvalidSignatureError, match="after the latest block"):
        client.relay_grant(future)
    with pytest.raises(errors.InvalidSignatureError) as on_chain:
        client.relay_grant(future, check=False)

    assert on_chain.value.error_name == "ConsentRegistrySignatureFromFuture"
    assert _counts(clean_chain) == before


def test_revoke_signature_never_revokes_a_later_grant(clean_chain: LocalChain) -> None:
    suite, client = _setup(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    patient_client = ConsentClient(suite, sender_for(clean_chain.session, patient))
    old_revoke = client.sign_revoke(patient.address, doctor.address, STUDY, key=patient)
    clean_chain.increase_time(5)
    patient_client.grant(doctor.address, STUDY, ["TREAT"], identified=True)

    receipt = client.relay_revoke(old_revoke)

    superseded = suite.consent.events.SignatureSuperseded().process_receipt(receipt.raw)
    assert len(superseded) == 1
    assert client.is_permitted(patient.address, doctor.address, STUDY, "TREAT").permitted
