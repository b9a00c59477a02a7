"""The batched outbox survives a crash: a child process is SIGKILLed mid-way, a new gateway flushes.

Every record is anchored exactly once, whichever step the crash interrupted: after the release,
after sealing, after the anchor was mined, or (Anvil, automine off) after the anchor was sent and
before it was mined. Two processes flushing one outbox anchor each batch once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    if a["mode"] == "flush":
        print(json.dumps({"flushed": [b.batch_id.hex() for b in gateway.flush()]}), flush=True)
        sys.exit(0)
    release = gateway.release(a["study"], a["requester"], "TREAT")
    print(json.dumps({"request_id": release.request_id.hex()}), flush=True)
    if a["mode"] == "flush_unmined":
        gateway.flush()  # automine is off: the anchor is sent, then this process is killed
    if a["mode"] in ("seal", "seal_anchor"):
        batch = gateway.outbox.seal()
        if a["mode"] == "seal_anchor":
            sender.transact(
                suite.access_log.functions.anchorBatch(batch.root, batch.count, batch.batch_id)
            )
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@dataclass(frozen=True)
class Site:
    """A deployed suite with a registered, granted study, on one chain."""

    chain: LocalChain
    people: Actors
    suite: Suite
    manifest: Path
    store: FolderStore


def _site(chain: LocalChain, tmp_path_factory: pytest.TempPathFactory) -> Site:
    people = actors(chain)
    out = tmp_path_factory.mktemp("deployments")
    session = chain.session
    suite = deploy(
        session, sender_for(session, people.admin), sites=[people.site.address], out_dir=out
    )
    appoint(suite.access_log, sender_for(session, people.site), gateways=[people.gateway.address])
    store = FolderStore(build_ct_study(tmp_path_factory.mktemp("ct"), 2))
    register_study(
        suite, sender_for(session, people.site), store, PEPPER, CT_STUDY, people.patient.address
    )
    grant(suite, sender_for(session, people.patient), people.requester.address)
    return Site(chain, people, suite, manifest_path(out, chain.chain_id), store)


@pytest.fixture(scope="module")
def ganache_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with LocalChain("ganache") as chain:
        yield _site(chain, tmp_path_factory)


@pytest.fixture(scope="module")
def anvil_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with LocalChain("anvil") as chain:
        yield _site(chain, tmp_path_factory)


def _child_args(site: Site, outbox: Path, mode: str) -> list[str]:
    args = {
        "rpc": site.chain.rpc_url,
        "chain_id": site.chain.chain_id,
        "manifest": str(site.manifest),
        "key": site.people.gateway.key.hex(),
        "pepper": PEPPER_HEX,
        "store": str(site.store.root),
        "outbox": str(outbox),
        "study": CT_STUDY,
        "requester": site.people.requester.address,
        "mode": mode,
    }
    return [sys.executable, "-c", CHILD, json.dumps(args)]


_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _crash(site: Site, outbox: Path, mode: str) -> bytes:
    child = subprocess.run(
        _child_args(site, outbox, mode), capture_output=True, text=True, timeout=120, env=_ENV
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    return bytes.fromhex(json.loads(child.stdout.splitlines()[0])["request_id"])


def _gateway(site: Site, outbox: Path) -> ImageGateway:
    sender = sender_for(site.chain.session, site.people.gateway)
    return ImageGateway(
        site.suite, sender, site.store, PEPPER, log_mode=LogMode.BATCHED, outbox_path=outbox
    )


def _pool(chain: LocalChain) -> list[dict[str, Any]]:
    pending = chain.rpc("txpool_content")["pending"]
    return [tx for by_nonce in pending.values() for tx in by_nonce.values()]


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _anchors(suite: Suite) -> list[Any]:
    return list(suite.access_log.events.BatchAnchored().get_logs(from_block=0))


@pytest.mark.parametrize("mode", ["release", "seal", "seal_anchor"])
def test_outbox_survives_sigkill(ganache_site: Site, tmp_path: Path, mode: str) -> None:
    site, suite, people = ganache_site, ganache_site.suite, ganache_site.people
    outbox = tmp_path / "outbox.sqlite3"
    before = len(_anchors(suite))
    request_id = _crash(site, outbox, mode)
    anchored_by_child = len(_anchors(suite)) - before
    gateway = _gateway(site, outbox)
    nonce = site.chain.session.w3.eth.get_transaction_count(people.gateway.address)

    flushed = gateway.flush()
    again = gateway.flush()

    assert anchored_by_child == (1 if mode == "seal_anchor" else 0)
    assert again == []
    sent = site.chain.session.w3.eth.get_transaction_count(people.gateway.address) - nonce
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


@pytest.mark.parametrize("dropped", [False, True], ids=["still-pending", "dropped-from-pool"])
def test_killed_between_send_and_mine_anchors_once(
    anvil_site: Site, tmp_path: Path, dropped: bool
) -> None:
    site, chain = anvil_site, anvil_site.chain
    outbox = tmp_path / "outbox.sqlite3"
    snapshot = chain.snapshot()
    chain.rpc("evm_setAutomine", False)
    try:
        child = subprocess.Popen(
            _child_args(site, outbox, "flush_unmined"), stdout=subprocess.PIPE, env=_ENV
        )
        _wait_for(lambda: len(_pool(chain)) == 1)  # the anchor, sent and not mined
        child.kill()
        child.wait(timeout=30)
        (sent,) = _pool(chain)
        gateway = _gateway(site, outbox)
        if dropped:
            chain.rpc("anvil_dropTransaction", sent["hash"])
            chain.rpc("evm_setAutomine", True)
        else:
            assert gateway.flush() == []  # still pending: looked up, not sent again
            chain.rpc("evm_setAutomine", True)
            chain.mine(1)

        (batch,) = gateway.flush()  # dropped: the stored signed bytes, broadcast again
        assert gateway.flush() == [] and batch.final and gateway.outbox.pending_count() == 0
        (anchor,) = [a for a in _anchors(site.suite) if a["args"]["batchId"] == batch.batch_id]
        assert len(_anchors(site.suite)) == 1
        assert "0x" + bytes(anchor["transactionHash"]).hex() == sent["hash"]  # the same bytes
        gateway.close()
    finally:
        chain.rpc("evm_setAutomine", True)
        chain.revert(snapshot)


def test_two_processes_flushing_one_outbox_anchor_once(anvil_site: Site, tmp_path: Path) -> None:
    site, chain = anvil_site, anvil_site.chain
    outbox = tmp_path / "outbox.sqlite3"
    snapshot = chain.snapshot()
    gateway = _gateway(site, outbox)
    for _ in range(3):
        gateway.release(CT_STUDY, site.people.requester.address, "TREAT")
    chain.rpc("evm_setAutomine", False)  # the first anchor stays pending while both flush
    try:
        children = [
            subprocess.Popen(
                _child_args(site, outbox, "flush"), stdout=subprocess.PIPE, text=True, env=_ENV
            )
            for _ in range(2)
        ]
        _wait_for(lambda: len(_pool(chain)) >= 1)
        time.sleep(1.0)  # room for the other process to send a second anchor, if it could
        in_pool = len(_pool(chain))
        chain.rpc("evm_setAutomine", True)
        chain.mine(1)
        outputs = [json.loads(c.communicate(timeout=60)[0].splitlines()[-1]) for c in children]

        assert in_pool == 1
        assert sorted(len(o["flushed"]) for o in outputs) == [0, 1]
        assert len(_anchors(site.suite)) == 1
        assert gateway.flush() == [] and gateway.outbox.pending_count() == 0
        gateway.close()
    finally:
        chain.rpc("evm_setAutomine", True)
        chain.revert(snapshot)
