"""StudyRegistry.patientOf: the patient of a site's study, zero when unknown."""

from brownie import ZERO_ADDRESS


def test_patient_of_returns_patient(study_registry, registered, site, patient, study_key):
    assert study_registry.patientOf(site, study_key) == patient


def test_patient_of_returns_zero_for_unknown_study(
    study_registry, registered, other_site, study_key
):
    assert study_registry.patientOf(other_site, study_key) == ZERO_ADDRESS
