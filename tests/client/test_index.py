"""The audit index: sync, queries, batched records with proofs, reorganisations, bad databases.

Everything runs against a real Anvil (``anvil_reorg`` for the reorganisations) and a real
SQLite file; ``test_index_postgres.py`` runs the same index on a real PostgreSQL server.
"""

from __future__ import annotations

import http.server
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from release_samples import CT_STUDY, Actors, actors, build_ct_study, deploy_suite, grant, revoke

from bench.proxy import CountingProxy
from imaging_consent import errors
from imaging_consent.access_log import AccessRecord
from imaging_consent.access_log.break_glass import sign_break_glass
from imaging_consent.chain import LocalChain, connect
from imaging_consent.chain.logs import log_pages
from imaging_consent.consent import Purpose
from imaging_consent.contracts.deployment import Suite, load, sender_for
from imaging_consent.dicom import SitePepper
from imaging_consent.dicom.keys import study_key
from imaging_consent.gateway import ImageGateway, LogMode
from imaging_consent.index import trail_from_chain
from imaging_consent.index.decode import decoders_for
from imaging_consent.index.notify import BreakGlassNotifier
from imaging_consent.index.sync import Indexer
from imaging_consent.provenance import register_study
from imaging_consent.provenance.merkle import verify_proof
from imaging_consent.server.flusher import IndexFollower
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
        proven = [indexer.prove(e) for e in found]
        forged = replace(found[1], kind="granted")  # a refusal passed off as a release
        wrong_root = replace(found[0], batch_root=bytes(32))
        refused = [indexer.prove(forged), indexer.prove(wrong_root)]
    gateway.close()

    assert before.batched == 0 and after.batched == 2 and batch.final
    assert proven == [True, True] and refused == [False, False]
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


