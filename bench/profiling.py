"""cProfile hot spots, as plain data for results.json."""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from typing import Any

__all__ = ["hot_spots"]


def hot_spots(
    function: Callable[[], object], runs: int, top: int = 12, focus: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Profile ``runs`` calls of ``function``.

    ``focus`` names functions (by bare name) whose cumulative time per call is reported under
    ``focus_cumulative_ms``: the parts of a call, as the profiler saw them (profiling slows
    Python code more than waiting, so read them as shares).

    Returns:
        ``per_call_ms`` (profiled, so slower than unprofiled), ``by_package``: own time per
        call summed by top-level package (web3, eth_keys, pydicom, socket I/O, ...), and
        ``functions``: the ``top`` functions by own time, each with ``calls``, ``own_ms`` and
        ``cumulative_ms`` per profiled call of ``function``.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        function()
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows: list[dict[str, Any]] = []
    entries = stats.stats  # type: ignore[attr-defined]
    for (path, line, name), (_cc, calls, own, cumulative, _callers) in entries.items():
        rows.append(
            {
                "function": f"{_short(path)}:{line}({name})",
                "calls": calls,
                "own_ms": round(own * 1000 / runs, 3),
                "cumulative_ms": round(cumulative * 1000 / runs, 3),
            }
        )
    rows.sort(key=lambda row: row["own_ms"], reverse=True)
    packages: dict[str, float] = {}
    for (path, _line, name), (_cc, _calls, own, _cumulative, _callers) in entries.items():
        package = _package(path, name)
        packages[package] = packages.get(package, 0.0) + own * 1000 / runs
    total = sum(packages.values())
    focused: dict[str, float] = {}
    for (_path, _line, name), (_cc, _calls, _own, cumulative, _callers) in entries.items():
        if name in focus:
            focused[name] = round(focused.get(name, 0.0) + cumulative * 1000 / runs, 3)
    return {
        "per_call_ms": round(total, 3),
        "focus_cumulative_ms": focused,
        "by_package": {
            k: round(v, 3) for k, v in sorted(packages.items(), key=lambda kv: -kv[1]) if v >= 0.05
        },
        "functions": rows[:top],
    }


def _package(path: str, name: str) -> str:
    if path == "~":
        if "socket" in name or "select" in name or "poll" in name:
            return "socket I/O (waiting for the node)"
        if "sqlite3" in name or "execute" in name:
            return "sqlite3"
        return "builtins"
    for marker in ("site-packages/", "src/"):
        if marker in path:
            return path.split(marker, 1)[1].split("/", 1)[0].removesuffix(".py")
    return "stdlib"


def _short(path: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path
