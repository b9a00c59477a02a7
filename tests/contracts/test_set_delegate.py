"""ConsentRegistry.setDelegate: a patient appoints, replaces or removes a scoped delegate."""

from __future__ import annotations

import brownie
from brownie import ZERO_ADDRESS
from consent_values import ALL_STUDIES, DAY, STUDY_A, delegation_of, error, latest_time


def test_set_delegate_emits_delegate_set_with_new_id(consent, patient, delegate):
    expires_at = latest_time() + DAY

    tx = consent.setDelegate(delegate, STUDY_A, expires_at, {"from": patient})

    assert dict(tx.events["DelegateSet"]) == {
        "patient": patient,
        "delegate": delegate,
        "scope": "0x" + STUDY_A.hex(),
        "expiresAt": expires_at,
        "delegation": 1,
    }
    assert delegation_of(consent, patient, delegate) == (STUDY_A, expires_at, 1)


def test_set_delegate_each_call_creates_new_id(consent, patient, delegate, stranger):
    expires_at = latest_time() + DAY
    consent.setDelegate(delegate, ALL_STUDIES, expires_at, {"from": patient})
    consent.setDelegate(stranger, ALL_STUDIES, expires_at, {"from": patient})

    tx = consent.setDelegate(delegate, ALL_STUDIES, expires_at, {"from": patient})

    assert tx.events["DelegateSet"]["delegation"] == 3
    assert delegation_of(consent, patient, delegate)[2] == 3


def test_set_delegate_zero_expiry_removes(consent, patient, delegate):
    consent.setDelegate(delegate, ALL_STUDIES, latest_time() + DAY, {"from": patient})

    tx = consent.setDelegate(delegate, ALL_STUDIES, 0, {"from": patient})

    assert tx.events["DelegateSet"]["expiresAt"] == 0
    assert delegation_of(consent, patient, delegate) == (bytes(32), 0, 0)


def test_set_delegate_zero_address_reverts(consent, patient):
    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidDelegate", ZERO_ADDRESS)):
        consent.setDelegate(ZERO_ADDRESS, ALL_STUDIES, latest_time() + DAY, {"from": patient})


def test_set_delegate_self_reverts(consent, patient):
    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidDelegate", patient)):
        consent.setDelegate(patient, ALL_STUDIES, latest_time() + DAY, {"from": patient})


def test_set_delegate_past_expiry_reverts(consent, patient, delegate):
    expires_at = latest_time() - 1

    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidWindow", 0, expires_at)):
        consent.setDelegate(delegate, ALL_STUDIES, expires_at, {"from": patient})