class _Webhook:
    """A loopback HTTP endpoint that answers 503 to the first ``failures`` POSTs, then 204."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.received.append((self.headers["Idempotency-Key"], body))
                failing = len(outer.received) <= outer.failures
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _break_glass(world: World) -> str:
    people = world.people
    signed = sign_break_glass(people.doctor, world.suite, people.site.address,
                              world.study_key(), b"\x09" * 32, request_id=b"\x07" * 32)  # fmt: skip
    receipt = sender_for(world.chain.session, people.gateway).transact(
        world.suite.access_log.functions.recordBreakGlass(
            world.study_key(), people.doctor.address, signed.request_id,
            signed.reason_commitment, signed.deadline, signed.signature,
        )
    )  # fmt: skip
    return str(receipt.tx_hash)


def test_break_glass_webhook_retries_then_delivers_once(world: World) -> None:
    tx_hash = _break_glass(world)
    hook = _Webhook(failures=2)
    waits: list[float] = []
    try:
        with world.indexer(confirmations=0) as indexer:
            indexer.sync()
            notifier = BreakGlassNotifier(indexer.index, hook.url, sleep=waits.append)
            first = notifier.deliver()
            second = notifier.deliver()
    finally:
        hook.close()

    assert (first.delivered, first.pending) == (1, 0) and (second.delivered, second.pending) == (
        0,
        0,
    )
    assert len(hook.received) == 3 and waits == [0.5, 1.0]
    keys = {key for key, _ in hook.received}
    assert len(keys) == 1 and keys.pop().startswith(tx_hash + ":")
    body = hook.received[-1][1]
    assert body["type"] == "break_glass" and body["clinician"] == world.people.doctor.address
    assert body["patient"] == world.people.patient.address and body["tx_hash"] == tx_hash


def test_break_glass_webhook_down_keeps_it_pending_until_it_is_back(world: World) -> None:
    _break_glass(world)
    hook = _Webhook(failures=0)
    url = hook.url
    hook.close()  # nobody listens there now
    with world.indexer(confirmations=0) as indexer:
        indexer.sync()
        down = BreakGlassNotifier(indexer.index, url, attempts=2, sleep=lambda _s: None).deliver()
        back = _Webhook(failures=0)
        try:
            later = BreakGlassNotifier(indexer.index, back.url, sleep=lambda _s: None).deliver()
        finally:
            back.close()

    assert (down.delivered, down.pending) == (0, 1)
    assert (later.delivered, later.pending) == (1, 0) and len(back.received) == 1


def test_break_glass_webhook_must_be_https_off_loopback(world: World) -> None:
    with world.indexer() as indexer:
        with pytest.raises(errors.WebhookError, match="plain http"):
            BreakGlassNotifier(indexer.index, "http://alerts.example/hook")
        with pytest.raises(errors.WebhookError, match="http"):
            BreakGlassNotifier(indexer.index, "ftp://alerts.example/hook")


def test_follower_keeps_the_index_up_and_imports_the_gateways_batches(world: World) -> None:
    people = world.people
    gateway = world.gateway(log_mode=LogMode.BATCHED, confirmations=0)
    with world.indexer(confirmations=0, outboxes=[gateway.outbox]) as indexer:
        follower = IndexFollower(indexer, 0.1)
        follower.start()
        try:
            gateway.release(CT_STUDY, people.requester.address, "TREAT")
            gateway.flush()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                found = indexer.index.accesses(patient=people.patient.address)
                if found:
                    break
                time.sleep(0.1)
        finally:
            follower.stop()
    gateway.close()

    assert [(e.kind, e.batched) for e in found] == [("granted", True)]


def _accesses_in_several_blocks(world: World, count: int) -> None:
    gateway = world.gateway(confirmations=0)
    for _ in range(count):
        gateway.release(CT_STUDY, world.people.requester.address, "TREAT")
        world.chain.mine(2)
    gateway.close()


def test_a_node_that_refuses_wide_log_ranges_is_read_in_smaller_pages(world: World) -> None:
    _accesses_in_several_blocks(world, 4)
    with CountingProxy(world.chain.rpc_url, max_log_blocks=3) as proxy:
        limited = load(connect(proxy.url, world.chain.chain_id), world.suite.manifest)
        with Indexer.open(limited, f"sqlite:///{world.work / 'limited.sqlite3'}",
                          confirmations=0) as indexer:  # fmt: skip
            indexer.sync()
            found = indexer.index.accesses(patient=world.people.patient.address)

    assert proxy.refused >= 1
    assert [e.kind for e in found] == ["granted"] * 4


def test_a_node_gone_mid_sync_leaves_whole_pages_and_the_next_sync_resumes(world: World) -> None:
    _accesses_in_several_blocks(world, 4)
    url = f"sqlite:///{world.work / 'resume.sqlite3'}"
    pages: list[int] = []
    proxy = CountingProxy(world.chain.rpc_url)
    with proxy:
        flaky = load(connect(proxy.url, world.chain.chain_id), world.suite.manifest)

        def node_goes_away(done: int, total: int, events: int) -> None:
            pages.append(done)
            if len(pages) == 2:
                proxy.upstream = "http://127.0.0.1:9"  # the node stops answering

        with Indexer.open(flaky, url, confirmations=0, page=3) as indexer:
            with pytest.raises(errors.ChainUnavailableError):
                indexer.sync(progress=node_goes_away)
            stopped_at = indexer.index.deployment().cursor
            partial = indexer.index.accesses(patient=world.people.patient.address)
    with world.indexer("resume.sqlite3", confirmations=0) as indexer:
        indexer.sync()
        resumed = indexer.index.accesses(patient=world.people.patient.address)
    direct = world.suite.access_log.events.AccessGranted().get_logs(from_block=0)

    assert stopped_at == world.suite.manifest.block_number - 1 + pages[-1]
    assert all(e.block_number <= stopped_at for e in partial)
    expected = [log for log in direct if log["blockNumber"] <= stopped_at]
    assert len(partial) == len(expected)  # every whole page, nothing of the next
    assert len(resumed) == len(direct) == 4


def test_progress_is_reported_page_by_page(world: World) -> None:
    _accesses_in_several_blocks(world, 2)
    seen: list[tuple[int, int, int]] = []
    with world.indexer(confirmations=0, page=2) as indexer:
        result = indexer.sync(progress=lambda *report: seen.append(report))

    done = [d for d, _, _ in seen]
    assert len(seen) >= 3 and done == sorted(done)
    assert seen[-1][0] == seen[-1][1] == result.cursor - result.first + 1
    assert seen[-1][2] == result.events


def test_sliced_decoding_matches_eth_abi_on_every_event(world: World) -> None:
    gateway = world.gateway(log_mode=LogMode.BATCHED, confirmations=0)
    gateway.release(CT_STUDY, world.people.requester.address, "TREAT")
    gateway.flush()
    gateway.close()
    _break_glass(world)
    suite = world.suite
    decoders = decoders_for(
        {
            "ConsentRegistry": suite.consent.address,
            "StudyRegistry": suite.studies.address,
            "AccessLog": suite.access_log.address,
        }
    )
    addresses = [suite.consent.address, suite.studies.address, suite.access_log.address]
    logs = [log for _, _, page in log_pages(suite.session, addresses, None, 0) for log in page]
    names = set()
    for log in logs:
        decoder = decoders[(log["address"].lower(), log["topics"][0].lower())]
        assert decoder.sliced
        assert decoder.decode(log) == replace(decoder, sliced=False).decode(log)
        names.add(decoder.name)

    assert {"StudyRegistered", "ConsentGranted", "BatchAnchored", "BreakGlassAccess"} <= names
    broken = {**logs[-1], "data": logs[-1]["data"][:-2]}
    decoder = decoders[(broken["address"].lower(), broken["topics"][0].lower())]
    with pytest.raises(ValueError, match="wrong length"):
        decoder.decode(broken)
