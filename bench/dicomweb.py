"""Section 5, the DICOMweb service: the gateway in front of a real Orthanc, measured against
Orthanc's own DICOMweb.

On Anvil, an Orthanc started like the tests' (``tests/client/orthanc_server.py``: loopback,
basic auth, the DICOMweb plugin) holds CT_small, uploaded through its REST API; the study is
registered from Orthanc and granted. Two services run in this process (uvicorn in a thread
each), one with batched logging (the outbox anchored on a timer) and one with sync logging,
each with its own gateway account. Then:

- **Retrieval**: WADO-RS ``retrieve_study`` of CT_small with ``dicomweb-client``, through each
  service and straight from Orthanc's ``/dicom-web``, interleaved round by round
  (:func:`bench.stats.time_interleaved`); p50s and the ratios gateway / Orthanc.
- **Concurrency**: 8 client threads, each with its own signed-in ``dicomweb-client``, retrieve
  through one service; releases per second. After the service stops (its outbox flushed),
  every request id a client received is found on chain exactly once: an ``AccessGranted``
  event (sync) or a record proved against an anchored batch root (batched), with no batch
  anchored twice.
- **Large study**: a ~150 MB series (:func:`bench.large_study.generate_series`) in a folder,
  served by ``imaging-consent serve`` in a child process; its peak resident memory grows during
  a warm retrieval (high-water mark reset first) by a multiple of the largest instance.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import requests
from dicomweb_client.api import DICOMwebClient
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from bench.common import CT_SMALL_STUDY, deploy_all, write_ct_small
from bench.large_study import STUDY_UID as LARGE_STUDY
from bench.large_study import generate_series
from bench.stats import summarize, time_interleaved

__all__ = ["run"]

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 8
RATIO_TARGET = 1.5
START_TIMEOUT = 60.0


def _orthanc_fixture() -> Any:
    """The tests' Orthanc starter (one configuration for tests and benchmarks)."""
    tests = str(ROOT / "tests" / "client")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import orthanc_server

    return orthanc_server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sign_in(base: str, chain_id: int, account: LocalAccount) -> str:
    """Sign in to the service at ``base`` with Sign-In with Ethereum; return the token."""
    from siwe.siwe import ISO8601Datetime, SiweMessage

    nonce = httpx.post(f"{base}/auth/nonce", timeout=10).json()["nonce"]
    now = datetime.now(tz=timezone.utc)
    message = SiweMessage(
        domain=base.removeprefix("http://"),
        address=account.address,
        uri=f"{base}/",
        version="1",
        chain_id=chain_id,
        issued_at=ISO8601Datetime.from_datetime(now),
        expiration_time=ISO8601Datetime.from_datetime(now + timedelta(minutes=10)),
        nonce=nonce,
    ).prepare_message()
    signature = account.sign_message(encode_defunct(text=message)).signature
    answer = httpx.post(
        f"{base}/auth/login",
        json={"message": message, "signature": "0x" + bytes(signature).hex()},
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def _session(auth: tuple[str, str] | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.auth = auth
    return session


@dataclass
class Service:
    """A service running in this process, and what its clients need."""

    base: str
    chain_id: int
    gateway: Any  # ImageGateway

    def client(self, account: LocalAccount, seen: list[str] | None = None) -> DICOMwebClient:
        """A signed-in ``dicomweb-client``; the request id of each response goes to ``seen``."""
        session = _session()
        session.headers["Authorization"] = f"Bearer {sign_in(self.base, self.chain_id, account)}"

        def keep(response: Any, *args: Any, **kwargs: Any) -> Any:
            if seen is not None and "X-Request-Id" in response.headers:
                seen.append(response.headers["X-Request-Id"])
            return response

        return DICOMwebClient(f"{self.base}/dicom-web", session=session, callback=keep)


@contextmanager
def _in_thread(gateway: Any, work: Path, chain_id: int) -> Iterator[Service]:
    """The app on a free loopback port in a uvicorn thread; stopped (and flushed) at the end."""
    import uvicorn

    from imaging_consent.server import ServerSettings, create_app

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(ServerSettings(public_url=base, work_dir=work), gateway)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the DICOMweb service did not start")
        time.sleep(0.02)
    try:
        yield Service(base, chain_id, gateway)
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def _concurrent(
    service: Service, account: LocalAccount, per_client: int
) -> tuple[float, list[str]]:
    """``CONCURRENCY`` threads retrieve CT_small ``per_client`` times each; rate and ids."""
    seen: list[str] = []
    clients = [service.client(account, seen) for _ in range(CONCURRENCY)]

    def work(client: DICOMwebClient) -> None:
        for _ in range(per_client):
            client.retrieve_study(CT_SMALL_STUDY)

    start = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(work, clients))
    elapsed = time.perf_counter() - start
    return len(seen) / elapsed, seen


def _records_on_chain(suite: Any, gateway: Any, ids: list[str], sync: bool) -> dict[str, Any]:
    """Each request id on chain exactly once: lost, duplicated and anchored-twice counts."""
    from imaging_consent.access_log import AccessRecord

    wanted = [bytes.fromhex(i.removeprefix("0x")) for i in ids]
    events = suite.access_log.events
    if sync:
        granted = [
            bytes(log["args"]["requestId"])
            for log in events.AccessGranted().get_logs(from_block=0)
            if log["args"]["gateway"] == gateway.address
        ]
        counts = {rid: granted.count(rid) for rid in wanted}
        return {
            "requests": len(wanted),
            "distinct": len(set(wanted)),
            "lost": sum(1 for c in counts.values() if c == 0),
            "duplicated": sum(1 for c in counts.values() if c > 1),
            "anchored_twice": 0,
        }
    anchors = [
        log
        for log in events.BatchAnchored().get_logs(from_block=0)
        if log["args"]["gateway"] == gateway.address
    ]
    batch_ids = [bytes(log["args"]["batchId"]) for log in anchors]
    roots = {bytes(log["args"]["root"]) for log in anchors}
    entries = {e.request_id: e for e in gateway.outbox.entries()}
    lost = 0
    for rid in wanted:
        found = gateway.outbox.batch_of(rid)
        if found is None or rid not in entries or found[0].root not in roots:
            lost += 1
            continue
        record = AccessRecord.from_json(entries[rid].record).as_tuple()
        if not suite.access_log.verify_record(found[0].root, gateway.address, record, found[1]):
            lost += 1
    anchored_records = sum(int(log["args"]["count"]) for log in anchors)
    return {
        "requests": len(wanted),
        "distinct": len(set(wanted)),
        "lost": lost,
        "duplicated": anchored_records - len(entries),
        "anchored_twice": len(batch_ids) - len(set(batch_ids)),
    }


@dataclass
class _Site:
    chain: Any
    deployed: Any
    pepper: Any
    gateways: dict[str, LocalAccount]


def _site(chain: Any, pepper_bytes: bytes) -> _Site:
    """The suite with two gateways (batched, sync) appointed by the site."""
    from imaging_consent.contracts.deployment import appoint
    from imaging_consent.dicom import SitePepper

    deployed = deploy_all(chain)
    second = chain.accounts[8]
    appoint(deployed.suite.access_log, deployed.site_sender, gateways=[second.address])
    gateways = {"batched": deployed.actors.gateway, "sync": second}
    return _Site(chain, deployed, SitePepper(pepper_bytes), gateways)


def _register_and_grant(site: _Site, store: Any, study: str) -> None:
    from imaging_consent.consent import ConsentClient, Purpose
    from imaging_consent.contracts.deployment import sender_for
    from imaging_consent.provenance import register_study

    people, suite = site.deployed.actors, site.deployed.suite
    register_study(
        suite, site.deployed.site_sender, store, site.pepper, study, people.patient.address
    )
    patient = sender_for(site.chain.session, people.patient)
    ConsentClient(suite, patient).grant(
        people.requester.address, None, [Purpose.TREAT], identified=True
    )


def _retrieval(
    site: _Site, orthanc: Any, work: Path, runs: int, warmup: int, per_client: int
) -> dict[str, Any]:
    """CT_small from Orthanc: through both services vs straight; then concurrency."""
    from imaging_consent.contracts.deployment import sender_for
    from imaging_consent.gateway import ImageGateway, LogMode

    work.mkdir(parents=True)
    write_ct_small(work / "ct")
    orthanc.upload(work / "ct" / "ct_small.dcm")
    store = orthanc.store()
    _register_and_grant(site, store, CT_SMALL_STUDY)
    suite, requester = site.deployed.suite, site.deployed.actors.requester
    gateways = {
        mode: ImageGateway(
            suite,
            sender_for(site.chain.session, account),
            store,
            site.pepper,
            log_mode=LogMode(mode),
            outbox_path=work / f"outbox-{mode}.sqlite3",
        )
        for mode, account in site.gateways.items()
    }
    direct = DICOMwebClient(
        orthanc.dicomweb_url, session=_session((orthanc.username, orthanc.password))
    )
    out: dict[str, Any] = {"concurrent_clients": CONCURRENCY}
    with (
        _in_thread(gateways["batched"], work / "batched", site.chain.chain_id) as batched,
        _in_thread(gateways["sync"], work / "sync", site.chain.chain_id) as sync,
    ):
        through = {"batched": batched.client(requester), "sync": sync.client(requester)}
        assert len(direct.retrieve_study(CT_SMALL_STUDY)) == 1
        timed = time_interleaved(
            {
                "orthanc": lambda: direct.retrieve_study(CT_SMALL_STUDY),
                "gateway_batched": lambda: through["batched"].retrieve_study(CT_SMALL_STUDY),
                "gateway_sync": lambda: through["sync"].retrieve_study(CT_SMALL_STUDY),
            },
            runs,
            warmup,
        )
        rates = {}
        ids: dict[str, list[str]] = {}
        for mode, service in (("batched", batched), ("sync", sync)):
            rates[mode], ids[mode] = _concurrent(service, requester, per_client)
    # Both services have stopped: the batched one flushed its outbox at shutdown.
    for name, samples in timed.items():
        out[name] = summarize(samples)
    orthanc_p50 = out["orthanc"]["p50_ms"]
    out["ratio_batched"] = round(out["gateway_batched"]["p50_ms"] / orthanc_p50, 2)
    out["ratio_sync"] = round(out["gateway_sync"]["p50_ms"] / orthanc_p50, 2)
    for mode, gateway in gateways.items():
        out[f"concurrent_releases_per_s_{mode}"] = round(rates[mode], 1)
        out[f"records_{mode}"] = _records_on_chain(suite, gateway, ids[mode], mode == "sync")
        gateway.close()
    out["records_ok"] = all(
        r["lost"] == r["duplicated"] == r["anchored_twice"] == 0 and r["distinct"] == r["requests"]
        for r in (out["records_batched"], out["records_sync"])
    )
    return out


# --- the large study, served by `imaging-consent serve` in a child process ---------------------


def _child_env(site: _Site, work: Path, manifest: Path) -> dict[str, str]:
    pepper_file = work / "site-pepper"
    pepper_file.write_text(site.pepper.reveal().hex())
    pepper_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGING_CONSENT_")}
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        HOME=str(work),
        XDG_CONFIG_HOME=str(work / ".config"),
        IMAGING_CONSENT_RPC_URL=site.chain.rpc_url,
        IMAGING_CONSENT_MANIFEST=str(manifest),
        IMAGING_CONSENT_SITE_PEPPER_FILE=str(pepper_file),
        IMAGING_CONSENT_PRIVATE_KEY="0x" + bytes(site.gateways["sync"].key).hex(),
    )
    return env


