"""Faults in the middle of a release, on real Anvil chains: each ends in a typed error, nothing
released, and every decision in the outbox or on chain, never lost.

- The chain process stops while the study is read (after the consent check), then comes back
  from its dumped state (``anvil --state``).
- The RPC answers later than the client's timeout (the loopback proxy delays every request).
- The outbox's disk is full (a tiny tmpfs mounted here as root; where mounting is not
  permitted, RLIMIT_FSIZE in a child process, which also runs every time).
- Two gateways (two objects, then two processes) release concurrently with one key.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from release_samples import CT_STUDY, Actors, actors, build_ct_study, grant

from bench.proxy import CountingProxy
from imaging_consent import errors
from imaging_consent.access_log import AccessRecord
from imaging_consent.chain import LocalChain, TransactionSender, connect
from imaging_consent.chain.session import ChainSession
from imaging_consent.contracts.access_log import AccessLog
from imaging_consent.contracts.consent_registry import ConsentRegistry
from imaging_consent.contracts.deployment import Suite, appoint, deploy, sender_for
from imaging_consent.contracts.manifest import manifest_path
from imaging_consent.contracts.revert import decode_revert
from imaging_consent.contracts.study_registry import StudyRegistry
from imaging_consent.dicom import SitePepper
from imaging_consent.dicom.read import InstanceRecord
from imaging_consent.gateway import ImageGateway, LogMode
from imaging_consent.provenance import register_study
from imaging_consent.stores import FolderStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PEPPER_HEX = "22" * 32
PEPPER = SitePepper.from_hex(PEPPER_HEX)
SECRET = "k3y-d0-n0t-l34k"  # an API key in the endpoint's path, as hosted endpoints have
MODES = pytest.mark.parametrize("mode", list(LogMode), ids=[m.value for m in LogMode])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _StatefulAnvil(LocalChain):
    """Anvil on a fixed port that dumps its state when stopped and loads it when started."""

    def __init__(self, state: Path) -> None:
        super().__init__("anvil", port=_free_port())
        self.state = state

    def _command(self, binary: Path, port: int) -> list[str]:
        return [*super()._command(binary, port), "--state", str(self.state)]


class _Tripwire:
    """A store that runs ``trip`` once, as the release opens its first instance (the consent
    check has said yes by then), then serves the real bytes."""

    def __init__(self, inner: FolderStore) -> None:
        self.inner = inner
        self._trip: Callable[[], None] | None = None

    def arm(self, trip: Callable[[], None]) -> None:
        self._trip = trip

    def studies(self) -> list[str]:
        return self.inner.studies()

    def instances(self, study: str, series: str | None = None) -> list[InstanceRecord]:
        return self.inner.instances(study, series)

    def instance(self, sop_instance_uid: str) -> InstanceRecord:
        return self.inner.instance(sop_instance_uid)

    def open(self, sop_instance_uid: str) -> AbstractContextManager[BinaryIO]:
        trip, self._trip = self._trip, None
        if trip is not None:
            trip()
        return self.inner.open(sop_instance_uid)


@dataclass(frozen=True)
class Site:
    """A deployed suite, the CT study (one CT_small instance) registered and granted."""

    chain: LocalChain
    people: Actors
    suite: Suite
    store: FolderStore
    manifest: Path

    def gateway(self, mode: LogMode, outbox: Path, **kwargs: Any) -> ImageGateway:
        session = kwargs.pop("session", self.chain.session)
        suite = kwargs.pop("suite", self.suite)
        store = kwargs.pop("store", self.store)
        sender = kwargs.pop("sender", None) or sender_for(session, self.people.gateway)
        return ImageGateway(
            suite,
            sender,
            store,
            PEPPER,
            log_mode=mode,
            outbox_path=outbox,
            **kwargs,
        )

    def logs(self, event: str) -> list[Any]:
        return list(getattr(self.suite.access_log.events, event)().get_logs(from_block=0))

    def nonce(self) -> int:
        return int(self.chain.session.w3.eth.get_transaction_count(self.people.gateway.address))

    def pool(self) -> int:
        pending = self.chain.rpc("txpool_content")["pending"]
        return sum(len(by_nonce) for by_nonce in pending.values())


def make_site(chain: LocalChain, root: Path) -> Site:
    people, session = actors(chain), chain.session
    out = root / "deployments"
    suite = deploy(
        session, sender_for(session, people.admin), sites=[people.site.address], out_dir=out
    )
    appoint(suite.access_log, sender_for(session, people.site), gateways=[people.gateway.address])
    store = FolderStore(build_ct_study(root / "ct", 1))
    register_study(
        suite, sender_for(session, people.site), store, PEPPER, CT_STUDY, people.patient.address
    )
    grant(suite, sender_for(session, people.patient), people.requester.address)
    return Site(chain, people, suite, store, manifest_path(out, chain.chain_id))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with LocalChain("anvil") as chain:
        yield make_site(chain, tmp_path_factory.mktemp("site"))


@pytest.fixture
def clean(site: Site) -> Iterator[Site]:
    snapshot = site.chain.snapshot()
    yield site
    site.chain.revert(snapshot)


def _only_refusal(gateway: ImageGateway, reason: str) -> bytes:
    """The outbox's one refusal not in a batch: ``reason``, waiting for the next batch."""
    (entry,) = [e for e in gateway.outbox.entries() if e.batch_id is None and e.reason]
    record = AccessRecord.from_json(entry.record)
    assert not record.permitted and not record.identified
    assert entry.reason == reason and not entry.direct
    return entry.request_id


