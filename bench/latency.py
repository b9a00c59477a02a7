"""Section 2: latency and throughput of consent checks and releases, on Ganache and on Anvil.

Every figure of one chain comes from one run on one fresh chain, so ratios (release against
the plain-store baseline) compare like with like on a shared, noisy machine.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydicom
import requests

from bench.common import CT_SMALL_STUDY, deploy_all, write_ct_small
from bench.profiling import hot_spots
from bench.proxy import CountingProxy
from bench.stats import summarize, time_calls
from imaging_consent.chain import LocalChain, connect
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.contracts.deployment import load, sender_for
from imaging_consent.dicom import SitePepper, study_key
from imaging_consent.release import ImageGateway, LogMode, register_study
from imaging_consent.stores import FolderStore

__all__ = ["run"]

logger = logging.getLogger(__name__)

CONCURRENCY = 8

#: Functions of the release path whose cumulative time the profiles report.
RELEASE_PARTS = (
    "_check",
    "_verified_instances",
    "load_instance",
    "_record_access_sync",
    "_add_to_outbox",
    "_fill_fees",
    "_estimate_gas",
    "sign_transaction",
    "_send_raw",
    "_wait",
    "process_receipt",
)


def _call_layers(
    suite: Any, patient: str, requester: str, key: bytes, runs: int, warmup: int
) -> dict[str, Any]:
    """The same isPermitted eth_call one layer down at a time: web3 without the contract ABI
    layer (``w3.eth.call`` with ready calldata), and a bare HTTP POST of the JSON-RPC request."""
    consent = suite.consent
    data = consent.functions.isPermitted(
        patient, requester, key, Purpose.TREAT.value
    )._encode_transaction_data()
    w3 = suite.session.w3
    call = {"to": consent.address, "data": data}
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, "latest"]}
    http = requests.Session()
    url = suite.session.rpc_url

    def raw() -> None:
        http.post(url, json=payload, timeout=10).raise_for_status()

    return {
        "is_permitted_w3_eth_call": summarize(time_calls(lambda: w3.eth.call(call), runs, warmup)),
        "is_permitted_raw_http": summarize(time_calls(raw, runs, warmup)),
    }


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
            sender_for(session, people.site),
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

        # is_permitted: one eth_call through the client.
        def check() -> None:
            if not reader.is_permitted(patient, requester, key, Purpose.TREAT).permitted:
                raise RuntimeError("the benchmark grant does not permit")

        out["is_permitted"] = summarize(time_calls(check, runs, warmup))
        out.update(_call_layers(suite, patient, requester, key, runs, warmup))
        out["tx_signing_p50_ms"] = _signing_ms(people.relayer, chain.chain_id)

        # Releases of CT_small, sync and batched, and the plain-store baseline.
        gateway_sender = sender_for(session, people.gateway)
        sync = ImageGateway(suite, gateway_sender, store, pepper, log_mode=LogMode.SYNC)
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
        out["release_batched"] = summarize(time_calls(release_batched, runs, warmup))
        out["baseline_store_read"] = baseline
        out["baseline_store_bytes"] = summarize(
            time_calls(lambda: _baseline_bytes(store, CT_SMALL_STUDY), runs, warmup)
        )
        out["release_overhead_ratio"] = {
            "sync": round(out["release_sync"]["p50_ms"] / baseline["p50_ms"], 2),
            "batched": round(out["release_batched"]["p50_ms"] / baseline["p50_ms"], 2),
            "baseline": "baseline_store_read (read and parse with pydicom, no consent check)",
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
        out["is_permitted_profile"] = hot_spots(check, profile_runs * 4)
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
            with ImageGateway(counted_suite, counted_sender, store, pepper) as counted_gateway:
                counted_gateway.release(CT_SMALL_STUDY, requester, Purpose.TREAT)
                proxy.reset()
                counted_gateway.release(CT_SMALL_STUDY, requester, Purpose.TREAT)
                out["release_sync_http_requests"] = proxy.requests
                out["release_sync_rpc_methods"] = dict(proxy.methods)
    return out
