"""Section 3: audit queries over 10^3, 10^4 and 10^5 grants and access records, on Anvil.

One patient receives ``N`` grants (to ``N`` distinct grantees) and ``N`` access records (one
study, one requester, distinct request ids), built up in stages (10^3, then 10^4, then 10^5) by
node-signed bulk transactions (see :mod:`bench.bulk`). After each stage, ``grants_of(patient)``
(ConsentClient) and ``access_history(suite, patient)`` (audit) rebuild everything from events,
and each is timed, with its two parts timed apart: the paged ``eth_getLogs`` with decoding, and
the block-timestamp look-ups.

The same data give the gas-growth figures of section 1: the gas of the 1st, 1,000th and
10,000th grant and access record.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from typing import Any

from eth_utils import keccak

from bench.bulk import BulkAnvil, BulkSender, check_all_mined, selector, word
from bench.common import deploy_all
from bench.profiling import hot_spots
from bench.stats import summarize
from imaging_consent.access_log.history import access_history
from imaging_consent.chain.logs import block_timestamps, fetch_logs
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.contracts.deployment import sender_for

__all__ = ["run"]

logger = logging.getLogger(__name__)

GRANT = selector("grant(address,bytes32,uint32,bool,uint48,uint48)")
RECORD_ACCESS = selector("recordAccess(bytes32,address,uint8,bytes32)")
STUDY = bytes(keccak(text="scale study key"))
GROWTH_AT = (1, 1_000, 10_000)
#: The two parts of a query are timed apart up to this size (beyond, it would double the time).
PARTS_UP_TO = 10_000


def _grant_calls(start: int, stop: int) -> Any:
    for i in range(start, stop):
        grantee = "0x" + (0x5CA1E000000 + i).to_bytes(20, "big").hex()
        yield GRANT + word(grantee) + word(STUDY) + word(1) + word(True) + word(0) + word(0)


def _record_calls(requester: str, start: int, stop: int) -> Any:
    for i in range(start, stop):
        request_id = bytes(keccak(text=f"scale request {i}"))
        yield (
            RECORD_ACCESS
            + word(STUDY)
            + word(requester)
            + word(Purpose.TREAT.value)
            + word(request_id)
        )


def _exponent(points: list[tuple[int, float]]) -> list[float]:
    """log(t2 / t1) / log(n2 / n1) between consecutive sizes (1.0 means linear)."""
    return [
        round(math.log(t2 / t1) / math.log(n2 / n1), 3)
        for (n1, t1), (n2, t2) in itertools.pairwise(points)
    ]


def run(sizes: list[int], *, repeats: dict[int, int] | None = None) -> dict[str, Any]:
    """Build up to each size in ``sizes`` and time the audit queries there.

    Returns:
        ``scale`` (per size: setup seconds, query timings and their parts, block counts;
        growth exponents) and ``gas_growth`` (the 1st, 1,000th and 10,000th grant and record).
    """
    repeats = repeats or {}
    out: dict[str, Any] = {"chain": "anvil", "sizes": sizes, "stages": {}}
    with BulkAnvil(accounts=10) as chain:
        deployed = deploy_all(chain)
        suite, people = deployed.suite, deployed.actors
        session = chain.session
        patient, requester = people.patient.address, people.requester.address
        deployed.site_sender.transact(suite.studies.register_study(STUDY, patient, STUDY, 1))
        ConsentClient(suite, sender_for(session, people.patient)).grant(
            requester, STUDY, [Purpose.TREAT], identified=True
        )
        grants = BulkSender(chain, patient, gas=200_000)
        records = BulkSender(chain, people.gateway.address, gas=200_000)
        grant_hashes: list[str] = []
        record_hashes: list[str] = []
        reader = ConsentClient(suite)
        done = previous = 0
        total_setup = 0.0
        for size in sizes:
            start = time.perf_counter()
            grant_hashes += grants.send(suite.consent.address, _grant_calls(done, size))
            record_hashes += records.send(
                suite.access_log.address, _record_calls(requester, done, size)
            )
            check_all_mined(grants, grant_hashes)
            check_all_mined(records, record_hashes)
            setup = time.perf_counter() - start
            total_setup += setup
            previous, done = done, size
            stage = _measure_stage(
                suite, reader, patient, size, repeats.get(size, 1), profile=size == sizes[0]
            )
            stage["setup_s"] = round(setup, 2)
            stage["setup_tx_per_s"] = round(2 * (size - previous) / setup, 1)
            out["stages"][str(size)] = stage
            logger.info("scale %d: %s", size, stage)
        out["setup_total_s"] = round(total_setup, 2)
        points_g = [(n, out["stages"][str(n)]["grants_of"]["p50_ms"]) for n in sizes]
        points_a = [(n, out["stages"][str(n)]["access_history"]["p50_ms"]) for n in sizes]
        out["growth_exponent"] = {
            "grants_of": _exponent(points_g),
            "access_history": _exponent(points_a),
            "meaning": "log(t2/t1) / log(n2/n1) between consecutive sizes; 1.0 is linear",
        }
        growth = _gas_growth(grants, records, grant_hashes, record_hashes)
    return {"scale": out, "gas_growth": growth}


def _timed(function: Any, repeats: int, expected: int, what: str) -> list[float]:
    """Run ``function`` ``repeats`` times; check it returned ``expected`` events each time."""
    durations: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        durations.append(time.perf_counter() - start)
        found = len(result.events) if hasattr(result, "events") else len(result)
        if found != expected:
            raise RuntimeError(f"{what} found {found} events, expected {expected}")
    return durations


def _measure_stage(
    suite: Any, reader: ConsentClient, patient: str, size: int, repeats: int, profile: bool
) -> dict[str, Any]:
    stage: dict[str, Any] = {
        "repeats": repeats,
        "grants_of": summarize(
            _timed(lambda: reader.grants_of(patient), repeats, size + 1, "grants_of")
        ),
        "access_history": summarize(
            _timed(lambda: access_history(suite, patient), repeats, size, "access_history")
        ),
    }
    if size > PARTS_UP_TO:
        stage["events"] = {"grants_of": size + 1, "access_history": size}
        return stage
    events = suite.consent.events
    start = time.perf_counter()
    logs = fetch_logs(
        suite.session,
        [events.ConsentGranted, events.ConsentRevoked, events.DelegateSet],
        {"patient": patient},
        suite.manifest.block_number,
    )
    fetch_s = time.perf_counter() - start
    blocks = {int(log["blockNumber"]) for log in logs}
    start = time.perf_counter()
    block_timestamps(suite.session, blocks)
    stamps_s = time.perf_counter() - start
    stage["grants_of_parts"] = {
        "fetch_logs_and_decode_ms": round(fetch_s * 1000, 1),
        "block_timestamps_ms": round(stamps_s * 1000, 1),
        "distinct_blocks": len(blocks),
        "per_block_lookup_ms": round(stamps_s * 1000 / max(1, len(blocks)), 3),
        "per_event_fetch_decode_us": round(fetch_s * 1e6 / len(logs), 1),
    }
    if profile:
        stage["grants_of_profile"] = hot_spots(lambda: reader.grants_of(patient), 1)
    stage["events"] = {"grants_of": size + 1, "access_history": size}
    return stage


def _gas_growth(
    grants: BulkSender,
    records: BulkSender,
    grant_hashes: list[str],
    record_hashes: list[str],
) -> dict[str, Any]:
    at = [n for n in GROWTH_AT if n <= len(grant_hashes)]
    if len(at) < len(GROWTH_AT):
        at = sorted({1, max(1, len(grant_hashes) // 10), len(grant_hashes)})
    out: dict[str, Any] = {"positions": at}
    for name, sender, hashes in (
        ("grant", grants, grant_hashes),
        ("record_access", records, record_hashes),
    ):
        receipts = sender.receipts([hashes[n - 1] for n in at])
        gas = [int(r["gasUsed"], 16) for r in receipts]
        spread = (max(gas) - min(gas)) / min(gas)
        out[name] = {
            "gas": dict(zip((str(n) for n in at), gas, strict=True)),
            "max_spread": round(spread, 5),
            "within_1_percent": spread <= 0.01,
        }
    out["note"] = (
        "one patient's n-th grant (new grantee each time) and the n-th access record of one "
        "study; gas differs only by calldata zero bytes"
    )
    return out
