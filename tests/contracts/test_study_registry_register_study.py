"""StudyRegistry.registerStudy: a site registers a study in its own namespace."""

import brownie
from brownie import ZERO_ADDRESS
from eth_hash.auto import keccak


def test_register_study_stores_study(
    study_registry, registered, site, patient, study_key, content_root
):
    assert tuple(study_registry.studyOf(site, study_key)) == (
        patient,
        "0x" + content_root.hex(),
        3,
        registered.timestamp,
    )
    assert study_registry.contentVersionOf(site, study_key) == 1


def test_register_study_emits_study_registered(
    study_registry, site, patient, study_key, content_root
):
    tx = study_registry.registerStudy(study_key, patient, content_root, 3, {"from": site})

    assert len(tx.events) == 1
    assert dict(tx.events["StudyRegistered"]) == {
        "site": site,
        "studyKey": "0x" + study_key.hex(),
        "patient": patient,
        "contentRoot": "0x" + content_root.hex(),
        "instanceCount": 3,
    }


def test_register_study_same_key_by_other_site_gets_own_entry(
    study_registry, registered, site, other_site, patient, stranger, study_key, content_root
):
    # Attack (v1: first registration wins, so copying a key from the mempool hijacked the study):
    # another site registers the same key for a patient of its choosing.
    study_registry.registerStudy(study_key, stranger, keccak(b"fake"), 1, {"from": other_site})

    assert study_registry.patientOf(site, study_key) == patient
    assert study_registry.patientOf(other_site, study_key) == stranger
    assert study_registry.studyOf(site, study_key)[1] == "0x" + content_root.hex()


def test_register_study_rejects_non_site(
    study_registry, custom_error, stranger, patient, study_key, content_root
):
    with custom_error(
        "AccessControlUnauthorizedAccount", stranger, bytes(study_registry.SITE_ROLE())
    ):
        study_registry.registerStudy(study_key, patient, content_root, 3, {"from": stranger})


def test_register_study_rejects_existing_key_in_own_namespace(
    study_registry, registered, custom_error, site, patient, study_key, content_root
):
    with custom_error("StudyRegistryStudyExists", site, study_key):
        study_registry.registerStudy(study_key, patient, content_root, 3, {"from": site})


def test_register_study_rejects_zero_key(study_registry, custom_error, site, patient, content_root):
    with custom_error("StudyRegistryZeroStudyKey"):
        study_registry.registerStudy(bytes(32), patient, content_root, 3, {"from": site})


def test_register_study_rejects_zero_patient(
    study_registry, custom_error, site, study_key, content_root
):
    with custom_error("StudyRegistryZeroPatient"):
        study_registry.registerStudy(study_key, ZERO_ADDRESS, content_root, 3, {"from": site})


def test_register_study_rejects_zero_root(study_registry, custom_error, site, patient, study_key):
    with custom_error("StudyRegistryInvalidContent", bytes(32), 3):
        study_registry.registerStudy(study_key, patient, bytes(32), 3, {"from": site})


def test_register_study_rejects_zero_instances(
    study_registry, custom_error, site, patient, study_key, content_root
):
    with custom_error("StudyRegistryInvalidContent", content_root, 0):
        study_registry.registerStudy(study_key, patient, content_root, 0, {"from": site})


def test_register_study_rejects_revoked_site(
    study_registry, admin, site, patient, study_key, content_root
):
    study_registry.revokeRole(study_registry.SITE_ROLE(), site, {"from": admin})

    with brownie.reverts(revert_pattern=r"AccessControlUnauthorizedAccount: .*"):
        study_registry.registerStudy(study_key, patient, content_root, 3, {"from": site})
