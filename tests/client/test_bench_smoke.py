"""Smoke test of the benchmark harness: ``bench/run.py --quick`` runs and writes every key.

Benchmarks are not tests: nothing here looks at a timing or a gas figure, only at the shape of
bench/results.json and that bench/summary.md is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TOP_LEVEL = (
    "meta",
    "gas",
    "gas_measured",
    "gas_floor",
    "gas_ratio",
    "gas_peers",
    "gas_batched",
    "gas_growth",
    "latency",
    "large_study",
    "scale",
    "dicomweb",
    "index",
    "targets",
)
LATENCY = (
    "is_permitted",
    "is_permitted_http_requests",
    "release_sync",
    "release_batched",
    "baseline_store_read",
    "release_overhead_ratio",
    "sequential_tx_per_s",
    "concurrent_releases_per_s_sync",
    "concurrent_releases_per_s_batched",
    "is_permitted_raw_http",
    "release_batched_floor",
    "hot_path",
)
GAS_OPERATIONS = (
    "grant",
    "grant_update",
    "revoke",
    "cancel_signatures",
    "set_exclusion",
    "set_delegate",
    "grant_for",
    "revoke_for",
    "grant_by_sig",
    "revoke_by_sig",
    "cancel_by_sig",
    "register_study",
    "update_content",
    "record_access",
    "record_access_denied",
    "record_break_glass",
    "anchor_batch",
    "grant_role_site",
    "set_gateway",
    "set_emergency_clinician",
)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    answer = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr[-4000:]
    return json.loads((out / "results.json").read_text()), out


def test_run_quick_writes_every_section(results: tuple[dict[str, object], Path]) -> None:
    data, _out = results

    missing = [key for key in TOP_LEVEL if key not in data]

    assert not missing


def test_run_quick_gas_has_floor_and_ratio_for_every_operation(
    results: tuple[dict[str, object], Path],
) -> None:
    data, _out = results

    measured, floor, ratio = data["gas_measured"], data["gas_floor"], data["gas_ratio"]

    for name in GAS_OPERATIONS:
        assert name in measured and name in floor and name in ratio  # type: ignore[operator]
    assert {peer["ours"] for peer in data["gas_peers"]} >= {"grant", "revoke"}  # type: ignore[union-attr,index]
    assert set(data["gas_batched"]["sizes"]) == {"1", "10", "100", "1000"}  # type: ignore[index]
    assert {"grant", "record_access"} <= set(data["gas_growth"])  # type: ignore[arg-type]


def test_run_quick_latency_and_scale_keys(results: tuple[dict[str, object], Path]) -> None:
    data, _out = results

    anvil = data["latency"]["anvil"]  # type: ignore[index]

    assert all(key in anvil for key in LATENCY)
    assert {"p50_ms", "p95_ms"} <= set(anvil["is_permitted"])
    assert {"is_permitted_ratio", "release_batched_ratio", "release_batched_split_ms"} <= set(
        anvil["hot_path"]
    )
    assert {"release_mb_per_s", "peak_rss_increase_bytes", "time_split_first_release_s"} <= set(
        data["large_study"]  # type: ignore[arg-type]
    )
    assert data["scale"]["stages"]  # type: ignore[index]
    postgres_skipped = "skipped" in data["index"]["throughput"]["postgresql"]  # type: ignore[index]
    assert all(
        row["passed"] is not None
        or row["target"].startswith("Ganache")
        or (postgres_skipped and "PostgreSQL" in row["target"])
        for row in data["targets"]  # type: ignore[union-attr]
    )


def test_run_quick_dicomweb_keys_and_records(results: tuple[dict[str, object], Path]) -> None:
    data, _out = results

    dicomweb = data["dicomweb"]

    assert {"orthanc", "gateway_batched", "gateway_sync", "ratio_batched", "ratio_sync"} <= set(
        dicomweb  # type: ignore[arg-type]
    )
    assert dicomweb["records_ok"] is True  # type: ignore[index]
    assert dicomweb["large_study"]["warm_peak_rss_ratio_to_largest_instance"] is not None  # type: ignore[index]


def test_run_quick_index_keys(results: tuple[dict[str, object], Path]) -> None:
    data, _out = results

    index = data["index"]

    sqlite = index["throughput"]["sqlite"]  # type: ignore[index]
    assert sqlite["events"] == index["chain"]["events"]  # type: ignore[index]
    assert {"fetch_logs", "fetch_headers", "decode", "store", "other"} <= set(sqlite["parts_s"])
    postgres = index["throughput"]["postgresql"]  # type: ignore[index]
    assert "skipped" in postgres or postgres["events"] == sqlite["events"]
    assert set(index["query"]["stages"]) == {"1000", "3000"}  # type: ignore[index]
    assert index["query"]["largest"]["p50_ms"] > 0  # type: ignore[index]
    assert {"typical", "heavy"} <= set(index["against_chain"])  # type: ignore[index]


def test_run_quick_writes_the_summary(results: tuple[dict[str, object], Path]) -> None:
    _data, out = results

    summary = (out / "summary.md").read_text()

    assert "### Targets" in summary and "### Gas" in summary and "### Scale" in summary
    assert "### DICOMweb service in front of Orthanc" in summary
    assert "### Audit index" in summary


def test_run_quick_measures_every_transaction_of_gas_json(
    results: tuple[dict[str, object], Path],
) -> None:
    data, _out = results

    views = {key for key in data["gas"] if key.startswith(("is_permitted", "anchor_batch_per"))}  # type: ignore[union-attr]
    missing = set(data["gas"]) - views - set(data["gas_measured"])  # type: ignore[arg-type]

    assert not missing
