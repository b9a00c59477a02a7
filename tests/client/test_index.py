"""The audit index: sync, queries, batched records with proofs, reorganisations, bad databases.

Everything runs against a real Anvil (``anvil_reorg`` for the reorganisations) and a real
SQLite file; ``test_index_postgres.py`` runs the same index on a real PostgreSQL server.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from release_samples import CT_STUDY, Actors, actors, build_ct_study, deploy_suite, grant, revoke

from imaging_consent import errors
from imaging_consent.access_log import AccessRecord
from imaging_consent.chain import LocalChain
from imaging_consent.consent import Purpose
from imaging_consent.contracts.deployment import Suite, sender_for
from imaging_consent.dicom import SitePepper
from imaging_consent.dicom.keys import study_key
from imaging_consent.gateway import ImageGateway, LogMode
from imaging_consent.index.sync import Indexer
from imaging_consent.provenance import register_study
from imaging_consent.provenance.merkle import verify_proof
from imaging_consent.stores import FolderStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PEPPER = SitePepper(b"index-tests-site-pepper-32-bytes")


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
        return ImageGateway(self.suite, sender, self.store, PEPPER, **kwargs)

    def indexer(self, name: str = "index.sqlite3", **kwargs: Any) -> Indexer:
        return Indexer.open(self.suite, f"sqlite:///{self.work / name}", **kwargs)

    def study_key(self) -> bytes:
        return study_key(PEPPER, CT_STUDY)


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
    anvil.mine(3)
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


def test_sync_indexes_grants_accesses_and_studies(world: World) -> None:
    people = world.people
    gateway = world.gateway(confirmations=0)
    gateway.release(CT_STUDY, people.requester.address, "TREAT")
    with pytest.raises(errors.ConsentDeniedError):
        gateway.release(CT_STUDY, people.stranger.address, "TREAT")
    gateway.close()

    with world.indexer(confirmations=0) as indexer:
        result = indexer.sync()
        trail = indexer.trail(people.patient.address)
        studies = indexer.index.studies_of(people.patient.address)
        again = indexer.sync()

    assert result.events >= 4 and result.behind == 0 and again.events == 0
    assert [(e.kind, e.accessor) for e in trail.accesses] == [
        ("granted", people.requester.address),
        ("denied", people.stranger.address),
    ]
    assert all(e.study_key == world.study_key() and not e.batched for e in trail.accesses)
    [current] = trail.grants
    assert current.grantee == people.requester.address
    assert [e.kind for e in trail.consents] == ["granted"]
    assert trail.source == "index" and trail.behind == 0
    assert studies == {world.study_key(): people.site.address}


def test_index_answers_like_the_chain(world: World) -> None:
    from imaging_consent.index import trail_from_chain

    people = world.people
    gateway = world.gateway(confirmations=0)
    for _ in range(3):
        gateway.release(CT_STUDY, people.requester.address, "TREAT")
    revoke(world.suite, sender_for(world.chain.session, people.patient), people.requester.address)
    with pytest.raises(errors.ConsentDeniedError):
        gateway.release(CT_STUDY, people.requester.address, "TREAT")
    gateway.close()

    with world.indexer(confirmations=0) as indexer:
        indexer.sync()
        indexed = indexer.trail(people.patient.address)
    direct = trail_from_chain(world.suite, people.patient.address)

    assert indexed.accesses == direct.accesses
    assert indexed.consents == direct.consents and indexed.grants == direct.grants == ()


def test_confirmations_hold_back_the_newest_blocks(world: World) -> None:
    gateway = world.gateway(confirmations=0)
    gateway.release(CT_STUDY, world.people.requester.address, "TREAT")
    gateway.close()

    with world.indexer(confirmations=3) as indexer:
        first = indexer.sync()
        before = indexer.index.accesses(patient=world.people.patient.address)
        world.chain.mine(3)
        indexer.sync()
        after = indexer.index.accesses(patient=world.people.patient.address)

    assert first.behind == 3 and before == ()
    assert [e.kind for e in after] == ["granted"]


def test_batched_records_enter_with_proofs_once_anchored(world: World) -> None:
    people = world.people
    gateway = world.gateway(log_mode=LogMode.BATCHED, confirmations=0)
    released = gateway.release(CT_STUDY, people.requester.address, "TREAT")
    with pytest.raises(errors.ConsentDeniedError):
        gateway.release(CT_STUDY, people.stranger.address, "HRESCH")

    with world.indexer(confirmations=0, outboxes=[gateway.outbox]) as indexer:
        before = indexer.sync()
        (batch,) = gateway.flush()
        after = indexer.sync()
        found = indexer.index.accesses(patient=people.patient.address)
    gateway.close()

    assert before.batched == 0 and after.batched == 2 and batch.final
    assert [(e.kind, e.batched) for e in found] == [("granted", True), ("denied", True)]
    granted, denied = found
    assert granted.request_id == released.request_id
    assert denied.reason == "ConsentDeniedError"
    for event in found:
        record = AccessRecord(
            event.study_key, event.patient, event.accessor, event.purpose_code,
            event.kind == "granted", event.identified, False, event.request_id, event.gateway,
            event.timestamp,
        )  # fmt: skip
        assert event.batch_root == batch.root and event.batch_id == batch.batch_id
        assert verify_proof(batch.root, record.leaf(), event.proof)
        assert world.suite.access_log.functions.verifyRecord(
            batch.root, people.gateway.address, record.as_tuple(), list(event.proof)
        ).call()
        assert event.tx_hash == "0x" + batch.tx_hash.hex()  # type: ignore[union-attr]


def test_reorg_that_removes_an_access_record_is_undone(world: World) -> None:
    people = world.people
    gateway = world.gateway(confirmations=0)
    with world.indexer(confirmations=0) as indexer:
        indexer.sync()
        gateway.release(CT_STUDY, people.requester.address, "TREAT")
        indexer.sync()
        assert len(indexer.index.accesses(patient=people.patient.address)) == 1

        world.chain.rpc("anvil_reorg", 1, [])  # the block holding the record is replaced
        result = indexer.sync()

        assert result.rolled_back >= 1 and result.removed == 1
        assert indexer.index.accesses(patient=people.patient.address) == ()
    gateway.close()


def test_reorg_that_replaces_a_revocation_shows_the_grant_again(world: World) -> None:
    people = world.people
    patient = sender_for(world.chain.session, people.patient)
    with world.indexer(confirmations=0) as indexer:
        revoke(world.suite, patient, people.requester.address)
        indexer.sync()
        assert indexer.trail(people.patient.address).grants == ()

        # The revocation's block is replaced by one holding a different grant instead.
        world.chain.rpc("anvil_reorg", 1, [])
        patient = sender_for(world.chain.session, people.patient)  # its nonce went back
        grant(world.suite, patient, people.stranger.address, purposes=(Purpose.HRESCH,))
        indexer.sync()
        trail = indexer.trail(people.patient.address)

    assert {g.grantee for g in trail.grants} == {people.requester.address, people.stranger.address}
    assert [e.kind for e in trail.consents] == ["granted", "granted"]


def test_index_of_another_deployment_is_refused(world: World) -> None:
    with world.indexer() as indexer:
        indexer.sync()
    other = deploy_suite(world.chain, world.people)

    with pytest.raises(errors.IndexMismatchError, match="follows chain"):
        Indexer.open(other, f"sqlite:///{world.work / 'index.sqlite3'}")


def test_corrupt_and_foreign_databases_are_refused(world: World) -> None:
    corrupt = world.work / "corrupt.sqlite3"
    corrupt.write_bytes(b"this is not a database" * 100)
    foreign = world.work / "foreign.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE patients (name TEXT)")

    with pytest.raises(errors.AuditIndexError, match="not a database"):
        world.indexer("corrupt.sqlite3")
    with pytest.raises(errors.AuditIndexError, match="not an audit index"):
        world.indexer("foreign.sqlite3")
    assert corrupt.read_bytes() == b"this is not a database" * 100
    with pytest.raises(errors.AuditIndexError, match="malformed"):
        Indexer.open(world.suite, "nosuchdriver://x")


def test_new_index_file_is_private(world: World) -> None:
    with world.indexer():
        pass
    assert (world.work / "index.sqlite3").stat().st_mode & 0o777 == 0o600
