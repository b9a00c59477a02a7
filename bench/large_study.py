"""Section 2, large study: a synthetic CT series (300 slices, 512 x 512, 16 bits, ~150 MB).

The series is generated once with pydicom into ``bench/.cache/`` (ignored by git) and reused.
The release runs in a child process (``python -m bench.large_study --child``) so its peak
resident memory is its own: the child reports ``ru_maxrss`` after the first release minus its
resident set just before it. Time is split with the timers of :mod:`bench.instrument`, wrapped
around the release's consent check, file loading, parsing, hashing, content tree and record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.data import get_testdata_file

from bench import instrument

__all__ = ["generate_series", "run"]

STUDY_UID = "1.2.826.0.1.3680043.10.5432.88"
SERIES_UID = STUDY_UID + ".1"
ROWS = COLUMNS = 512


def generate_series(folder: Path, slices: int) -> Path:
    """Write (once) ``slices`` CT slices of 512 x 512 16-bit pixels into ``folder``.

    A ``complete.json`` marker makes later runs reuse the files.
    """
    marker = folder / "complete.json"
    if marker.is_file() and json.loads(marker.read_text()).get("slices") == slices:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    rng = np.random.default_rng(20261128)
    for i in range(slices):
        ds = template.copy()
        sop = f"{SERIES_UID}.{i + 1}"
        ds.StudyInstanceUID = STUDY_UID
        ds.SeriesInstanceUID = SERIES_UID
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.InstanceNumber = i + 1
        ds.Rows, ds.Columns = ROWS, COLUMNS
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.SliceLocation = float(i)
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.PixelData = rng.integers(0, 4096, size=(ROWS, COLUMNS), dtype=np.uint16).tobytes()
        ds.save_as(folder / f"slice{i + 1:04d}.dcm", enforce_file_format=True)
    marker.write_text(json.dumps({"slices": slices}))
    return folder


def _warm_peak_growth(release: Any, out: Path) -> int | None:
    """Peak RSS growth of one more release once everything is imported and warmed up.

    Resets the kernel's high-water mark (``/proc/self/clear_refs``, ``5``) and reads ``VmHWM``
    after the release; None where Linux does not offer that.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    before = _rss_bytes()
    release(out)
    shutil.rmtree(out)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 - before
    return None


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child(config: dict[str, Any]) -> dict[str, Any]:
    """Release the study ``config["runs"]`` times; report times, the split and peak memory."""
    from imaging_consent.chain import connect, dev_accounts
    from imaging_consent.consent import Purpose
    from imaging_consent.contracts.deployment import load, sender_for
    from imaging_consent.contracts.manifest import Manifest
    from imaging_consent.dicom import SitePepper
    from imaging_consent.gateway import ImageGateway, LogMode
    from imaging_consent.stores import FolderStore

    session = connect(config["rpc_url"], config["chain_id"])
    suite = load(session, Manifest.from_json(config["manifest"]))
    accounts = dev_accounts(config["accounts"])
    gateway_account = accounts[config["gateway_index"]]
    requester = accounts[config["requester_index"]].address
    store = FolderStore(config["folder"])
    pepper = SitePepper(bytes.fromhex(config["pepper"]))
    sender = sender_for(session, gateway_account)
    outbox = Path(config["folder"]).with_name("large-study-outbox.sqlite3")
    gateway = ImageGateway(suite, sender, store, pepper, log_mode=LogMode.SYNC, outbox_path=outbox)

    durations: list[float] = []
    splits: list[dict[str, float]] = []
    rss_before = _rss_bytes()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak_after_first = 0
    released_bytes = 0
    sha_only = 0.0
    with instrument.release_timers() as timers:
        for run in range(config["runs"]):
            timers.clear()
            start = time.perf_counter()
            out = Path(config["out"]) / f"run{run}"
            release = gateway.release(STUDY_UID, requester, Purpose.TREAT, destination=out)
            durations.append(time.perf_counter() - start)
            splits.append(dict(timers.seconds))
            if run == 0:
                peak_after_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                files = [f.read_bytes() for f in release.files if f.suffix == ".dcm"]
                released_bytes = sum(len(data) for data in files)
                start = time.perf_counter()
                for data in files:
                    hashlib.sha256(data).digest()
                sha_only = time.perf_counter() - start
                del files
            del release
            shutil.rmtree(out)
    in_memory: list[float] = []
    for _ in range(config["runs"]):
        start = time.perf_counter()
        held = gateway.release(STUDY_UID, requester, Purpose.TREAT)
        in_memory.append(time.perf_counter() - start)
        del held
    warm_growth = _warm_peak_growth(
        lambda out: gateway.release(STUDY_UID, requester, Purpose.TREAT, destination=out),
        Path(config["out"]) / "warm",
    )
    profile = None
    if config.get("profile"):
        from bench.profiling import hot_spots

        def profiled() -> None:
            out = Path(config["out"]) / "profiled"
            gateway.release(STUDY_UID, requester, Purpose.TREAT, destination=out)
            shutil.rmtree(out)

        profile = hot_spots(profiled, 1)
    gateway.close()
    return {
        "profile": profile,
        "instances": len(store.instances(STUDY_UID)),
        "released_bytes": released_bytes,
        "durations_s": durations,
        "splits_s": splits,
        "sha256_only_s": sha_only,
        "rss_before_bytes": rss_before,
        "peak_rss_before_bytes": peak_before,
        "peak_rss_after_first_bytes": peak_after_first,
        "warm_peak_growth_bytes": warm_growth,
        "in_memory_durations_s": in_memory,
    }


