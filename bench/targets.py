"""Section 4: the targets, each judged pass or fail from results.json (never asserted)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "evaluate"]


def _get(results: dict[str, Any], *path: str) -> Any:
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _growth_spread(results: dict[str, Any]) -> float | None:
    spreads = [
        _get(results, "gas_growth", name, "max_spread") for name in ("grant", "record_access")
    ]
    found = [s for s in spreads if s is not None]
    return max(found) * 100 if found else None


def _records_wrong(results: dict[str, Any]) -> int | None:
    counts = [_get(results, "dicomweb", f"records_{mode}") for mode in ("batched", "sync")]
    if any(c is None for c in counts):
        return None
    keys = ("lost", "duplicated", "anchored_twice")
    return sum(c[k] for c in counts for k in keys) + sum(
        c["requests"] - c["distinct"] for c in counts
    )


# The gas ceilings' one home, shared with tests/contracts/test_gas*.py and scripts/gas_table.py.
GAS_CEILINGS: dict[str, int] = json.loads(
    (Path(__file__).resolve().parent / "gas_ceilings.json").read_text(encoding="utf-8")
)

#: Ceilings of views: their execution gas comes from bench/gas.json (``results["gas"]``), as
#: this harness sends transactions only.
VIEW_CEILINGS = frozenset({"is_permitted"})


def _gas_target(key: str) -> tuple[str, str, float, Callable[[dict[str, Any]], Any], str]:
    view = key in VIEW_CEILINGS
    source = "gas" if view else "gas_measured"
    name = f"gas: {key}" + (" (bench/gas.json)" if view else "")
    return name, "gas", GAS_CEILINGS[key], lambda results: _get(results, source, key), "max"


# (name, unit, limit, how to read the value, "max" (value <= limit) or "min")
TARGETS: list[tuple[str, str, float, Callable[[dict[str, Any]], Any], str]] = [
    *(_gas_target(key) for key in GAS_CEILINGS),
    (
        "gas: anchor_batch per record at 1,000",
        "gas",
        50,
        lambda r: _get(r, "gas_batched", "sizes", "1000", "per_record"),
        "max",
    ),
    ("gas growth 1st/1,000th/10,000th", "%", 1.0, _growth_spread, "max"),
    (
        "Anvil: is_permitted p50",
        "ms",
        3,
        lambda r: _get(r, "latency", "anvil", "is_permitted", "p50_ms"),
        "max",
    ),
    (
        "Anvil: HTTP requests per is_permitted",
        "requests",
        1,
        lambda r: _get(r, "latency", "anvil", "is_permitted_http_requests"),
        "max",
    ),
    (
        "Anvil: release CT_small p50, sync",
        "ms",
        25,
        lambda r: _get(r, "latency", "anvil", "release_sync", "p50_ms"),
        "max",
    ),
    (
        "Anvil: release CT_small p50, batched",
        "ms",
        10,
        lambda r: _get(r, "latency", "anvil", "release_batched", "p50_ms"),
        "max",
    ),
    (
        "Anvil: is_permitted p50 / bare HTTP eth_call p50",
        "x",
        1.3,
        lambda r: _get(r, "latency", "anvil", "hot_path", "is_permitted_ratio"),
        "max",
    ),
    (
        "Anvil: release CT_small batched p50 / its floor",
        "x",
        1.3,
        lambda r: _get(r, "latency", "anvil", "hot_path", "release_batched_ratio"),
        "max",
    ),
    (
        "Ganache: is_permitted p50",
        "ms",
        8,
        lambda r: _get(r, "latency", "ganache", "is_permitted", "p50_ms"),
        "max",
    ),
    (
        "large study: identified release into a folder, protocol v2",
        "MB/s",
        900,
        lambda r: _get(r, "large_study", "release_mb_per_s"),
        "min",
    ),
    (
        "large study: peak memory growth of a warm release / largest instance",
        "x",
        3,
        lambda r: _get(r, "large_study", "warm_peak_rss_ratio_to_largest_instance"),
        "max",
    ),
    (
        "DICOMweb: WADO-RS CT_small p50, gateway batched / Orthanc's own DICOMweb",
        "x",
        1.5,
        lambda r: _get(r, "dicomweb", "ratio_batched"),
        "max",
    ),
    (
        "DICOMweb: 8 clients, records lost, duplicated or anchored twice",
        "records",
        0,
        _records_wrong,
        "max",
    ),
    (
        "DICOMweb: ~150 MB study, server peak memory growth / largest instance",
        "x",
        3,
        lambda r: _get(r, "dicomweb", "large_study", "warm_peak_rss_ratio_to_largest_instance"),
        "max",
    ),
    (
        "audit index: first sync from Anvil into SQLite (fetch, decode, store)",
        "events/s",
        5_000,
        lambda r: _get(r, "index", "throughput", "sqlite", "events_per_s"),
        "min",
    ),
    (
        "audit index: first sync from Anvil into PostgreSQL (fetch, decode, store)",
        "events/s",
        5_000,
        lambda r: _get(r, "index", "throughput", "postgresql", "events_per_s"),
        "min",
    ),
    (
        "audit index: a patient's audit p50 at the largest size (10^6 records in a full run)",
        "ms",
        50,
        lambda r: _get(r, "index", "query", "largest", "p50_ms"),
        "max",
    ),
    (
        "audit index: a patient's audit p50, largest size / smallest (10^6 / 10^4)",
        "x",
        2,
        lambda r: _get(r, "index", "query", "growth_ratio"),
        "max",
    ),
]


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and ``passed`` (None if not measured this run)."""
    rows: list[dict[str, Any]] = []
    for name, unit, limit, read, sense in TARGETS:
        value = read(results)
        passed = None
        if value is not None:
            passed = value <= limit if sense == "max" else value >= limit
        rows.append(
            {
                "target": name,
                "limit": limit,
                "unit": unit,
                "sense": sense,
                "value": value,
                "passed": passed,
            }
        )
    return rows
