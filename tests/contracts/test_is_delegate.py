"""ConsentRegistry.isDelegate: who may act for a patient."""

from __future__ import annotations


def test_is_delegate_false_by_default(consent, patient, delegate):
    assert consent.isDelegate(patient, delegate) is False


def test_is_delegate_true_after_appointment(consent, patient, delegate):
    consent.setDelegate(delegate, True, {"from": patient})

    result = consent.isDelegate(patient, delegate)

    assert result is True


def test_is_delegate_not_symmetric(consent, patient, delegate):
    consent.setDelegate(delegate, True, {"from": patient})

    result = consent.isDelegate(delegate, patient)

    assert result is False


def test_is_delegate_false_after_removal(consent, patient, delegate):
    consent.setDelegate(delegate, True, {"from": patient})
    consent.setDelegate(delegate, False, {"from": patient})

    result = consent.isDelegate(patient, delegate)

    assert result is False
