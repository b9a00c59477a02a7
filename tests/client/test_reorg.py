"""Records count only once final, and a reorganisation loses none of them (Anvil ``anvil_reorg``).

Also: a sync refusal always lands in the outbox (with its reason) and is anchored from there,
even when its anchor cannot be mined in the request; an outbox that cannot store a record
releases nothing; and no personal data reaches the log at INFO or above.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from release_samples import CT_STUDY, Actors, actors, build_ct_study, deploy_suite, grant

from imaging_consent import errors
from imaging_consent.access_log import AccessRecord
from imaging_consent.chain import LocalChain
from imaging_consent.contracts.deployment import Suite, sender_for
from imaging_consent.dicom import SitePepper
from imaging_consent.gateway import ImageGateway, LogMode
from imaging_consent.provenance import register_study
from imaging_consent.stores import FolderStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PEPPER = SitePepper(b"reorg-tests-site-pepper-32-bytes")


@dataclass
class World:
    chain: LocalChain
    suite: Suite
    people: Actors
    store: FolderStore
    work: Path

    def gateway(self, **kwargs: Any) -> ImageGateway:
        kwargs.setdefault("outbox_path", self.work / "outbox.sqlite3")
        sender = sender_for(self.chain.session, self.people.gateway)
        return ImageGateway(self.suite, sender, kwargs.pop("store", self.store), PEPPER, **kwargs)

    def anchors(self, batch_id: bytes | None = None) -> list[Any]:
        found = self.suite.access_log.events.BatchAnchored().get_logs(from_block=0)
        return [a for a in found if batch_id is None or a["args"]["batchId"] == batch_id]

    def granted(self, request_id: bytes) -> list[Any]:
        found = self.suite.access_log.events.AccessGranted().get_logs(from_block=0)
        return [a for a in found if a["args"]["requestId"] == request_id]

    def proves(self, gateway: ImageGateway, request_id: bytes) -> bool:
        found = gateway.outbox.batch_of(request_id)
        assert found is not None
        batch, proof = found
        (entry,) = [e for e in gateway.outbox.entries() if e.request_id == request_id]
        record = AccessRecord.from_json(entry.record).as_tuple()
        return bool(
            self.suite.access_log.functions.verifyRecord(
                batch.root, self.people.gateway.address, record, proof
            ).call()
        )

    def reorg(self, depth: int) -> None:
        self.chain.rpc("anvil_reorg", depth, [])


@pytest.fixture(scope="module")
def anvil() -> Iterator[LocalChain]:
    with LocalChain("anvil") as chain:
        yield chain


@pytest.fixture(scope="module")
def setup(anvil: LocalChain, tmp_path_factory: pytest.TempPathFactory) -> tuple[Suite, Actors]:
    people = actors(anvil)
    suite = deploy_suite(anvil, people)
    store = FolderStore(build_ct_study(tmp_path_factory.mktemp("ct"), 2))
    session = anvil.session
    register_study(
        suite, sender_for(session, people.site), store, PEPPER, CT_STUDY, people.patient.address
    )
    grant(suite, sender_for(session, people.patient), people.requester.address)
    anvil.mine(3)  # the grant is deep enough for confirmations=2
    return suite, people


@pytest.fixture
def world(anvil: LocalChain, setup: tuple[Suite, Actors], tmp_path: Path) -> Iterator[World]:
    suite, people = setup
    snapshot = anvil.snapshot()
    store = FolderStore(build_ct_study(tmp_path / "ct", 2))
    try:
        yield World(anvil, suite, people, store, tmp_path)
    finally:
        anvil.rpc("evm_setAutomine", True)
        anvil.revert(snapshot)


def test_reorged_anchor_is_sent_again_and_final_only_when_deep(world: World) -> None:
    gateway = world.gateway(log_mode=LogMode.BATCHED, confirmations=2)
    release = gateway.release(CT_STUDY, world.people.requester.address, "TREAT")

    (mined,) = gateway.flush()
    assert not mined.final and gateway.outbox.pending_count() == 1
    world.reorg(1)  # the block holding the anchor is replaced by an empty one
    assert world.anchors(mined.batch_id) == []

    (again,) = gateway.flush()  # the same signed bytes, mined again
    world.chain.mine(2)
    (final,) = gateway.flush()

    assert again.batch_id == mined.batch_id and not again.final
    assert final.final and final.tx_hash == again.tx_hash
    assert gateway.flush() == [] and gateway.outbox.pending_count() == 0
    (anchor,) = world.anchors(mined.batch_id)
    assert bytes(anchor["transactionHash"]) == final.tx_hash
    assert world.proves(gateway, release.request_id)
    gateway.close()


def test_reorged_record_access_is_anchored_instead(world: World) -> None:
    gateway = world.gateway(confirmations=2)  # sync
    release = gateway.release(CT_STUDY, world.people.requester.address, "TREAT")
    assert release.log_tx is not None and len(world.granted(release.request_id)) == 1
    assert gateway.flush() == [] and gateway.outbox.pending_count() == 1  # not final yet

    world.reorg(1)  # the recordAccess is gone
    assert world.granted(release.request_id) == []
    (batch,) = gateway.flush()
    world.chain.mine(2)
    (final,) = gateway.flush()

    assert batch.count == 1 and final.final and final.batch_id == batch.batch_id
    assert gateway.outbox.pending_count() == 0
    assert world.proves(gateway, release.request_id)
    (entry,) = gateway.outbox.entries()
    assert AccessRecord.from_json(entry.record).permitted and not entry.direct
    gateway.close()


def test_sync_record_final_once_deep(world: World) -> None:
    gateway = world.gateway(confirmations=2)
    release = gateway.release(CT_STUDY, world.people.requester.address, "TREAT")

    gateway.flush()
    world.chain.mine(2)
    gateway.flush()

    (entry,) = gateway.outbox.entries()
    assert entry.final and entry.direct and entry.batch_id is None
    assert entry.tx_hash == bytes.fromhex(str(release.log_tx)[2:])
    assert world.anchors() == [] and gateway.outbox.pending_count() == 0
    gateway.close()


def _tamper(store: FolderStore) -> None:
    victim = store.root / "ct2.dcm"
    data = bytearray(victim.read_bytes())
    data[-1000] ^= 0x01
    victim.write_bytes(bytes(data))
    store.refresh()


def test_sync_refusal_waits_in_outbox_when_its_anchor_is_stuck(world: World) -> None:
    _tamper(world.store)
    gateway = world.gateway()
    gateway.sender.receipt_timeout = 1.0
    gateway.sender.replace_after = None
    world.chain.rpc("evm_setAutomine", False)

    with pytest.raises(errors.IntegrityError) as caught:
        gateway.release(CT_STUDY, world.people.requester.address, "TREAT")

    (entry,) = gateway.outbox.entries()
    assert entry.request_id == caught.value.request_id and entry.reason == "IntegrityError"
    assert not AccessRecord.from_json(entry.record).permitted
    assert gateway.outbox.pending_count() == 1  # sent, not mined: kept, not lost
    world.chain.rpc("evm_setAutomine", True)
    world.chain.mine(1)
    (batch,) = gateway.flush()  # the pending anchor mined: found, not sent again
    assert batch.final and gateway.outbox.pending_count() == 0
    assert len(world.anchors(batch.batch_id)) == 1 and len(world.anchors()) == 1
    assert world.proves(gateway, entry.request_id)
    gateway.close()


def test_unstorable_record_releases_nothing(world: World) -> None:
    gateway = world.gateway()
    gateway.outbox.close()  # the outbox can no longer store anything

    with pytest.raises(errors.ReleaseError, match="outbox"):
        gateway.release(CT_STUDY, world.people.requester.address, "TREAT")

    found = world.suite.access_log.events.AccessGranted().get_logs(from_block=0)
    assert [a for a in found if a["args"]["gateway"] == world.people.gateway.address] == []


_LOGGERS = (
    "imaging_consent.access_log.recorder",
    "imaging_consent.access_log.outbox",
    "imaging_consent.chain.sender",
)


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """INFO and above from the recorder, outbox and sender, whatever logging setup ran before."""
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    saved = [(log.level, log.disabled) for log in loggers]
    for log in loggers:
        log.setLevel(logging.INFO)
        log.disabled = False
        log.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.INFO)
    try:
        yield caplog
    finally:
        for log, (level, disabled) in zip(loggers, saved, strict=True):
            log.removeHandler(caplog.handler)
            log.setLevel(level)
            log.disabled = disabled


def test_no_personal_data_in_logs(world: World, captured: pytest.LogCaptureFixture) -> None:
    _tamper(world.store)
    gateway = world.gateway()
    people = world.people
    with pytest.raises(errors.IntegrityError):
        gateway.release(CT_STUDY, people.requester.address, "TREAT")
    with pytest.raises(errors.ConsentDeniedError):
        gateway.release(CT_STUDY, people.stranger.address, "TREAT")
    gateway.flush()

    records = [r for r in captured.records if r.levelno >= logging.INFO]
    text = " ".join(r.getMessage() for r in records).lower()
    key = AccessRecord.from_json(gateway.outbox.entries()[0].record).study_key.hex()
    assert "refused request" in text  # the refusal is logged, by request id
    for secret in (people.patient.address, people.requester.address, people.stranger.address):
        assert secret.lower()[2:] not in text
    assert key not in text and key[:12] not in text
    gateway.close()