def _anchored_once(site: Site, gateway: ImageGateway, request_ids: list[bytes]) -> None:
    """Every request id is in one anchored batch, provable on chain, and nothing is open."""
    log = site.suite.access_log.functions
    entries = {e.request_id: e for e in gateway.outbox.entries()}
    for request_id in request_ids:
        found = gateway.outbox.batch_of(request_id)
        assert found is not None
        batch, proof = found
        assert batch.final and batch.tx_hash is not None
        record = AccessRecord.from_json(entries[request_id].record).as_tuple()
        assert log.verifyRecord(batch.root, site.people.gateway.address, record, proof).call()
    assert gateway.flush() == [] and gateway.outbox.pending_count() == 0


# --- 1. the chain dies in the middle of a release ---------------------------------------------


@MODES
def test_chain_killed_while_study_read(tmp_path: Path, mode: LogMode) -> None:
    with _StatefulAnvil(tmp_path / "anvil-state.json") as chain:
        site = make_site(chain, tmp_path)
        store = _Tripwire(site.store)
        gateway = site.gateway(mode, tmp_path / "outbox.sqlite3", store=store)
        before = gateway.release(CT_STUDY, site.people.requester.address, "TREAT")
        nonce = site.nonce()
        out = tmp_path / "out"
        store.arm(chain.stop)

        with pytest.raises(errors.ChainUnavailableError) as failed:
            gateway.release(CT_STUDY, site.people.requester.address, "TREAT", destination=out)

        assert not chain.running
        assert f"127.0.0.1:{chain._requested_port}" in str(failed.value)
        assert list(out.iterdir()) == []  # no file, no staging folder
        refused = _only_refusal(gateway, "ChainUnavailableError")
        with pytest.raises(errors.ChainUnavailableError):
            gateway.flush()  # still down: the records stay in the outbox
        waiting = gateway.outbox.pending_count()

        chain.start()  # the same port, the state dumped at the stop
        (batch,) = gateway.flush()

        released = [before.request_id] if mode is LogMode.BATCHED else []
        assert waiting == batch.count == len(released) + 1
        _anchored_once(site, gateway, [*released, refused])
        granted = {bytes(e["args"]["requestId"]) for e in site.logs("AccessGranted")}
        assert granted == ({before.request_id} if mode is LogMode.SYNC else set())
        assert len(site.logs("BatchAnchored")) == 1
        assert site.nonce() == nonce + 1  # the anchor only: the failed record was never sent
        gateway.close()


