"""Gas of ConsentRegistry's main calls: exactly the snapshot in bench/gas.json, within the ceilings.

The scenario and the method live in scripts/gas.py (`consent_registry_gas`), which also writes
bench/gas.json (`make gas`); this test measures again and compares. The ceilings live in
bench/gas_ceilings.json, shared with scripts/gas_table.py and bench/targets.py.
"""

from __future__ import annotations

import pytest

from scripts.gas import consent_registry_gas
from scripts.gas_table import load_ceilings, load_gas

KEYS = (
    "cancel_by_sig",
    "cancel_signatures",
    "grant",
    "grant_by_sig",  # a patient's first signed grant: its grant slot is new
    "grant_for",
    "grant_update",
    "is_permitted",  # execution only: study tombstone, exclusion and all-studies slot read
    "is_permitted_delegated",  # as is_permitted, plus the delegation of a delegate's grant
    "is_permitted_study",
    "revoke",  # a tombstone overwrites the grant: no refund
    "revoke_by_sig",
    "revoke_for",
    "set_delegate",
    "set_exclusion",
)
SNAPSHOT = {key: gas for key, gas in load_gas().items() if key in KEYS}
TARGETS = {key: ceiling for key, ceiling in load_ceilings().items() if key in KEYS}


@pytest.fixture(scope="module")
def measured():
    return consent_registry_gas()


def test_gas_consent_registry_exact(measured):
    assert measured == SNAPSHOT


def test_gas_consent_registry_targets_are_set():
    assert set(TARGETS) == {"grant", "grant_by_sig", "is_permitted", "revoke"}


@pytest.mark.parametrize("key", sorted(TARGETS))
def test_gas_consent_registry_within_target(measured, key):
    assert measured[key] <= TARGETS[key]
