"""ConsentRegistry.getDelegation: the delegate's active delegation, zeros when none."""

from __future__ import annotations

from brownie import chain
from consent_values import DAY, STUDY_B, delegation_of, latest_time

NONE = (bytes(32), 0, 0)


def test_get_delegation_never_set_is_zeros(consent, patient, delegate):
    assert delegation_of(consent, patient, delegate) == NONE


def test_get_delegation_returns_active_one(consent, patient, delegate):
    expires_at = latest_time() + DAY
    consent.setDelegate(delegate, STUDY_B, expires_at, {"from": patient})

    assert delegation_of(consent, patient, delegate) == (STUDY_B, expires_at, 1)


def test_get_delegation_expired_is_zeros(consent, patient, delegate):
    expires_at = latest_time() + DAY
    consent.setDelegate(delegate, STUDY_B, expires_at, {"from": patient})

    chain.mine(timestamp=expires_at)

    assert delegation_of(consent, patient, delegate) == NONE
