"""Section 2: latency and throughput of consent checks and releases, on Ganache and on Anvil.

Every figure of one chain comes from one run on one fresh chain, so ratios (release against
the plain-store baseline) compare like with like on a shared, noisy machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydicom
import requests

from bench.common import CT_SMALL_STUDY, deploy_all, write_ct_small
from bench.instrument import release_timers, split
from bench.profiling import hot_spots
from bench.proxy import CountingProxy
from bench.stats import summarize, time_calls, time_interleaved
from imaging_consent.access_log.record import AccessRecord
from imaging_consent.chain import LocalChain, connect
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.contracts.deployment import load, sender_for
from imaging_consent.dicom import SitePepper, study_key
from imaging_consent.gateway import ImageGateway, LogMode
from imaging_consent.provenance import register_study
from imaging_consent.stores import FolderStore

__all__ = ["run"]

logger = logging.getLogger(__name__)

CONCURRENCY = 8

#: Functions of the release path whose cumulative time the profiles report.
RELEASE_PARTS = (
    "check_access_confirmed",
    "raw_call",
    "verified_instances",
    "walk_dicom",
    "_digest",
    "_deidentified",
    "record_release",
    "_send_record_access",
    "_fill_fees",
    "_estimate_gas",
    "sign_transaction",
    "_send_raw",
    "_wait",
    "process_receipt",
)

#: A hot path's p50 may be at most this multiple of its floor (targets.py reads the ratios).
HOT_PATH_LIMIT = 1.3


def _bare_eth_call(url: str, to: str, data: str) -> Callable[[], None]:
    """One JSON-RPC ``eth_call`` of ready calldata as a bare HTTP POST: a ``requests.Session``
    (kept-alive connection) posting pre-encoded bytes; the answer is read, not decoded."""
    http = requests.Session()
    body = (
        '{"jsonrpc":"2.0","id":1,"method":"eth_call","params":'
        f'[{{"to":"{to}","data":"{data}"}},"latest"]}}'
    ).encode()
    headers = {"Content-Type": "application/json"}

    def post() -> None:
        http.post(url, data=body, headers=headers, timeout=10).raise_for_status()

    return post


def _ratio(value: dict[str, Any], floor_ms: float) -> float:
    return round(value["p50_ms"] / floor_ms, 3)


def _is_permitted_layers(
    suite: Any,
    reader: ConsentClient,
    patient: str,
    requester: str,
    key: bytes,
    runs: int,
    warmup: int,
) -> dict[str, Any]:
    """The same isPermitted check at each layer, timed round-robin in one loop.

    ``is_permitted`` is :meth:`ConsentClient.is_permitted`, ``is_permitted_binding`` the typed
    binding under it, ``is_permitted_w3_eth_call`` web3's ``w3.eth.call`` of ready calldata
    (middleware, formatters), ``is_permitted_raw_http`` the bare HTTP POST (the floor).
    """  # fmt: skip
    consent = suite.consent
    treat = Purpose.TREAT.value
    data = consent.functions.isPermitted(patient, requester, key, treat)._encode_transaction_data()
    w3 = suite.session.w3
    call = {"to": consent.address, "data": data}

    def client() -> None:
        if not reader.is_permitted(patient, requester, key, Purpose.TREAT).permitted:
            raise RuntimeError("the benchmark grant does not permit")

    samples = time_interleaved(
        {
            "is_permitted": client,
            "is_permitted_binding": lambda: consent.is_permitted(patient, requester, key, treat),
            "is_permitted_w3_eth_call": lambda: w3.eth.call(call),
            "is_permitted_raw_http": _bare_eth_call(suite.session.rpc_url, consent.address, data),
        },
        runs,
        warmup,
    )
    return {name: summarize(seconds) for name, seconds in samples.items()}


def _outbox_append(path: Path) -> Callable[[], None]:
    """One durable insert as the outbox makes it: SQLite in WAL mode, ``synchronous=FULL``,
    ``BEGIN IMMEDIATE``, one row (request id, leaf, record JSON of a real record's size),
    ``COMMIT`` (an fsync), into a table of the outbox's shape."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "request_id BLOB NOT NULL UNIQUE, leaf BLOB NOT NULL UNIQUE, record TEXT NOT NULL, "
        "batch_id BLOB)"
    )
    sample = AccessRecord(
        study_key=bytes(32),
        patient="0x" + "11" * 20,
        accessor="0x" + "22" * 20,
        purpose=Purpose.TREAT.value,
        permitted=True,
        identified=True,
        break_glass=False,
        request_id=bytes(32),
        gateway="0x" + "33" * 20,
        timestamp=int(time.time()),
    ).to_json()
    counter = iter(range(1 << 62))

    def append() -> None:
        n = next(counter).to_bytes(32, "big")
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO records (request_id, leaf, record) VALUES (?, ?, ?)",
            (n, hashlib.sha256(n).digest(), sample),
        )
        db.execute("COMMIT")

    return append


