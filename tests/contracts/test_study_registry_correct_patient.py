"""StudyRegistry.correctPatient: the admin corrects the patient of a wrongly registered study."""

from brownie import ZERO_ADDRESS


def test_correct_patient_emits_study_corrected(
    study_registry, registered, admin, site, patient, stranger, study_key
):
    tx = study_registry.correctPatient(site, study_key, stranger, {"from": admin})

    assert dict(tx.events["StudyCorrected"]) == {
        "studyKey": "0x" + study_key.hex(),
        "oldPatient": patient,
        "newPatient": stranger,
        "site": site,
    }
    assert study_registry.patientOf(site, study_key) == stranger
    assert study_registry.contentVersionOf(site, study_key) == 1


def test_correct_patient_by_site_reverts(
    study_registry, registered, custom_error, site, stranger, study_key
):
    with custom_error("AccessControlUnauthorizedAccount", site, bytes(32)):
        study_registry.correctPatient(site, study_key, stranger, {"from": site})


def test_correct_patient_unknown_study_reverts(
    study_registry, custom_error, admin, site, stranger, study_key
):
    with custom_error("StudyRegistryUnknownStudy", site, study_key):
        study_registry.correctPatient(site, study_key, stranger, {"from": admin})


def test_correct_patient_zero_patient_reverts(
    study_registry, registered, custom_error, admin, site, study_key
):
    with custom_error("StudyRegistryZeroPatient"):
        study_registry.correctPatient(site, study_key, ZERO_ADDRESS, {"from": admin})
