"""Render bench/gas.json as one Markdown table (call, gas, ceiling) and keep its copies current.

The figures come from bench/gas.json (written by ``make gas``), the ceilings from
bench/gas_ceilings.json (also read by tests/contracts/test_gas*.py and bench/targets.py). The
table is never typed by hand: README.md and docs/ARCHITECTURE.md hold it between the markers
``<!-- gas-table:start -->`` and ``<!-- gas-table:end -->``.

Usage (plain Python, no brownie):
    python scripts/gas_table.py            print the table
    python scripts/gas_table.py --write    rewrite the table between the markers in each file
    python scripts/gas_table.py --check    exit 1 if a file's table is not the rendered one
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GAS_JSON = ROOT / "bench" / "gas.json"
CEILINGS_JSON = ROOT / "bench" / "gas_ceilings.json"
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "ARCHITECTURE.md")
START = "<!-- gas-table:start -->"
END = "<!-- gas-table:end -->"

# What each bench/gas.json key measures, in table order. A key not listed here is appended
# under its own name, so the table always shows every figure.
CALLS = {
    "grant": "`grant` (new grant)",
    "grant_update": "`grant` (replacing a grant)",
    "grant_for": "`grantFor` (by a delegate)",
    "grant_by_sig": "`grantBySig` (patient's first signature)",
    "revoke": "`revoke`",
    "revoke_for": "`revokeFor` (by a delegate)",
    "revoke_by_sig": "`revokeBySig`",
    "set_delegate": "`setDelegate`",
    "is_permitted": "`isPermitted` (execution, worst case)",
    "is_permitted_study": "`isPermitted` (execution, best case)",
    "register_study": "`registerStudy`",
    "update_content": "`updateContent`",
    "record_access": "`recordAccess` (permitted, identified)",
    "record_access_deidentified": "`recordAccess` (permitted, de-identified)",
    "record_access_denied": "`recordAccess` (denied)",
    "record_break_glass": "`recordBreakGlass`",
    "anchor_batch": "`anchorBatch` (1,000 records)",
    "anchor_batch_per_record_1000": "`anchorBatch` per record (1,000 records)",
}


def load_gas(path: Path = GAS_JSON) -> dict[str, int]:
    """The exact figures of the last ``make gas``, by key."""
    return {str(k): int(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


def load_ceilings(path: Path = CEILINGS_JSON) -> dict[str, int]:
    """The gas ceiling of each key that has one."""
    return {str(k): int(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


def render(gas: dict[str, int] | None = None, ceilings: dict[str, int] | None = None) -> str:
    """The Markdown table, ending with a newline."""
    gas = load_gas() if gas is None else gas
    ceilings = load_ceilings() if ceilings is None else ceilings
    unknown = sorted(ceilings.keys() - gas.keys())
    if unknown:
        raise ValueError(f"ceilings for keys that bench/gas.json lacks: {unknown}")
    keys = [k for k in CALLS if k in gas] + sorted(gas.keys() - CALLS.keys())
    lines = ["| call | gas | ceiling |", "|---|---:|---:|"]
    for key in keys:
        ceiling = f" {ceilings[key]:,} |" if key in ceilings else " |"
        lines.append(f"| {CALLS.get(key, f'`{key}`')} | {gas[key]:,} |{ceiling}")
    return "\n".join(lines) + "\n"


def section(text: str) -> str | None:
    """What stands between the markers in `text`, or None if the markers are absent."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start + len(START) : end].strip("\n") + "\n"


def splice(text: str, table: str) -> str:
    """`text` with the table between its markers replaced by `table`."""
    start, end = text.index(START) + len(START), text.index(END)
    return text[:start] + "\n" + table + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the tables in the docs")
    mode.add_argument("--check", action="store_true", help="exit 1 if a table is not current")
    args = parser.parse_args(argv)
    table = render()
    if not (args.write or args.check):
        sys.stdout.write(table)
        return 0
    stale = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        current = section(text)
        if current is None:
            print(f"{path.relative_to(ROOT)}: no gas-table markers", file=sys.stderr)
            return 1
        if current == table:
            continue
        if args.write:
            path.write_text(splice(text, table), encoding="utf-8")
            print(f"rewrote the gas table in {path.relative_to(ROOT)}")
        else:
            stale.append(str(path.relative_to(ROOT)))
    if stale:
        print(
            f"gas table out of date in {', '.join(stale)}: run python scripts/gas_table.py --write",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
