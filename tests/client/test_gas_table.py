"""The gas tables in README.md and docs/ARCHITECTURE.md are what scripts/gas_table.py renders."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gas_table() -> ModuleType:
    # scripts/ is not a package on the client tests' path; load the script by file.
    spec = importlib.util.spec_from_file_location("gas_table", ROOT / "scripts" / "gas_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gas_table = _gas_table()


@pytest.mark.parametrize("document", gas_table.DOCUMENTS, ids=lambda p: p.name)
def test_gas_table_is_current(document):
    text = document.read_text(encoding="utf-8")
    current = gas_table.section(text)
    if current is None:
        pytest.skip(f"no gas-table markers in {document.name}")

    rendered = gas_table.render()

    assert current == rendered, "run `python scripts/gas_table.py --write` (or `make gas`)"


def test_gas_table_has_every_key_and_ceiling():
    gas, ceilings = gas_table.load_gas(), gas_table.load_ceilings()

    rows = gas_table.render(gas, ceilings).splitlines()[2:]

    assert len(rows) == len(gas)
    assert ceilings.keys() <= gas.keys()
    assert all(f"| {ceiling:,} |" in "\n".join(rows) for ceiling in ceilings.values())


def test_gas_table_splice_replaces_only_between_markers():
    text = f"before\n{gas_table.START}\nold\n{gas_table.END}\nafter\n"

    spliced = gas_table.splice(text, "| new |\n")

    assert spliced == f"before\n{gas_table.START}\n| new |\n{gas_table.END}\nafter\n"
    assert gas_table.section(spliced) == "| new |\n"