def run(cache: Path, *, slices: int, runs: int, kind: str = "anvil") -> dict[str, Any]:
    """Generate (or reuse) the series, register it on a fresh chain, release it in a child.

    Returns:
        Study size, release throughput (MB/s, median over ``runs``), the time split, and the
        child's peak RSS increase with its ratio to the study size.
    """
    from bench.common import deploy_all
    from imaging_consent.chain import LocalChain
    from imaging_consent.consent import ConsentClient, Purpose
    from imaging_consent.contracts.deployment import sender_for
    from imaging_consent.dicom import SitePepper
    from imaging_consent.provenance import register_study
    from imaging_consent.stores import FolderStore

    start = time.perf_counter()
    folder = generate_series(cache / f"ct{slices}", slices)
    generate_s = time.perf_counter() - start
    files = sorted(folder.glob("*.dcm"))
    study_bytes = sum(f.stat().st_size for f in files)
    largest = max(f.stat().st_size for f in files)
    pepper_bytes = os.urandom(32)
    pepper = SitePepper(pepper_bytes)
    store = FolderStore(folder)
    with LocalChain(kind, accounts=10) as chain:  # type: ignore[arg-type]
        deployed = deploy_all(chain)
        people = deployed.actors
        start = time.perf_counter()
        register_study(
            deployed.suite,
            deployed.site_sender,
            store,
            pepper,
            STUDY_UID,
            people.patient.address,
        )
        register_s = time.perf_counter() - start
        ConsentClient(deployed.suite, sender_for(chain.session, people.patient)).grant(
            people.requester.address, None, [Purpose.TREAT], identified=True
        )
        config = {
            "rpc_url": chain.rpc_url,
            "chain_id": chain.chain_id,
            "manifest": deployed.suite.manifest.to_json(),
            "accounts": 10,
            "gateway_index": 2,
            "requester_index": 5,
            "folder": str(folder),
            "pepper": pepper_bytes.hex(),
            "runs": runs,
            "out": str(cache / "released"),
            "profile": True,
        }
        answer = subprocess.run(
            [sys.executable, "-m", "bench.large_study", "--child"],
            input=json.dumps(config),
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "PYTHONPATH": _pythonpath()},
        )
    if answer.returncode != 0:
        raise RuntimeError(f"large-study child failed:\n{answer.stderr[-3000:]}")
    child = json.loads(answer.stdout.strip().splitlines()[-1])
    median_s = statistics.median(child["durations_s"])
    first_split = child["splits_s"][0]
    first_total = child["durations_s"][0]
    # The release hashes each byte once (content protocol v2: pixels, and the file around them);
    # sha256 of every released file, in one thread, is the floor it is compared with.
    sha256 = child["sha256_only_s"]
    parts = {k: v / 1000 for k, v in instrument.split(first_split, first_total).items()}
    split = {
        "total (wall)": round(first_total, 3),
        "sha256 of every byte once, one thread (reference)": round(sha256, 3),
        "file reads (2 threads, summed)": round(parts["read_files"], 3),
        "structural walk without hashing (summed)": round(parts["walk"], 3),
        "sha256 inside the walk (summed)": round(parts["hashing_sha256"], 3),
        "staging writes and commit": round(parts["stage_write"], 3),
        "content tree (instance keys, leaves, root, proofs)": round(parts["merkle"], 3),
        "chain (checkAccess call, recordAccess transaction)": round(
            parts["check_access_call"] + parts["record_tx"], 3
        ),
    }
    peak_increase = child["peak_rss_after_first_bytes"] - child["rss_before_bytes"]
    mb = study_bytes / 1e6
    return {
        "slices": slices,
        "rows": ROWS,
        "columns": COLUMNS,
        "bits_allocated": 16,
        "study_bytes": study_bytes,
        "study_mb": round(mb, 1),
        "generate_s": round(generate_s, 2),
        "register_s": round(register_s, 3),
        "register_mb_per_s": round(mb / register_s, 1),
        "release_runs": runs,
        "release_s": [round(d, 3) for d in child["durations_s"]],
        "release_p50_s": round(median_s, 3),
        "release_mb_per_s": round(mb / median_s, 1),
        "release_in_memory_p50_s": round(statistics.median(child["in_memory_durations_s"]), 3),
        "release_in_memory_mb_per_s": round(
            mb / statistics.median(child["in_memory_durations_s"]), 1
        ),
        "time_split_first_release_s": split,
        "sha256_share": round(sha256 / first_total, 3),
        "peak_rss_increase_bytes": peak_increase,
        "peak_rss_increase_mb": round(peak_increase / 1e6, 1),
        "peak_rss_ratio_to_study": round(peak_increase / study_bytes, 2),
        "largest_instance_bytes": largest,
        "peak_rss_ratio_to_largest_instance": round(peak_increase / largest, 2),
        "warm_peak_rss_increase_mb": _mb(child["warm_peak_growth_bytes"]),
        "warm_peak_rss_ratio_to_largest_instance": (
            None
            if child["warm_peak_growth_bytes"] is None
            else round(child["warm_peak_growth_bytes"] / largest, 2)
        ),
        "child_rss_before_mb": round(child["rss_before_bytes"] / 1e6, 1),
        "released_bytes": child["released_bytes"],
        "method": "child process; peak = ru_maxrss after the first release minus RSS before it",
        "release_profile": child["profile"],
    }


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 1e6, 1)


def _pythonpath() -> str:
    root = Path(__file__).resolve().parent.parent
    parts = [str(root / "src"), str(root)]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


def main() -> None:
    """Child entry point: read the JSON config on stdin, print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", action="store_true", required=True)
    parser.parse_args()
    print(json.dumps(_child(json.loads(sys.stdin.read()))))


if __name__ == "__main__":
    main()