# --- 2. a slow RPC -----------------------------------------------------------------------------


def _through(suite: Suite, session: ChainSession) -> Suite:
    return replace(
        suite,
        session=session,
        consent=ConsentRegistry(session, suite.consent.address),
        studies=StudyRegistry(session, suite.studies.address),
        access_log=AccessLog(session, suite.access_log.address),
    )


@MODES
def test_slow_rpc_times_out_naming_the_endpoint(clean: Site, tmp_path: Path, mode: LogMode) -> None:
    site = clean
    with CountingProxy(site.chain.rpc_url) as proxy:
        session = connect(f"{proxy.url}/v3/{SECRET}", site.chain.chain_id, timeout=0.5, retries=1)
        store = _Tripwire(site.store)
        gateway = site.gateway(
            mode,
            tmp_path / "outbox.sqlite3",
            session=session,
            suite=_through(site.suite, session),
            store=store,
        )
        nonce, out = site.nonce(), tmp_path / "out"
        timings = []
        for when in ("before the consent check", "while the study is read"):
            if when == "before the consent check":
                proxy.delay = 2.0
            else:
                store.arm(lambda: setattr(proxy, "delay", 2.0))
            started = time.monotonic()
            with pytest.raises(errors.ChainUnavailableError) as slow:
                gateway.release(CT_STUDY, site.people.requester.address, "TREAT", destination=out)
            timings.append(time.monotonic() - started)
            proxy.delay = 0.0
            message = str(slow.value)
            assert f"127.0.0.1:{proxy.url.rsplit(':', 1)[1]}" in message, message
            assert SECRET not in message and "Timeout" in message, message
            assert not out.exists() or list(out.iterdir()) == []
            if when == "before the consent check":
                assert gateway.outbox.entries() == []  # nothing decided, nothing to record

        assert max(timings) < 6.0, timings
        refused = _only_refusal(gateway, "ChainUnavailableError")
        (batch,) = gateway.flush()
        assert batch.count == 1
        _anchored_once(site, gateway, [refused])
        assert site.logs("AccessGranted") == [] and site.nonce() == nonce + 1
        gateway.close()


# --- 3. a full disk under the outbox ----------------------------------------------------------


