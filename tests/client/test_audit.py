"""History from events: grants_of / grants_to, paged eth_getLogs, and the access history."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.proxy import CountingProxy
from imaging_consent import errors
from imaging_consent.access_log.break_glass import sign_break_glass
from imaging_consent.access_log.history import access_history, fetch_logs
from imaging_consent.chain import LocalChain, connect
from imaging_consent.consent import ALL_STUDIES, ConsentClient, Purpose
from imaging_consent.contracts.deployment import Suite, deploy, load, sender_for

STUDY = bytes.fromhex("44" * 32)
OTHER = bytes.fromhex("55" * 32)


class RangeLimitedProxy(CountingProxy):
    """The counting proxy, refusing ``eth_getLogs`` over more than ``limit`` blocks."""

    def __init__(self, upstream: str, limit: int) -> None:
        super().__init__(upstream, max_log_blocks=limit)

    @property
    def get_logs_calls(self) -> int:
        return self.methods["eth_getLogs"]


@pytest.fixture
def history_chain(clean_chain: LocalChain) -> Iterator[tuple[LocalChain, Suite]]:
    """A suite with a sequence of grants: grant, update, revoke, regrant, plus noise."""
    suite = deploy(clean_chain.session, sender_for(clean_chain.session, clean_chain.accounts[0]),
                   out_dir=None)  # fmt: skip
    doctor, guardian, lab = (clean_chain.accounts[i] for i in (2, 4, 6))
    patient_client = ConsentClient(suite, sender_for(clean_chain.session, clean_chain.accounts[1]))
    other_client = ConsentClient(suite, sender_for(clean_chain.session, clean_chain.accounts[5]))

    patient_client.grant(doctor.address, STUDY, ["TREAT"], identified=False)
    clean_chain.mine(3)
    patient_client.grant(doctor.address, STUDY, ["TREAT", "ETREAT"], identified=True)
    other_client.grant(doctor.address, None, ["HRESCH"], identified=False)
    clean_chain.mine(2)
    patient_client.revoke(doctor.address, STUDY)
    patient_client.grant(lab.address, OTHER, ["HRESCH"], identified=False)
    clean_chain.mine(4)
    patient_client.grant(doctor.address, STUDY, ["PATRQT"], identified=False)
    now = clean_chain.session.w3.eth.get_block("latest")["timestamp"]
    patient_client.set_delegate(guardian.address, expires_at=now + 86400)
    yield clean_chain, suite


def test_grants_of_rebuilds_state_and_history(history_chain: tuple[LocalChain, Suite]) -> None:
    chain, suite = history_chain
    patient, doctor, guardian, lab = (chain.accounts[i] for i in (1, 2, 4, 6))
    client = ConsentClient(suite)

    history = client.grants_of(patient.address, page=2)

    assert [e.kind for e in history.events] == [
        "granted",
        "granted",
        "revoked",
        "granted",
        "granted",
        "delegate_set",
    ]
    assert all(e.patient == patient.address for e in history.events)
    assert history.events[1].purposes == frozenset({Purpose.TREAT, Purpose.ETREAT})
    assert history.events[1].identified
    assert history.events[-1].grantee == guardian.address
    assert history.events[-1].allowed is True
    blocks = [(e.block_number, e.log_index) for e in history.events]
    assert blocks == sorted(blocks)
    assert all(e.timestamp > 0 for e in history.events)
    assert len({e.tx_hash for e in history.events}) == 6
    assert {(g.grantee, g.scope) for g in history.current} == {
        (lab.address, OTHER),
        (doctor.address, STUDY),
    }
    for grant in history.current:
        assert client.get_grant(patient.address, grant.grantee, grant.scope) == grant
    assert history == client.grants_of(patient.address)  # same answer whatever the page size


def test_grants_to_rebuilds_grants_from_every_patient(
    history_chain: tuple[LocalChain, Suite],
) -> None:
    chain, suite = history_chain
    patient, doctor, guardian, other = (chain.accounts[i] for i in (1, 2, 4, 5))
    client = ConsentClient(suite)

    to_doctor = client.grants_to(doctor.address, page=3)
    to_guardian = client.grants_to(guardian.address, page=3)

    assert [(e.kind, e.patient) for e in to_doctor.events] == [
        ("granted", patient.address),
        ("granted", patient.address),
        ("granted", other.address),
        ("revoked", patient.address),
        ("granted", patient.address),
    ]
    assert {(g.patient, g.scope, g.purposes) for g in to_doctor.current} == {
        (other.address, ALL_STUDIES, frozenset({Purpose.HRESCH})),
        (patient.address, STUDY, frozenset({Purpose.PATRQT})),
    }
    assert to_guardian.current == ()
    assert [e.kind for e in to_guardian.events] == ["delegate_set"]


def test_fetch_logs_halves_page_when_node_asks_for_less(
    history_chain: tuple[LocalChain, Suite],
) -> None:
    chain, suite = history_chain
    patient = chain.accounts[1]
    expected = ConsentClient(suite).grants_of(patient.address)

    with RangeLimitedProxy(chain.rpc_url, limit=4) as proxy:
        limited = load(connect(proxy.url, chain.chain_id), suite.manifest)
        history = ConsentClient(limited).grants_of(patient.address, page=1000)

    assert history == expected
    assert proxy.refused >= 1
    assert proxy.get_logs_calls > proxy.refused


def test_fetch_logs_gives_up_at_one_block(history_chain: tuple[LocalChain, Suite]) -> None:
    chain, suite = history_chain

    with RangeLimitedProxy(chain.rpc_url, limit=0) as proxy:
        limited = load(connect(proxy.url, chain.chain_id), suite.manifest)
        with pytest.raises(errors.LogQueryError, match="single block"):
            fetch_logs(limited.session, limited.consent.events.ConsentGranted, from_block=0)


def test_access_history_lists_releases_refusals_and_break_glass(clean_chain: LocalChain) -> None:
    admin, patient, doctor, medic, other = (clean_chain.accounts[i] for i in (0, 1, 2, 3, 5))
    gateway = sender_for(clean_chain.session, admin)
    suite = deploy(
        clean_chain.session, gateway, sites=[admin.address], gateways=[admin.address],
        emergency=[medic.address], out_dir=None,
    )  # fmt: skip
    log = suite.access_log.functions
    gateway.transact(suite.studies.functions.registerStudy(STUDY, patient.address, OTHER, 3))
    gateway.transact(suite.studies.functions.registerStudy(OTHER, other.address, STUDY, 1))
    ConsentClient(suite, sender_for(clean_chain.session, patient)).grant(
        doctor.address, STUDY, ["TREAT"], identified=True
    )

    gateway.transact(log.recordAccess(STUDY, doctor.address, Purpose.TREAT.value, b"\x01" * 32))
    gateway.transact(log.recordAccess(STUDY, doctor.address, Purpose.HRESCH.value, b"\x02" * 32))
    signed = sign_break_glass(medic, suite, admin.address, STUDY, b"\x09" * 32,
                              request_id=b"\x03" * 32)  # fmt: skip
    gateway.transact(
        log.recordBreakGlass(
            STUDY, medic.address, signed.request_id, signed.reason_commitment, signed.deadline,
            signed.signature,
        )
    )  # fmt: skip
    gateway.transact(log.recordAccess(OTHER, doctor.address, Purpose.TREAT.value, b"\x04" * 32))
    gateway.transact(log.recordAccess(STUDY, doctor.address, 9, b"\x05" * 32))
    events = access_history(suite, patient.address, page=3)
    newest = access_history(suite, patient.address, newest_first=True)

    assert [(e.kind, e.purpose, e.request_id[:1]) for e in events] == [
        ("granted", Purpose.TREAT, b"\x01"),
        ("denied", Purpose.HRESCH, b"\x02"),
        ("break_glass", Purpose.ETREAT, b"\x03"),
        ("denied", None, b"\x05"),
    ]
    assert events[-1].purpose_code == 9
    assert events[2].reason_commitment == b"\x09" * 32
    assert events[2].accessor == medic.address
    assert [e.identified for e in events] == [True, False, True, False]
    assert events[0].reason_commitment is None
    assert all(e.study_key == STUDY and e.gateway == admin.address for e in events)
    for event in events:
        block = clean_chain.session.w3.eth.get_block(event.block_number)
        assert event.timestamp == block["timestamp"]
    assert newest == tuple(reversed(events))
