"""Gas of StudyRegistry and AccessLog: exactly the snapshot in bench/gas.json, within the ceilings.

The scenario lives in scripts/gas_provenance.py (`measure`), which `make gas` runs to write
bench/gas.json. The ceilings live in bench/gas_ceilings.json, shared with scripts/gas_table.py
and bench/targets.py.
"""

import pytest

from scripts.gas_provenance import measure
from scripts.gas_table import load_ceilings, load_gas

KEYS = (
    "register_study",
    "update_content",
    "record_access",
    "record_access_deidentified",
    "record_access_denied",
    "record_break_glass",
    "anchor_batch",
    "anchor_batch_per_record_1000",
)
SNAPSHOT = {key: gas for key, gas in load_gas().items() if key in KEYS}
TARGETS = {key: ceiling for key, ceiling in load_ceilings().items() if key in KEYS}


@pytest.fixture(scope="module")
def gas(accounts):
    return measure(accounts)


def test_gas_figures_are_exact(gas):
    assert gas == SNAPSHOT


def test_gas_targets_are_set():
    assert set(TARGETS) == {"register_study", "record_access", "anchor_batch"}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_gas_meets_target(gas, name):
    assert gas[name] <= TARGETS[name]
