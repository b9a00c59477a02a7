"""StudyRegistry.studyOf, patientOf and contentVersionOf: reading a registered study."""

from brownie import ZERO_ADDRESS
from eth_hash.auto import keccak


def test_study_of_returns_registered_study(study_registry, registered, site, patient, study_key):
    study = study_registry.studyOf(study_key)

    assert study.dict() == {
        "patient": patient,
        "site": site,
        "contentRoot": registered.events["StudyRegistered"]["contentRoot"],
        "instanceCount": 3,
        "registeredAt": registered.timestamp,
    }


def test_study_of_rejects_unknown_study(study_registry, custom_error, study_key):
    with custom_error("StudyRegistryUnknownStudy", study_key):
        study_registry.studyOf(study_key)


def test_patient_of_returns_patient(study_registry, registered, patient, study_key):
    assert study_registry.patientOf(study_key) == patient


def test_patient_of_returns_zero_for_unknown_study(study_registry):
    assert study_registry.patientOf(keccak(b"unknown")) == ZERO_ADDRESS


def test_content_version_of_starts_at_one(study_registry, registered, study_key):
    assert study_registry.contentVersionOf(study_key) == 1


def test_content_version_of_rejects_unknown_study(study_registry, custom_error, study_key):
    with custom_error("StudyRegistryUnknownStudy", study_key):
        study_registry.contentVersionOf(study_key)
