"""Gas of ConsentRegistry's main calls: exact figures (gas is deterministic) and the targets.

The scenario and the method live in scripts/gas.py (`consent_registry_gas`), which also writes
bench/gas.json, so the figures here and there are the same numbers.
"""

from __future__ import annotations

import pytest

from scripts.gas import consent_registry_gas

EXPECTED = {
    "grant": 49_246,
    "grant_by_sig": 78_341,
    "grant_for": 52_005,
    "grant_update": 32_134,
    "is_permitted": 6_184,
    "is_permitted_study": 3_516,
    "revoke": 24_960,
    "revoke_by_sig": 36_758,
    "revoke_for": 27_698,
    "set_delegate": 46_141,
}
TARGETS = {
    "grant": 50_000,
    "revoke": 26_000,
    "grant_by_sig": 80_000,  # a patient's first signed grant: its nonce slot is new
    "is_permitted": 8_000,  # execution only, the worst case (both slots read)
}


@pytest.fixture(scope="module")
def measured():
    return consent_registry_gas()


def test_gas_consent_registry_exact(measured):
    assert measured == EXPECTED


@pytest.mark.parametrize("key", sorted(TARGETS))
def test_gas_consent_registry_within_target(measured, key):
    assert measured[key] <= TARGETS[key]