def _batched_release_floor(
    suite: Any,
    release: Callable[[], object],
    store: FolderStore,
    site: str,
    key: bytes,
    requester: str,
    outbox_floor: Path,
    runs: int,
    warmup: int,
) -> dict[str, Any]:
    """A batched release of CT_small against its floor, timed round-robin in one loop.

    The floor is the sum of the p50s of what no batched release can skip: a plain read of the
    file from the store, one bare ``eth_call`` (the release's ``checkAccess(site, studyKey,
    accessor, purpose)`` calldata), one
    sha256 pass over the file, one durable outbox append. It leaves out parsing the DICOM file
    (the release must parse to check the UIDs and find PixelData), the content tree and the
    record's encoding.
    """
    (stored,) = store.instances(CT_SMALL_STUDY)
    uid = stored.sop_instance_uid
    with store.open(uid) as fp:
        content = fp.read()

    def read() -> None:
        with store.open(uid) as fp:
            fp.read()

    data = suite.access_log.functions.checkAccess(
        site, key, requester, Purpose.TREAT.value
    )._encode_transaction_data()
    parts: dict[str, Callable[[], object]] = {
        "store_read": read,
        "eth_call": _bare_eth_call(suite.session.rpc_url, suite.access_log.address, data),
        "sha256": lambda: hashlib.sha256(content).digest(),
        "outbox_append": _outbox_append(outbox_floor),
    }
    samples = time_interleaved({"release_batched": release, **parts}, runs, warmup)
    timed = {name: summarize(seconds) for name, seconds in samples.items()}
    floor_ms = round(sum(timed[name]["p50_ms"] for name in parts), 4)
    return {
        "release_batched": timed.pop("release_batched"),
        "floor_parts": timed,
        "floor_ms": floor_ms,
        "file_bytes": len(content),
    }


def _breakdown(release: Callable[[], object], runs: int) -> dict[str, float]:
    """Median milliseconds per release of each part (``bench.instrument``) over ``runs``
    releases; ``total`` is the median release, so the parts need not add up to it exactly."""
    rows: list[dict[str, float]] = []
    with release_timers() as timers:
        for _ in range(runs):
            timers.clear()
            start = time.perf_counter()
            release()
            rows.append(split(timers.seconds, time.perf_counter() - start))
    return {key: round(statistics.median(row[key] for row in rows), 4) for key in rows[0]}


def _baseline(store: FolderStore, study_uid: str) -> None:
    """The same study read straight from the store and parsed, with no consent check."""
    for stored in store.instances(study_uid):
        with store.open(stored.sop_instance_uid) as fp:
            pydicom.dcmread(fp)


def _baseline_bytes(store: FolderStore, study_uid: str) -> None:
    """The same study's bytes read straight from the store, not parsed."""
    for stored in store.instances(study_uid):
        with store.open(stored.sop_instance_uid) as fp:
            fp.read()


