"""Timing statistics: medians and 95th percentiles over repeated runs, after a warm-up."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["percentile", "summarize", "time_calls", "time_interleaved"]


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``, linearly interpolated.

    Raises:
        ValueError: If ``samples`` is empty.
    """
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(seconds: list[float]) -> dict[str, Any]:
    """Median, p95, mean, min and max of ``seconds``, in milliseconds, and the sample count."""
    return {
        "n": len(seconds),
        "p50_ms": round(statistics.median(seconds) * 1000, 3),
        "p95_ms": round(percentile(seconds, 95) * 1000, 3),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 3),
        "min_ms": round(min(seconds) * 1000, 3),
        "max_ms": round(max(seconds) * 1000, 3),
    }


def time_calls(function: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Call ``function`` ``warmup`` times untimed, then ``runs`` times; return each duration."""
    for _ in range(warmup):
        function()
    durations: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return durations


def time_interleaved(
    functions: Mapping[str, Callable[[], object]], runs: int, warmup: int
) -> dict[str, list[float]]:
    """Time several functions round-robin: ``warmup`` untimed rounds, then ``runs`` rounds.

    Each round calls every function once, in turn, so a burst of load on a shared machine
    lands on all of them alike: their ratios are fairer than from back-to-back series.
    """
    for _ in range(warmup):
        for function in functions.values():
            function()
    durations: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(runs):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            durations[name].append(time.perf_counter() - start)
    return durations
