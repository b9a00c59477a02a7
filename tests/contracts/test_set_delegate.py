"""ConsentRegistry.setDelegate: the patient appoints or removes a guardian."""

from __future__ import annotations

import brownie
from brownie import ZERO_ADDRESS
from consent_values import error


def test_set_delegate_appoint_emits_delegate_set(consent, patient, delegate):
    tx = consent.setDelegate(delegate, True, {"from": patient})

    assert len(tx.events) == 1
    assert dict(tx.events["DelegateSet"]) == {
        "patient": patient,
        "delegate": delegate,
        "allowed": True,
    }
    assert consent.isDelegate(patient, delegate) is True


def test_set_delegate_remove_emits_delegate_set(consent, patient, delegate):
    consent.setDelegate(delegate, True, {"from": patient})

    tx = consent.setDelegate(delegate, False, {"from": patient})

    assert dict(tx.events["DelegateSet"]) == {
        "patient": patient,
        "delegate": delegate,
        "allowed": False,
    }
    assert consent.isDelegate(patient, delegate) is False


def test_set_delegate_only_for_caller(consent, patient, delegate, stranger):
    consent.setDelegate(delegate, True, {"from": stranger})

    assert consent.isDelegate(stranger, delegate) is True
    assert consent.isDelegate(patient, delegate) is False


def test_set_delegate_zero_address_reverts(consent, patient):
    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidDelegate", ZERO_ADDRESS)):
        consent.setDelegate(ZERO_ADDRESS, True, {"from": patient})


def test_set_delegate_self_reverts(consent, patient):
    with brownie.reverts(revert_pattern=error("ConsentRegistryInvalidDelegate", patient)):
        consent.setDelegate(patient, True, {"from": patient})
