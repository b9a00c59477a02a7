"""StudyRegistry.retireStudy: the admin deletes a wrongly registered study."""

from brownie import ZERO_ADDRESS


def test_retire_study_emits_study_retired_and_deletes(
    study_registry, registered, admin, site, patient, study_key
):
    tx = study_registry.retireStudy(site, study_key, {"from": admin})

    assert dict(tx.events["StudyRetired"]) == {
        "studyKey": "0x" + study_key.hex(),
        "patient": patient,
        "site": site,
    }
    assert study_registry.patientOf(site, study_key) == ZERO_ADDRESS


def test_retire_study_lets_site_register_again(
    study_registry, registered, admin, site, stranger, study_key, content_root
):
    study_registry.retireStudy(site, study_key, {"from": admin})

    study_registry.registerStudy(study_key, stranger, content_root, 1, {"from": site})

    assert study_registry.patientOf(site, study_key) == stranger


def test_retire_study_by_stranger_reverts(
    study_registry, registered, custom_error, stranger, site, study_key
):
    with custom_error("AccessControlUnauthorizedAccount", stranger, bytes(32)):
        study_registry.retireStudy(site, study_key, {"from": stranger})


def test_retire_study_unknown_reverts(study_registry, custom_error, admin, site, study_key):
    with custom_error("StudyRegistryUnknownStudy", site, study_key):
        study_registry.retireStudy(site, study_key, {"from": admin})