def _concurrent_rate(gateway: ImageGateway, requester: str, count: int) -> float:
    """Releases per second of ``count`` releases of CT_small from 8 threads (after a warm-up)."""

    def release(_: int) -> None:
        gateway.release(CT_SMALL_STUDY, requester, Purpose.TREAT)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(release, range(CONCURRENCY)))
        start = time.perf_counter()
        list(pool.map(release, range(count)))
        seconds = time.perf_counter() - start
    return round(count / seconds, 2)


def _signing_ms(account: Any, chain_id: int, runs: int = 20) -> float:
    """Median milliseconds to sign one EIP-1559 transaction locally (eth-account)."""
    tx = {
        "to": account.address,
        "value": 0,
        "gas": 50_000,
        "maxFeePerGas": 2_000_000_000,
        "maxPriorityFeePerGas": 1_000_000_000,
        "nonce": 0,
        "chainId": chain_id,
        "data": "0x" + "ab" * 132,
    }
    samples = time_calls(lambda: account.sign_transaction(tx), runs, 2)
    return summarize(samples)["p50_ms"]  # type: ignore[no-any-return]


def run(kind: str, workdir: Path, *, runs: int, warmup: int, tx_count: int) -> dict[str, Any]:
    """Measure section 2 on a fresh ``kind`` chain.

    Args:
        kind: ``"ganache"`` or ``"anvil"``.
        workdir: A scratch folder (the image store and the outbox go there).
        runs: Timed repetitions per latency figure.
        warmup: Untimed repetitions before them.
        tx_count: Transactions for the sequential rate, releases for the concurrent rate.
    """
    out: dict[str, Any] = {"chain": kind, "runs": runs, "warmup": warmup}
    folder = workdir / f"{kind}-store"
    write_ct_small(folder)
    store = FolderStore(folder)
    pepper = SitePepper(os.urandom(32))
    with LocalChain(kind, accounts=10) as chain:  # type: ignore[arg-type]
        deployed = deploy_all(chain)
        suite, people = deployed.suite, deployed.actors
        session = chain.session
        register_study(
            suite,
            deployed.site_sender,
            store,
            pepper,
            CT_SMALL_STUDY,
            people.patient.address,
        )
        patient_sender = sender_for(session, people.patient)
        ConsentClient(suite, patient_sender).grant(
            people.requester.address, None, [Purpose.TREAT], identified=True
        )
        key = study_key(pepper, CT_SMALL_STUDY)
        reader = ConsentClient(suite)
        patient, requester = people.patient.address, people.requester.address

        # is_permitted: one eth_call through the client, against the same call one layer down
        # at a time, down to a bare HTTP POST (the floor).
        out.update(_is_permitted_layers(suite, reader, patient, requester, key, runs, warmup))
        out["tx_signing_p50_ms"] = _signing_ms(people.relayer, chain.chain_id)

        # Releases of CT_small, sync and batched, and the plain-store baseline.
        gateway_sender = sender_for(session, people.gateway)
        sync = ImageGateway(
            suite,
            gateway_sender,
            store,
            pepper,
            log_mode=LogMode.SYNC,
            outbox_path=workdir / f"{kind}-sync-outbox.sqlite3",
        )
        batched = ImageGateway(
            suite,
            gateway_sender,
            store,
            pepper,
            log_mode=LogMode.BATCHED,
            outbox_path=workdir / f"{kind}-outbox.sqlite3",
        )

        def release_sync() -> None:
            sync.release(CT_SMALL_STUDY, requester, Purpose.TREAT)

        def release_batched() -> None:
            batched.release(CT_SMALL_STUDY, requester, Purpose.TREAT)

        baseline = summarize(time_calls(lambda: _baseline(store, CT_SMALL_STUDY), runs, warmup))
        out["release_sync"] = summarize(time_calls(release_sync, runs, warmup))
        floor = _batched_release_floor(
            suite,
            release_batched,
            store,
            people.site.address,
            key,
            requester,
            workdir / f"{kind}-outbox-floor.sqlite3",
            runs,
            warmup,
        )
        out["release_batched"] = floor.pop("release_batched")
        out["release_batched_floor"] = floor
        out["baseline_store_read"] = baseline
        out["baseline_store_bytes"] = summarize(
            time_calls(lambda: _baseline_bytes(store, CT_SMALL_STUDY), runs, warmup)
        )
        out["release_overhead_ratio"] = {
            "sync": round(out["release_sync"]["p50_ms"] / baseline["p50_ms"], 2),
            "batched": round(out["release_batched"]["p50_ms"] / baseline["p50_ms"], 2),
            "baseline": "baseline_store_read (read and parse with pydicom, no consent check)",
        }
        out["hot_path"] = {
            "limit": HOT_PATH_LIMIT,
            "is_permitted_ratio": _ratio(
                out["is_permitted"], out["is_permitted_raw_http"]["p50_ms"]
            ),
            "is_permitted_binding_ratio": _ratio(
                out["is_permitted_binding"], out["is_permitted_raw_http"]["p50_ms"]
            ),
            "release_batched_ratio": _ratio(out["release_batched"], floor["floor_ms"]),
            "release_batched_split_ms": _breakdown(release_batched, runs),
            "release_sync_split_ms": _breakdown(release_sync, max(5, runs // 4)),
        }
        start = time.perf_counter()
        flushed = batched.flush()
        out["flush"] = {
            "records": sum(b.count for b in flushed),
            "batches": len(flushed),
            "seconds": round(time.perf_counter() - start, 4),
        }

        # Sequential transactions per second: grants to distinct grantees, one at a time.
        client = ConsentClient(suite, patient_sender)
        start = time.perf_counter()
        for i in range(tx_count):
            grantee = "0x" + (0xB0000 + i).to_bytes(20, "big").hex()
            client.grant(grantee, key, [Purpose.TREAT], identified=False)
        seconds = time.perf_counter() - start
        out["sequential_tx_per_s"] = round(tx_count / seconds, 2)

        # Concurrent releases with 8 threads, in both modes.
        for name, gateway in (("sync", sync), ("batched", batched)):
            out[f"concurrent_releases_per_s_{name}"] = _concurrent_rate(
                gateway, requester, tx_count
            )
        out["concurrent_threads"] = CONCURRENCY
        batched.flush()

        # Where the time goes (cProfile): a check, and releases in both modes.
        profile_runs = max(5, runs // 4)
        out["is_permitted_profile"] = hot_spots(
            lambda: reader.is_permitted(patient, requester, key, Purpose.TREAT), profile_runs * 4
        )
        out["release_sync_profile"] = hot_spots(release_sync, profile_runs, focus=RELEASE_PARTS)
        out["release_batched_profile"] = hot_spots(
            release_batched, profile_runs, focus=RELEASE_PARTS
        )
        batched.flush()
        batched.close()

        # HTTP requests per check and per release, counted by a proxy on loopback.
        with CountingProxy(chain.rpc_url) as proxy:
            counted = connect(proxy.url, chain.chain_id)
            counted_suite = load(counted, suite.manifest)
            counted_reader = ConsentClient(counted_suite)
            proxy.reset()
            checks = 20
            for _ in range(checks):
                counted_reader.is_permitted(patient, requester, key, Purpose.TREAT)
            out["is_permitted_http_requests"] = proxy.requests / checks
            out["is_permitted_rpc_methods"] = dict(proxy.methods)
            counted_sender = sender_for(counted, people.gateway)
            counted_outbox = workdir / f"{kind}-counted-outbox.sqlite3"
            with ImageGateway(
                counted_suite, counted_sender, store, pepper, outbox_path=counted_outbox
            ) as counted_gateway:
                counted_gateway.release(CT_SMALL_STUDY, requester, Purpose.TREAT)
                proxy.reset()
                counted_gateway.release(CT_SMALL_STUDY, requester, Purpose.TREAT)
                out["release_sync_http_requests"] = proxy.requests
                out["release_sync_rpc_methods"] = dict(proxy.methods)
    return out
