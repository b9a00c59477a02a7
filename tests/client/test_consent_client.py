"""ConsentClient on a real chain: grant, revoke, update, delegates, reads and typed errors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bench.proxy import CountingProxy
from imaging_consent import errors
from imaging_consent.chain import LocalChain, connect
from imaging_consent.consent import ALL_STUDIES, ConsentClient, Grant, Permission, Purpose
from imaging_consent.contracts.deployment import Suite, deploy, load, sender_for

STUDY = bytes.fromhex("11" * 32)
OTHER_STUDY = bytes.fromhex("22" * 32)


def _suite(chain: LocalChain) -> Suite:
    return deploy(chain.session, sender_for(chain.session, chain.accounts[0]), out_dir=None)


def _client(chain: LocalChain, suite: Suite, index: int) -> ConsentClient:
    return ConsentClient(suite, sender_for(chain.session, chain.accounts[index]))


def _tx_count(chain: LocalChain, index: int) -> int:
    return chain.session.w3.eth.get_transaction_count(chain.accounts[index].address)


def test_grant_update_revoke_round_trip(clean_chain: LocalChain) -> None:
    suite = _suite(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    client = _client(clean_chain, suite, 1)

    client.grant(doctor.address, STUDY, ["TREAT", Purpose.HRESCH], identified=False)
    first = client.get_grant(patient.address, doctor.address, STUDY)
    research = client.is_permitted(patient.address, doctor.address, STUDY, "hresch")
    client.grant(doctor.address, STUDY, [Purpose.TREAT], identified=True)
    updated = client.get_grant(patient.address, doctor.address, STUDY)
    treat = client.is_permitted(patient.address, doctor.address, STUDY, Purpose.TREAT)
    research_after = client.is_permitted(patient.address, doctor.address, STUDY, "HRESCH")
    client.revoke(doctor.address, STUDY)

    assert first == Grant(
        patient.address,
        doctor.address,
        STUDY,
        frozenset({Purpose.TREAT, Purpose.HRESCH}),
        False,
        0,
        0,
    )
    assert research == Permission(permitted=True, identified=False)
    assert updated is not None
    assert updated.purposes == frozenset({Purpose.TREAT})
    assert updated.identified
    assert treat == Permission(True, True)
    assert research_after == Permission(False, False)
    assert client.get_grant(patient.address, doctor.address, STUDY) is None
    assert not client.is_permitted(patient.address, doctor.address, STUDY, "TREAT").permitted


def test_all_studies_scope_covers_every_study(clean_chain: LocalChain) -> None:
    suite = _suite(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    client = _client(clean_chain, suite, 1)

    client.grant(doctor.address, STUDY, ["TREAT"], identified=True)
    only_study = client.is_permitted(patient.address, doctor.address, OTHER_STUDY, "TREAT")
    client.grant(doctor.address, None, ["TREAT"], identified=False)
    all_grant = client.get_grant(patient.address, doctor.address, ALL_STUDIES)

    assert not only_study.permitted
    assert client.is_permitted(patient.address, doctor.address, OTHER_STUDY, "TREAT") == (
        Permission(True, False)
    )
    assert client.is_permitted(patient.address, doctor.address, STUDY, "TREAT") == (
        Permission(True, True)
    )
    assert all_grant is not None
    assert all_grant.all_studies


def test_window_with_aware_datetimes(clean_chain: LocalChain) -> None:
    suite = _suite(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    client = _client(clean_chain, suite, 1)
    now = clean_chain.session.w3.eth.get_block("latest")["timestamp"]
    start = datetime.fromtimestamp(now + 1000, tz=timezone.utc)

    client.grant(
        doctor.address, STUDY, ["TREAT"], identified=True, not_before=start,
        expires_at=start + timedelta(hours=1),
    )  # fmt: skip
    grant = client.get_grant(patient.address, doctor.address, STUDY)
    before = client.is_permitted(patient.address, doctor.address, STUDY, "TREAT")
    clean_chain.increase_time(1500)

    assert grant is not None
    assert (grant.not_before, grant.expires_at) == (now + 1000, now + 4600)
    assert not before.permitted
    assert client.is_permitted(patient.address, doctor.address, STUDY, "TREAT").permitted


def test_delegate_grants_and_revokes_for_patient(clean_chain: LocalChain) -> None:
    suite = _suite(clean_chain)
    patient, doctor, guardian = (clean_chain.accounts[i] for i in (1, 2, 4))
    patient_client = _client(clean_chain, suite, 1)
    guardian_client = _client(clean_chain, suite, 4)
    now = clean_chain.session.w3.eth.get_block("latest")["timestamp"]

    patient_client.set_delegate(guardian.address, expires_at=now + 3600)
    guardian_client.grant_for(patient.address, doctor.address, None, ["TREAT"], identified=True)
    granted = patient_client.is_permitted(patient.address, doctor.address, STUDY, "TREAT")
    made = patient_client.get_grant(patient.address, doctor.address, None)
    guardian_client.revoke_for(patient.address, doctor.address, None)
    revoked = patient_client.get_grant(patient.address, doctor.address, None)
    patient_client.remove_delegate(guardian.address)

    assert granted.permitted
    assert made is not None
    assert made.expires_at == now + 3600  # a delegate's grant ends with the delegation
    assert revoked is None
    with pytest.raises(errors.NotDelegateError, match="is not a delegate"):
        guardian_client.grant_for(patient.address, doctor.address, None, ["TREAT"], identified=True)


def test_delegate_grant_cannot_outlive_or_serve_the_delegate(clean_chain: LocalChain) -> None:
    suite = _suite(clean_chain)
    patient, doctor, guardian = (clean_chain.accounts[i] for i in (1, 2, 4))
    patient_client = _client(clean_chain, suite, 1)
    guardian_client = _client(clean_chain, suite, 4)
    now = clean_chain.session.w3.eth.get_block("latest")["timestamp"]
    patient_client.set_delegate(guardian.address, expires_at=now + 3600, scope=STUDY)
    before = _tx_count(clean_chain, 4)

    with pytest.raises(errors.NotDelegateError):
        guardian_client.grant_for(
            patient.address, doctor.address, STUDY, ["TREAT"], identified=True,
            expires_at=now + 7200,
        )  # fmt: skip
    with pytest.raises(errors.NotDelegateError):
        guardian_client.grant_for(patient.address, doctor.address, None, ["TREAT"], identified=True)
    with pytest.raises(errors.InvalidGrantError):
        guardian_client.grant_for(
            patient.address, guardian.address, STUDY, ["TREAT"], identified=True
        )

    assert _tx_count(clean_chain, 4) == before
    with pytest.raises(errors.InvalidTimestampError, match="needs an expiry"):
        patient_client.set_delegate(guardian.address, expires_at=0)


def test_exclusion_beats_all_studies_grant_but_not_study_grant(clean_chain: LocalChain) -> None:
    suite = _suite(clean_chain)
    patient, doctor, nurse = (clean_chain.accounts[i] for i in (1, 2, 3))
    client = _client(clean_chain, suite, 1)
    client.grant(doctor.address, None, ["TREAT"], identified=True)
    client.grant(nurse.address, None, ["TREAT"], identified=True)
    client.grant(nurse.address, STUDY, ["TREAT"], identified=False)

    client.set_exclusion(STUDY)

    assert not client.is_permitted(patient.address, doctor.address, STUDY, "TREAT").permitted
    assert client.is_permitted(patient.address, doctor.address, OTHER_STUDY, "TREAT").permitted
    assert client.is_permitted(patient.address, nurse.address, STUDY, "TREAT") == Permission(
        True, False
    )
    with pytest.raises(errors.InvalidGrantError, match="needs a study key"):
        client.set_exclusion(ALL_STUDIES)
    client.set_exclusion(STUDY, excluded=False)
    assert client.is_permitted(patient.address, doctor.address, STUDY, "TREAT").permitted


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"purposes": ["SHOPPING"]}, errors.UnknownPurposeError, "unknown purpose 'SHOPPING'"),
        ({"purposes": []}, errors.UnknownPurposeError, "at least one purpose"),
        ({"grantee": "0x" + "00" * 20}, errors.InvalidGrantError, "zero address"),
        ({"grantee": "bob"}, errors.InvalidAddressError, "grantee is not an address"),
        ({"not_before": 2000, "expires_at": 2000}, errors.InvalidGrantError, "must be after"),
        (
            {"not_before": datetime(2030, 1, 1)},
            errors.InvalidTimestampError,
            "naive datetime",
        ),
        ({"scope": b"short"}, errors.InvalidGrantError, "32-byte"),
    ],
    ids=["purpose", "no-purpose", "zero-grantee", "bad-address", "window", "naive", "scope"],
)
def test_grant_bad_input_is_typed_and_sends_nothing(
    clean_chain: LocalChain, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    suite = _suite(clean_chain)
    client = _client(clean_chain, suite, 1)
    args: dict[str, object] = {
        "grantee": clean_chain.accounts[2].address,
        "scope": STUDY,
        "purposes": ["TREAT"],
        "identified": True,
        **kwargs,
    }
    before = _tx_count(clean_chain, 1)

    with pytest.raises(error, match=message):
        client.grant(**args)  # type: ignore[arg-type]

    assert _tx_count(clean_chain, 1) == before


def test_chain_side_errors_are_typed_and_send_nothing(clean_chain: LocalChain) -> None:
    suite = _suite(clean_chain)
    doctor = clean_chain.accounts[2]
    client = _client(clean_chain, suite, 1)
    now = clean_chain.session.w3.eth.get_block("latest")["timestamp"]
    before = _tx_count(clean_chain, 1)

    with pytest.raises(errors.InvalidGrantError, match="after the current block time"):
        client.grant(doctor.address, STUDY, ["TREAT"], identified=True, expires_at=now - 10)
    with pytest.raises(errors.InvalidDelegateError):
        client.set_delegate(clean_chain.accounts[1].address, expires_at=now + 3600)

    assert _tx_count(clean_chain, 1) == before


def test_revoke_without_grant_leaves_a_tombstone(clean_chain: LocalChain) -> None:
    suite = _suite(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    client = _client(clean_chain, suite, 1)

    receipt = client.revoke(doctor.address, STUDY)

    slot = suite.consent.get_grant(patient.address, doctor.address, STUDY)
    assert receipt.status == 1
    assert client.get_grant(patient.address, doctor.address, STUDY) is None
    assert slot.purposes == 0
    assert slot.issued_at > 0


def test_read_only_client_refuses_to_send(clean_chain: LocalChain) -> None:
    suite = _suite(clean_chain)
    client = ConsentClient(suite)

    with pytest.raises(errors.ReadOnlyClientError):
        client.grant(clean_chain.accounts[2].address, None, ["TREAT"], identified=True)


def test_is_permitted_is_one_request(clean_chain: LocalChain) -> None:
    suite = _suite(clean_chain)
    patient, doctor = clean_chain.accounts[1], clean_chain.accounts[2]
    _client(clean_chain, suite, 1).grant(doctor.address, None, ["TREAT"], identified=True)

    with CountingProxy(clean_chain.rpc_url) as proxy:
        session = connect(proxy.url, clean_chain.chain_id)
        reader = ConsentClient(load(session, suite.manifest))
        proxy.reset()

        answer = reader.is_permitted(patient.address, doctor.address, STUDY, "TREAT")

    assert answer.permitted
    assert proxy.requests == 1
    assert proxy.methods == {"eth_call": 1}
