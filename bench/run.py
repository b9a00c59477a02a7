"""Run the benchmarks and write bench/results.json and bench/summary.md.

Usage: ``python -m bench.run [--quick] [--sections gas,latency,large,scale,dicomweb,index]
[--chains anvil] [--out DIR]``.
Every chain it needs is started here and stopped when done. ``--quick`` runs each section on
a tiny scale (a smoke run for the tests); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import dicomweb, gas_bench, index_bench, large_study, latency, scale  # noqa: E402
from bench.summary import render, splice_readme  # noqa: E402
from bench.targets import evaluate  # noqa: E402

logger = logging.getLogger("bench")

SECTIONS = ("gas", "latency", "large", "scale", "dicomweb", "index")


def _settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "gas_chain": "anvil",
            "latency_chains": ["anvil"],
            "runs": 5,
            "warmup": 1,
            "tx_count": 8,
            "slices": 4,
            "large_runs": 1,
            "scale_sizes": [20, 60],
            "scale_repeats": {20: 2, 60: 1},
            "dicomweb_runs": 5,
            "dicomweb_warmup": 1,
            "dicomweb_per_client": 2,
            "dicomweb_slices": 4,
            "index_events": 600,
            "index_sync_runs": 1,
            "index_postgres_runs": 1,
            "index_query_sizes": [1_000, 3_000],
            "index_query_runs": 30,
            "index_trail_runs": 3,
            "index_chain_runs": 2,
        }
    return {
        "gas_chain": "ganache",
        "latency_chains": ["anvil", "ganache"],
        "runs": 200,
        "warmup": 20,
        "tx_count": 100,
        "slices": 300,
        "large_runs": 3,
        "scale_sizes": [1_000, 10_000, 100_000],
        "scale_repeats": {1_000: 5, 10_000: 2, 100_000: 1},
        "dicomweb_runs": 200,
        "dicomweb_warmup": 20,
        "dicomweb_per_client": 25,
        "dicomweb_slices": 300,
        "index_events": 100_000,
        "index_sync_runs": 2,
        "index_postgres_runs": 2,
        "index_query_sizes": [10_000, 100_000, 1_000_000],
        "index_query_runs": 200,
        "index_trail_runs": 20,
        "index_chain_runs": 3,
    }


def _git_commit() -> str | None:
    try:
        answer = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return answer.stdout.strip()


def _versions() -> dict[str, str]:
    versions: dict[str, str] = {"python": platform.python_version()}
    for name in ("ganache", "anvil"):
        try:
            from imaging_consent.chain import find_chain_binary

            answer = subprocess.run(
                [str(find_chain_binary(name)), "--version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            versions[name] = answer.stdout.strip().splitlines()[0]
        except Exception as exc:  # only informative
            versions[name] = f"unknown ({type(exc).__name__})"
    return versions


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections and write the results; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    parser.add_argument(
        "--chains", default=None, help="latency chains, comma-separated (default: per settings)"
    )
    parser.add_argument("--out", type=Path, default=BENCH, help="where results go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("imaging_consent", "web3", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    settings = _settings(args.quick)
    if args.chains:
        settings["latency_chains"] = [c.strip() for c in args.chains.split(",") if c.strip()]
        if not set(settings["latency_chains"]) <= {"anvil", "ganache"}:
            parser.error("--chains takes anvil and/or ganache")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "quick": args.quick,
            "sections": sections,
            "settings": {k: v for k, v in settings.items() if k != "scale_repeats"},
            "cpus": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()),
            "versions": _versions(),
            "git_commit": _git_commit(),
        },
        "section_seconds": {},
    }
    with tempfile.TemporaryDirectory(prefix="imaging-consent-bench-") as scratch:
        work = Path(scratch)
        if "gas" in sections:
            start = time.perf_counter()
            logger.info("section 1: gas")
            results.update(gas_bench.run(gas_json=BENCH / "gas.json", kind=settings["gas_chain"]))
            results["section_seconds"]["gas"] = round(time.perf_counter() - start, 1)
        if "latency" in sections:
            start = time.perf_counter()
            results["latency"] = {}
            for kind in settings["latency_chains"]:
                logger.info("section 2: latency on %s", kind)
                results["latency"][kind] = latency.run(
                    kind,
                    work,
                    runs=settings["runs"],
                    warmup=settings["warmup"],
                    tx_count=settings["tx_count"],
                )
            results["section_seconds"]["latency"] = round(time.perf_counter() - start, 1)
        if "large" in sections:
            start = time.perf_counter()
            logger.info("section 2: large study (%d slices)", settings["slices"])
            cache = BENCH / ".cache" if not args.quick else work / "cache"
            results["large_study"] = large_study.run(
                cache, slices=settings["slices"], runs=settings["large_runs"]
            )
            results["section_seconds"]["large"] = round(time.perf_counter() - start, 1)
        if "scale" in sections:
            start = time.perf_counter()
            logger.info("section 3: scale %s", settings["scale_sizes"])
            scaled = scale.run(settings["scale_sizes"], repeats=settings["scale_repeats"])
            results["scale"] = scaled["scale"]
            results["gas_growth"] = scaled["gas_growth"]
            results["section_seconds"]["scale"] = round(time.perf_counter() - start, 1)
        if "dicomweb" in sections:
            start = time.perf_counter()
            logger.info("section 5: DICOMweb service in front of Orthanc")
            results["dicomweb"] = dicomweb.run(
                work / "dicomweb",
                BENCH / ".cache" if not args.quick else work / "cache",
                runs=settings["dicomweb_runs"],
                warmup=settings["dicomweb_warmup"],
                per_client=settings["dicomweb_per_client"],
                slices=settings["dicomweb_slices"],
            )
            results["section_seconds"]["dicomweb"] = round(time.perf_counter() - start, 1)
        if "index" in sections:
            start = time.perf_counter()
            logger.info("section 6: the audit index (%d events)", settings["index_events"])
            results["index"] = index_bench.run(
                work / "index",
                events=settings["index_events"],
                sync_runs=settings["index_sync_runs"],
                postgres_runs=settings["index_postgres_runs"],
                query_sizes=settings["index_query_sizes"],
                query_runs=settings["index_query_runs"],
                index_runs=settings["index_trail_runs"],
                chain_runs=settings["index_chain_runs"],
            )
            results["section_seconds"]["index"] = round(time.perf_counter() - start, 1)
    results["targets"] = evaluate(results)
    results["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
    results["meta"]["load_average_at_end"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    summary = render(results)
    (args.out / "summary.md").write_text(summary, encoding="utf-8")
    if args.out.resolve() == BENCH and not args.quick and set(sections) == set(SECTIONS):
        # Only bench/README.md: the top README shows gas once, generated from bench/gas.json.
        splice_readme(BENCH / "README.md", summary)
    logger.info("wrote %s and %s", args.out / "results.json", args.out / "summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
