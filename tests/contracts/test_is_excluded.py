"""ConsentRegistry.isExcluded: whether a study is out of the patient's all-studies grants."""

from __future__ import annotations

from consent_values import STUDY_A


def test_is_excluded_false_by_default(consent, patient):
    assert consent.isExcluded(patient, STUDY_A) is False


def test_is_excluded_per_patient(consent, patient, stranger):
    consent.setExclusion(STUDY_A, True, {"from": patient})

    assert consent.isExcluded(patient, STUDY_A) is True
    assert consent.isExcluded(stranger, STUDY_A) is False
