"""The Markdown summary (bench/summary.md), also spliced into bench/README.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["render", "splice_readme"]

START = "<!-- summary:start -->"
END = "<!-- summary:end -->"


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if digits else f"{value:,.0f}"
    return str(value)


def _verdict(passed: bool | None) -> str:
    return {True: "pass", False: "**FAIL**", None: "not run"}[passed]


def render(results: dict[str, Any]) -> str:
    """The summary tables of ``results`` as Markdown."""
    meta = results["meta"]
    lines = [
        "## Benchmark summary",
        "",
        f"Run {meta['started_at']} on {meta['cpus']} CPUs (load average at start "
        f"{meta['load_average_at_start'][0]:.2f}), {meta.get('duration_s', 0):.0f} s in all"
        + (", **quick smoke run: figures mean nothing**" if meta["quick"] else "")
        + f". Chains: {meta['versions'].get('ganache', '?')}; {meta['versions'].get('anvil', '?')}."
        " Timings are medians (p50) and p95 after a warm-up; the machine is shared, so compare "
        "ratios within a run. Full data: `bench/results.json`.",
        "",
        "### Targets",
        "",
        "| Target | Limit | Measured | Verdict |",
        "|---|---:|---:|---|",
    ]
    for row in results["targets"]:
        digits = 2 if row["unit"] in ("ms", "share", "x", "%", "requests") else 0
        bound = "\u2265" if row.get("sense") == "min" else "\u2264"
        lines.append(
            f"| {row['target']} | {bound} {_n(float(row['limit']), digits)} {row['unit']} | "
            f"{_n(row['value'], digits)} | {_verdict(row['passed'])} |"
        )
    if "gas_detail" in results:
        copied = results.get("gas", {})
        lines += [
            "",
            f"### Gas ({results['gas_source']['chain']}; floor from the gas schedule, see below)",
            "",
            "| Operation | Gas | Floor | Gas / floor | bench/gas.json |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in results["gas_detail"].items():
            lines.append(
                f"| {name} | {_n(row['gas'])} | {_n(row['floor'])} | {row['ratio']:.3f} | "
                f"{_n(copied.get(name))} |"
            )
        lines += [
            "",
            "Batched logging, amortised gas per access record: "
            + ", ".join(
                f"{size}: {_n(v['per_record'], 1)}"
                for size, v in results["gas_batched"]["sizes"].items()
            )
            + f" (sync `recordAccess`: {_n(results['gas_batched']['sync_record_access'])}).",
            "",
            "| Earlier design | Their gas | Our operation | Our gas | Ours / theirs |",
            "|---|---:|---|---:|---:|",
        ]
        for peer in results["gas_peers"]:
            theirs = _n(peer["gas"]) + (
                f"\u2013{_n(peer['gas_high'])}" if "gas_high" in peer else ""
            )
            approx = "~" if peer.get("approximate") else ""
            lines.append(
                f"| {peer['what']} | {approx}{theirs} | {peer['ours']} | "
                f"{_n(peer['ours_gas'], 1)} | {peer['ratio']:.4f} |"
            )
    if "gas_growth" in results:
        growth = results["gas_growth"]
        lines += [
            "",
            "Gas growth (Anvil): "
            + "; ".join(
                f"{name} "
                + ", ".join(f"#{k}: {_n(v)}" for k, v in growth[name]["gas"].items())
                + f" (spread {growth[name]['max_spread'] * 100:.3f}%)"
                for name in ("grant", "record_access")
            )
            + ".",
        ]
    if "latency" in results:
        lines += [
            "",
            "### Latency and throughput",
            "",
            "| Chain | is_permitted p50 / p95 ms | same call: w3.eth.call / bare HTTP p50 ms "
            "| HTTP req. per check | release sync p50 / p95 "
            "ms | release batched p50 / p95 ms | store baseline p50 ms | overhead sync / "
            "batched | sequential tx/s | 8-thread releases/s sync / batched |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for kind, row in results["latency"].items():
            ratio = row["release_overhead_ratio"]
            lines.append(
                f"| {kind} | {row['is_permitted']['p50_ms']:.2f} / "
                f"{row['is_permitted']['p95_ms']:.2f} | "
                f"{row['is_permitted_w3_eth_call']['p50_ms']:.2f} / "
                f"{row['is_permitted_raw_http']['p50_ms']:.2f} | "
                f"{row['is_permitted_http_requests']:.0f} | "
                f"{row['release_sync']['p50_ms']:.1f} / {row['release_sync']['p95_ms']:.1f} | "
                f"{row['release_batched']['p50_ms']:.1f} / "
                f"{row['release_batched']['p95_ms']:.1f} | "
                f"{row['baseline_store_read']['p50_ms']:.2f} | {ratio['sync']:.1f}\u00d7 / "
                f"{ratio['batched']:.1f}\u00d7 | {row['sequential_tx_per_s']:.0f} | "
                f"{row['concurrent_releases_per_s_sync']:.0f} / "
                f"{row['concurrent_releases_per_s_batched']:.0f} |"
            )
    hot = {kind: row["hot_path"] for kind, row in results.get("latency", {}).items()}
    if hot:
        lines += [
            "",
            f"### Hot paths against their floors (limit {next(iter(hot.values()))['limit']}\u00d7)",
            "",
            "| Chain | is_permitted p50 ms | bare HTTP eth_call p50 ms | ratio | release batched "
            "p50 ms | floor ms (read + eth_call + sha256 + outbox) | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for kind, row in results["latency"].items():
            floor = row["release_batched_floor"]
            parts = floor["floor_parts"]
            lines.append(
                f"| {kind} | {row['is_permitted']['p50_ms']:.3f} | "
                f"{row['is_permitted_raw_http']['p50_ms']:.3f} | "
                f"{row['hot_path']['is_permitted_ratio']:.2f} | "
                f"{row['release_batched']['p50_ms']:.3f} | {floor['floor_ms']:.3f} ("
                + " + ".join(f"{parts[name]['p50_ms']:.3f}" for name in parts)
                + f") | {row['hot_path']['release_batched_ratio']:.2f} |"
            )
        labels = list(next(iter(hot.values()))["release_batched_split_ms"])
        lines += [
            "",
            "Where a batched release's time goes (ms per release, timers around each part):",
            "",
            "| Part | " + " | ".join(hot) + " |",
            "|---|" + "---:|" * len(hot),
        ]
        for label in labels:
            lines.append(
                f"| {label} | "
                + " | ".join(f"{h['release_batched_split_ms'][label]:.3f}" for h in hot.values())
                + " |"
            )
    if "large_study" in results:
        big = results["large_study"]
        split = big["time_split_first_release_s"]
        lines += [
            "",
            f"### Large study ({big['slices']} slices of {big['rows']}\u00d7{big['columns']}, "
            f"16 bits, {big['study_mb']} MB)",
            "",
            f"Release (sync, identified, content protocol v2, streamed into a folder) p50 "
            f"{big['release_p50_s']} s = **{big['release_mb_per_s']} MB/s**; registration "
            f"{big['register_mb_per_s']} MB/s. Peak RSS increase {big['peak_rss_increase_mb']} MB "
            f"= {big['peak_rss_ratio_to_largest_instance']}\u00d7 the largest instance "
            f"({big['peak_rss_ratio_to_study']}\u00d7 the study) on the first, cold release; "
            f"**{big['warm_peak_rss_ratio_to_largest_instance']}\u00d7** the largest instance "
            f"({big['warm_peak_rss_increase_mb']} MB) on a warm one. The same release held in "
            f"memory instead (no files written): {big['release_in_memory_mb_per_s']} MB/s. "
            f"sha256 of every released byte, once, in one thread: "
            f"{big['sha256_share'] * 100:.0f}% of the release's wall time.",
            "",
            "| Part of the first release | Seconds |",
            "|---|---:|",
        ]
        lines += [f"| {part} | {seconds} |" for part, seconds in split.items()]
    if "scale" in results:
        sc = results["scale"]
        lines += [
            "",
            "### Scale (Anvil): rebuilding one patient's history from events",
            "",
            "| Grants and records | grants_of p50 ms | access_history p50 ms | runs | "
            "setup s | µs per event (fetch + decode) |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for size, stage in sc["stages"].items():
            per_event = stage.get("grants_of_parts", {}).get("per_event_fetch_decode_us")
            lines.append(
                f"| {int(size):,} | {stage['grants_of']['p50_ms']:,.0f} | "
                f"{stage['access_history']['p50_ms']:,.0f} | {stage['repeats']} | "
                f"{stage['setup_s']} | {_n(per_event, 0)} |"
            )
        exps = sc["growth_exponent"]
        lines += [
            "",
            f"Growth exponents (1.0 = linear): grants_of {exps['grants_of']}, access_history "
            f"{exps['access_history']}. Setup of all transactions: {sc['setup_total_s']} s.",
        ]
    if "dicomweb" in results:
        lines += _dicomweb(results["dicomweb"])
    if "index" in results:
        lines += _index(results["index"])
    return "\n".join(lines) + "\n"


_SYNC_PARTS = ("fetch_logs", "fetch_headers", "decode", "store", "other")


def _index(ix: dict[str, Any]) -> list[str]:
    """The audit index section: first-sync throughput, the query by size, index against chain."""
    built = ix["chain"]
    lines = [
        "",
        "### Audit index",
        "",
        f"First sync from Anvil of {_n(built['events'])} events in {_n(built['blocks'])} blocks "
        "(per patient: a study, two grants, a revocation, 76 releases and 20 refusals; one "
        f"heavy patient with {_n(built['heavy_patient_records'])} records), end to end:",
        "",
        "| Database | Events | Seconds | Events/s (each run) | Pages: events/s p50 (min\u2013max) "
        "| µs per event: " + " / ".join(_SYNC_PARTS) + " | Bytes per event |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in ix["throughput"].items():
        if "skipped" in row:
            lines.append(f"| {name} | {row['skipped']} | | | | | |")
            continue
        each = ", ".join(_n(v) for v in row["events_per_s_each_run"])
        parts = " / ".join(f"{row['us_per_event'].get(p, 0):.0f}" for p in _SYNC_PARTS)
        page = row["page_events_per_s"]
        lines.append(
            f"| {name} | {_n(row['events'])} | {row['seconds']:.1f} | "
            f"**{_n(row['events_per_s'])}** ({each}) | {row['pages']}: {_n(page['p50'])} "
            f"({_n(page['min'])}\u2013{_n(page['max'])}) | {parts} | "
            f"{_n(row['bytes_per_event'])} |"
        )
    query = ix["query"]
    lines += [
        "",
        "A patient's audit (`AuditIndex.accesses(patient=...)` and `grant_history`, what "
        f"`Indexer.trail` reads; {query['per_patient']} records and two grants per patient, "
        "random patients), on a SQLite index filled to each size:",
        "",
        "| Access records | audit p50 / p95 ms | accesses p50 ms | grant_history p50 ms | "
        "File bytes per record |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size, stage in query["stages"].items():
        lines.append(
            f"| {int(size):,} | {stage['audit']['p50_ms']:.2f} / {stage['audit']['p95_ms']:.2f} | "
            f"{stage['accesses']['p50_ms']:.2f} | {stage['grant_history']['p50_ms']:.2f} | "
            f"{_n(stage['bytes_per_record'])} |"
        )
    against = ix["against_chain"]
    lines += [
        "",
        f"p50 at the largest size / the smallest: {query['growth_ratio']:.2f}\u00d7.",
        "",
        "One patient's trail on the chain of the first sync, from the index (`Indexer.trail`) "
        "and from the chain (`trail_from_chain`), same run:",
        "",
        "| Patient | Access records | Index p50 ms | Chain p50 ms | Chain / index | "
        "First sync / one chain read |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("typical", "heavy"):
        row = against[name]
        lines.append(
            f"| {name} | {_n(row['access_records'])} | {row['index_trail']['p50_ms']:.1f} | "
            f"{row['chain_trail']['p50_ms']:,.0f} | {row['chain_over_index']:,.1f}\u00d7 | "
            f"{row['first_sync_over_chain_trail']:,.2f}\u00d7 |"
        )
    return lines


def _dicomweb(dw: dict[str, Any]) -> list[str]:
    """The DICOMweb section: retrieval against Orthanc, concurrency, the large study."""
    big = dw["large_study"]

    def records(mode: str) -> str:
        r = dw[f"records_{mode}"]
        return (
            f"{r['requests']} requests, {r['lost']} lost, {r['duplicated']} duplicated, "
            f"{r['anchored_twice']} batches anchored twice"
        )

    return [
        "",
        "### DICOMweb service in front of Orthanc (Anvil)",
        "",
        f"WADO-RS `retrieve_study` of CT_small with `dicomweb-client`, {dw['orthanc']['n']} "
        "interleaved rounds:",
        "",
        "| Path | p50 ms | p95 ms | p50 / Orthanc |",
        "|---|---:|---:|---:|",
        f"| Orthanc's own DICOMweb | {dw['orthanc']['p50_ms']:.2f} | "
        f"{dw['orthanc']['p95_ms']:.2f} | 1.00 |",
        f"| gateway, batched logging | {dw['gateway_batched']['p50_ms']:.2f} | "
        f"{dw['gateway_batched']['p95_ms']:.2f} | {dw['ratio_batched']:.2f} |",
        f"| gateway, sync logging | {dw['gateway_sync']['p50_ms']:.2f} | "
        f"{dw['gateway_sync']['p95_ms']:.2f} | {dw['ratio_sync']:.2f} |",
        "",
        f"{dw['concurrent_clients']} concurrent clients: "
        f"{dw['concurrent_releases_per_s_batched']:.0f} releases/s batched "
        f"({records('batched')}), {dw['concurrent_releases_per_s_sync']:.0f} releases/s sync "
        f"({records('sync')}).",
        "",
        f"Large study ({big['slices']} slices, {big['study_mb']} MB) through `imaging-consent "
        f"serve` in a child process: {big['warm_seconds']} s warm ({big['mb_per_s_warm']} MB/s); "
        f"server peak memory growth {big['warm_peak_rss_growth_mb']} MB = "
        f"**{big['warm_peak_rss_ratio_to_largest_instance']}\u00d7** the largest instance "
        f"(first retrieval: {big['cold_peak_rss_growth_mb']} MB = "
        f"{big['cold_peak_rss_ratio_to_largest_instance']}\u00d7).",
    ]


def splice_readme(readme: Path, summary: str) -> None:
    """Replace the text between the summary markers of ``readme`` with ``summary``."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    body = summary.replace("## Benchmark summary", "## Latest results", 1)
    text = pattern.sub(lambda _: f"{START}\n{body}\n{END}", text)
    readme.write_text(text, encoding="utf-8")