@contextmanager
def _serve_child(env: dict[str, str], folder: Path, work: Path) -> Iterator[tuple[int, str]]:
    """``imaging-consent serve --store FOLDER`` (sync) in a child; yields its pid and URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = work / "serve.err"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "imaging_consent", "serve", "--port", str(port),
             "--store", str(folder), "--work-dir", str(work / "serve")],
            env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT * 5  # it indexes the whole folder first
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{log.read_text()[-2000:]}")
            try:
                if httpx.post(f"{base}/auth/nonce", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield process.pid, base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(60)


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _peak_growth(pid: int, retrieve: Callable[[], int]) -> tuple[int, int, float]:
    """Reset the child's high-water mark, retrieve; return bytes received, growth, seconds."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = _status_kb(pid, "VmRSS")
    start = time.perf_counter()
    received = retrieve()
    seconds = time.perf_counter() - start
    return received, (_status_kb(pid, "VmHWM") - before) * 1024, seconds


def _large(site: _Site, cache: Path, work: Path, slices: int) -> dict[str, Any]:
    from imaging_consent.stores import FolderStore

    folder = generate_series(cache / f"ct{slices}", slices)
    files = sorted(folder.glob("*.dcm"))
    study_bytes = sum(f.stat().st_size for f in files)
    largest = max(f.stat().st_size for f in files)
    _register_and_grant(site, FolderStore(folder), LARGE_STUDY)
    manifest = work / "manifest.json"
    site.deployed.suite.manifest.write(manifest)
    with _serve_child(_child_env(site, work, manifest), folder, work) as (pid, base):
        service = Service(base, site.chain.chain_id, None)
        client = service.client(site.deployed.actors.requester)

        def retrieve() -> int:
            return sum(len(ds.PixelData) for ds in client.iter_study(LARGE_STUDY))

        cold = _peak_growth(pid, retrieve)
        warm = _peak_growth(pid, retrieve)
    assert cold[0] == warm[0] > 0
    return {
        "slices": slices,
        "study_mb": round(study_bytes / 1e6, 1),
        "largest_instance_bytes": largest,
        "pixel_bytes_received": warm[0],
        "cold_seconds": round(cold[2], 2),
        "warm_seconds": round(warm[2], 2),
        "mb_per_s_warm": round(study_bytes / 1e6 / warm[2], 1),
        "cold_peak_rss_growth_mb": round(cold[1] / 1e6, 2),
        "warm_peak_rss_growth_mb": round(warm[1] / 1e6, 2),
        "cold_peak_rss_ratio_to_largest_instance": round(cold[1] / largest, 2),
        "warm_peak_rss_ratio_to_largest_instance": round(warm[1] / largest, 2),
        "method": "imaging-consent serve (sync) in a child; /proc/PID/clear_refs 5 before each "
        "retrieval, VmHWM after it minus VmRSS before it",
    }


def run(
    work: Path, cache: Path, *, runs: int, warmup: int, per_client: int, slices: int
) -> dict[str, Any]:
    """The three measurements on one Anvil chain and one Orthanc (stopped at the end).

    Args:
        work: A scratch folder.
        cache: Where the large series is generated (and reused).
        runs: Interleaved rounds timed (each: Orthanc, batched, sync).
        warmup: Untimed rounds first.
        per_client: Retrievals per client thread in the concurrency run.
        slices: Slices of the large series (300: ~150 MB).
    """
    from imaging_consent.chain import LocalChain

    orthanc_server = _orthanc_fixture()
    started = time.perf_counter()
    with (
        orthanc_server.running_orthanc(work / "orthanc") as orthanc,
        LocalChain("anvil", accounts=10) as chain,
    ):
        site = _site(chain, os.urandom(32))
        out = _retrieval(site, orthanc, work / "retrieval", runs, warmup, per_client)
        (work / "large").mkdir()
        out["large_study"] = _large(site, cache, work / "large", slices)
    out["ratio_target"] = RATIO_TARGET
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out
