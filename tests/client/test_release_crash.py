"""The batched outbox survives a crash: a child process is SIGKILLed mid-way, a new gateway flushes.

Every record is anchored exactly once, whichever step the crash interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from release_samples import CT_STUDY, Actors, actors, build_ct_study, grant

from imaging_consent.access_log import AccessRecord
from imaging_consent.chain import LocalChain
from imaging_consent.contracts.deployment import Suite, appoint, deploy, sender_for
from imaging_consent.contracts.manifest import manifest_path
from imaging_consent.dicom import SitePepper
from imaging_consent.gateway import ImageGateway, LogMode
from imaging_consent.provenance import register_study
from imaging_consent.stores import FolderStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PEPPER_HEX = "11" * 32
PEPPER = SitePepper.from_hex(PEPPER_HEX)

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from eth_account import Account
    from imaging_consent.chain import connect
    from imaging_consent.contracts.deployment import load, sender_for
    from imaging_consent.dicom import SitePepper
    from imaging_consent.gateway import ImageGateway, LogMode
    from imaging_consent.stores import FolderStore

    a = json.loads(sys.argv[1])
    session = connect(a["rpc"], a["chain_id"])
    suite = load(session, a["manifest"])
    sender = sender_for(session, Account.from_key(a["key"]))
    gateway = ImageGateway(
        suite, sender, FolderStore(a["store"], refresh=False), SitePepper.from_hex(a["pepper"]),
        log_mode=LogMode.BATCHED, outbox_path=Path(a["outbox"]),
    )
    release = gateway.release(a["study"], a["requester"], "TREAT")
    print(json.dumps({"request_id": release.request_id.hex()}), flush=True)
    if a["mode"] in ("seal", "seal_anchor"):
        batch = gateway.outbox.seal()
        if a["mode"] == "seal_anchor":
            sender.transact(
                suite.access_log.functions.anchorBatch(batch.root, batch.count, batch.batch_id)
            )
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.fixture(scope="module")
def ganache() -> Iterator[LocalChain]:
    with LocalChain("ganache") as chain:
        yield chain


@pytest.fixture(scope="module")
def people(ganache: LocalChain) -> Actors:
    return actors(ganache)


@pytest.fixture(scope="module")
def deployed(
    ganache: LocalChain, people: Actors, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Suite, Path]:
    out = tmp_path_factory.mktemp("deployments")
    suite = deploy(
        ganache.session,
        sender_for(ganache.session, people.admin),
        sites=[people.site.address],
        out_dir=out,
    )
    appoint(
        suite.access_log,
        sender_for(ganache.session, people.site),
        gateways=[people.gateway.address],
    )
    return suite, manifest_path(out, ganache.chain_id)


@pytest.fixture(scope="module")
def store(
    ganache: LocalChain,
    people: Actors,
    deployed: tuple[Suite, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> FolderStore:
    suite, _ = deployed
    store = FolderStore(build_ct_study(tmp_path_factory.mktemp("ct"), 2))
    session = ganache.session
    register_study(
        suite, sender_for(session, people.site), store, PEPPER, CT_STUDY, people.patient.address
    )
    grant(suite, sender_for(session, people.patient), people.requester.address)
    return store


def _crash(
    ganache: LocalChain, people: Actors, manifest: Path, store: FolderStore, outbox: Path, mode: str
) -> bytes:
    args = {
        "rpc": ganache.rpc_url,
        "chain_id": ganache.chain_id,
        "manifest": str(manifest),
        "key": people.gateway.key.hex(),
        "pepper": PEPPER_HEX,
        "store": str(store.root),
        "outbox": str(outbox),
        "study": CT_STUDY,
        "requester": people.requester.address,
        "mode": mode,
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    return bytes.fromhex(json.loads(child.stdout.splitlines()[0])["request_id"])


def _anchors(suite: Suite) -> list[Any]:
    return list(suite.access_log.events.BatchAnchored().get_logs(from_block=0))


@pytest.mark.parametrize("mode", ["release", "seal", "seal_anchor"])
def test_outbox_survives_sigkill(
    ganache: LocalChain,
    people: Actors,
    deployed: tuple[Suite, Path],
    store: FolderStore,
    tmp_path: Path,
    mode: str,
) -> None:
    suite, manifest = deployed
    outbox = tmp_path / "outbox.sqlite3"
    before = len(_anchors(suite))
    request_id = _crash(ganache, people, manifest, store, outbox, mode)
    anchored_by_child = len(_anchors(suite)) - before
    gateway = ImageGateway(
        suite,
        sender_for(ganache.session, people.gateway),
        store,
        PEPPER,
        log_mode=LogMode.BATCHED,
        outbox_path=outbox,
    )
    nonce = ganache.session.w3.eth.get_transaction_count(people.gateway.address)

    flushed = gateway.flush()
    again = gateway.flush()

    assert anchored_by_child == (1 if mode == "seal_anchor" else 0)
    assert again == []
    sent = ganache.session.w3.eth.get_transaction_count(people.gateway.address) - nonce
    assert sent == (0 if mode == "seal_anchor" else 1)  # never anchored twice
    new = _anchors(suite)[before:]
    assert len(new) == 1 and len(flushed) == 1
    assert new[0]["args"]["batchId"] == flushed[0].batch_id
    assert bytes(new[0]["transactionHash"]) == flushed[0].tx_hash
    found = gateway.outbox.batch_of(request_id)
    assert found is not None
    batch, proof = found
    (entry,) = [e for e in gateway.outbox.entries() if e.request_id == request_id]  # type: ignore[union-attr]
    record = AccessRecord.from_json(entry.record).as_tuple()
    assert suite.access_log.functions.verifyRecord(
        batch.root, people.gateway.address, record, proof
    ).call()
    assert batch.root == new[0]["args"]["root"] and batch.count == 1
    gateway.close()