def _mount_tmpfs(where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@contextmanager
def _tiny_tmpfs(where: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs at ``where``, unmounted when the block ends."""
    assert _mount_tmpfs(where)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def _fill(folder: Path) -> Path:
    """Write a filler file into ``folder`` until its file system says it is full."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _can_mount(tmp_path: Path) -> bool:
    probe = tmp_path / "probe-mount"
    if not _mount_tmpfs(probe):
        return False
    subprocess.run(["umount", str(probe)], check=True)
    return True


FULL_DISK_CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    from eth_account import Account
    from imaging_consent.chain import connect
    from imaging_consent.contracts.deployment import load, sender_for
    from imaging_consent.dicom import SitePepper
    from imaging_consent.gateway import ImageGateway
    from imaging_consent.stores import FolderStore

    a = json.loads(sys.argv[1])
    session = connect(a["rpc"], a["chain_id"])
    outbox = Path(a["outbox"])
    gateway = ImageGateway(
        load(session, a["manifest"]), sender_for(session, Account.from_key(a["key"])),
        FolderStore(a["store"], refresh=False), SitePepper.from_hex(a["pepper"]),
        log_mode=a["mode"], outbox_path=outbox,
    )
    # No file of this process may grow past the outbox's largest file: the WAL is full.
    sizes = [p.stat().st_size for p in outbox.parent.glob(outbox.name + "*")]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max(sizes), resource.RLIM_INFINITY))
    try:
        gateway.release(a["study"], a["requester"], "TREAT")
        outcome = "released"
    except Exception as exc:
        outcome = type(exc).__name__
    print(json.dumps({"outcome": outcome, "records": len(gateway.outbox.entries())}), flush=True)
    """
)


def _full_disk_child(site: Site, outbox: Path, mode: LogMode) -> dict[str, Any]:
    """Release once in a child process whose files cannot grow (RLIMIT_FSIZE)."""
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
        "mode": mode.value,
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    outcome: dict[str, Any] = json.loads(child.stdout.splitlines()[-1])
    return outcome


@MODES
def test_full_disk_rlimit_child_refuses(clean: Site, tmp_path: Path, mode: LogMode) -> None:
    """The fallback where mounting is not permitted; it runs everywhere, so it stays honest."""
    site, nonce = clean, clean.nonce()

    outcome = _full_disk_child(site, tmp_path / "outbox.sqlite3", mode)

    assert outcome == {"outcome": "ReleaseError", "records": 0}
    assert site.logs("AccessGranted") == [] and site.nonce() == nonce  # nothing sent


@MODES
def test_full_disk_refuses_release(
    clean: Site, tmp_path: Path, mode: LogMode, caplog: pytest.LogCaptureFixture
) -> None:
    site, nonce = clean, clean.nonce()
    if not _can_mount(tmp_path):
        assert os.environ.get("CI") != "true" or os.geteuid() != 0, "CI runs as root: mount"
        logging.getLogger(__name__).warning("cannot mount a tmpfs: RLIMIT_FSIZE child instead")
        outcome = _full_disk_child(site, tmp_path / "outbox.sqlite3", mode)
        assert outcome == {"outcome": "ReleaseError", "records": 0}
        return
    with _tiny_tmpfs(tmp_path / "disk") as disk:
        gateway = site.gateway(mode, disk / "outbox.sqlite3")
        try:
            out = tmp_path / "out"
            filler = _fill(disk)

            with pytest.raises(errors.ReleaseError, match="outbox"):
                gateway.release(CT_STUDY, site.people.requester.address, "TREAT", destination=out)
            assert list(out.iterdir()) == [] and gateway.outbox.entries() == []
            assert site.logs("AccessGranted") == [] and site.nonce() == nonce  # nothing sent

            # A refusal that cannot be stored: the caller's error is not masked, ERROR logged.
            with caplog.at_level(logging.ERROR), pytest.raises(errors.UnknownStudyError):
                gateway.release(CT_STUDY, site.people.requester.address, "TREAT", series_uid="9.9")
            assert any(
                r.levelno == logging.ERROR and "could not store the refusal" in r.getMessage()
                for r in caplog.records
            )
            # A consent refusal that cannot be stored is a ReleaseError (nothing released).
            with pytest.raises(errors.ReleaseError):
                gateway.release(CT_STUDY, site.people.stranger.address, "TREAT")
            assert gateway.outbox.entries() == [] and site.nonce() == nonce

            filler.unlink()  # room again: the next release goes through and is recorded
            release = gateway.release(CT_STUDY, site.people.requester.address, "TREAT")
            gateway.flush()
            assert gateway.outbox.pending_count() == 0
            recorded = [e.request_id for e in gateway.outbox.entries()]
            assert recorded == [release.request_id]
        finally:
            gateway.close()


# --- 4. two gateways, one key ------------------------------------------------------------------

#: A transaction not mined within this many seconds is replaced; a replacement that finds its
#: nonce taken by the other gateway's transaction sends it anew (sooner than the 30 s default).
REPLACE_AFTER = 2.0


def _release_many(gateway: ImageGateway, requester: str, count: int, threads: int) -> list[bytes]:
    """``count`` releases from ``threads`` threads; their request ids (raises the first error)."""
    ids: list[bytes] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for _ in range(n):
            try:
                release = gateway.release(CT_STUDY, requester, "TREAT")
            except Exception as exc:
                with lock:
                    failures.append(exc)
                continue
            with lock:
                ids.append(release.request_id)

    shares = [count // threads + (i < count % threads) for i in range(threads)]
    workers = [threading.Thread(target=work, args=(n,)) for n in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]
    return ids


def _recorded_once(site: Site, ids: list[bytes], nonce: int) -> None:
    granted = [bytes(e["args"]["requestId"]) for e in site.logs("AccessGranted")]
    assert sorted(granted) == sorted(ids) and len(set(ids)) == len(ids)
    assert site.nonce() == nonce + len(ids)  # one transaction per release, none reused
    assert site.pool() == 0  # none stuck


def test_two_gateway_objects_one_key(clean: Site, tmp_path: Path) -> None:
    site, nonce = clean, clean.nonce()
    gateways = [
        site.gateway(
            LogMode.SYNC,
            tmp_path / f"outbox-{i}.sqlite3",
            sender=TransactionSender(
                site.chain.session,
                site.people.gateway,
                error_decoder=decode_revert,
                replace_after=REPLACE_AFTER,
            ),
        )
        for i in range(2)
    ]
    results: list[list[bytes] | BaseException] = [[], []]

    def run(i: int) -> None:
        try:
            results[i] = _release_many(gateways[i], site.people.requester.address, 40, 4)
        except Exception as exc:
            results[i] = exc

    runners = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()

    ids = [i for r in results if isinstance(r, list) for i in r]
    assert [r if isinstance(r, BaseException) else len(r) for r in results] == [40, 40]
    _recorded_once(site, ids, nonce)
    for gateway in gateways:
        gateway.flush()
        assert gateway.outbox.pending_count() == 0
        gateway.close()


TWO_PROCESS_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from eth_account import Account
    from imaging_consent.chain import TransactionSender, connect
    from imaging_consent.contracts.deployment import load
    from imaging_consent.contracts.revert import decode_revert
    from imaging_consent.dicom import SitePepper
    from imaging_consent.gateway import ImageGateway
    from imaging_consent.stores import FolderStore
    sys.path.insert(0, sys.argv[2])
    from test_faults import REPLACE_AFTER, _release_many

    a = json.loads(sys.argv[1])
    session = connect(a["rpc"], a["chain_id"])
    sender = TransactionSender(
        session, Account.from_key(a["key"]), error_decoder=decode_revert,
        replace_after=REPLACE_AFTER,
    )
    gateway = ImageGateway(
        load(session, a["manifest"]), sender,
        FolderStore(a["store"], refresh=False), SitePepper.from_hex(a["pepper"]),
        outbox_path=Path(a["outbox"]),
    )
    ids = _release_many(gateway, a["requester"], a["count"], 4)
    print(json.dumps([i.hex() for i in ids]), flush=True)
    """
)


def test_two_gateway_processes_one_key(clean: Site, tmp_path: Path) -> None:
    site, nonce = clean, clean.nonce()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    children = []
    for i in range(2):
        args = {
            "rpc": site.chain.rpc_url,
            "chain_id": site.chain.chain_id,
            "manifest": str(site.manifest),
            "key": site.people.gateway.key.hex(),
            "pepper": PEPPER_HEX,
            "store": str(site.store.root),
            "outbox": str(tmp_path / f"outbox-{i}.sqlite3"),
            "requester": site.people.requester.address,
            "count": 40,
        }
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    TWO_PROCESS_CHILD,
                    json.dumps(args),
                    str(Path(__file__).parent),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    outputs = [child.communicate(timeout=300) for child in children]

    for child, (_out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-3000:]
    ids = [bytes.fromhex(h) for out, _err in outputs for h in json.loads(out.splitlines()[-1])]
    assert len(ids) == 80
    _recorded_once(site, ids, nonce)
