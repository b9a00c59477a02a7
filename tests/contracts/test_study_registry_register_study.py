"""StudyRegistry.registerStudy: a site registers a study under an opaque key."""

import brownie
from brownie import chain
from eth_hash.auto import keccak


def test_register_study_stores_study(study_registry, site, patient, study_key, content_root):
    tx = study_registry.registerStudy(study_key, patient, content_root, 3, {"from": site})

    patient_, site_, root, count, registered_at = study_registry.studyOf(study_key)
    assert (patient_, site_, root, count) == (patient, site, "0x" + content_root.hex(), 3)
    assert registered_at == chain[tx.block_number].timestamp
    assert study_registry.contentVersionOf(study_key) == 1
    assert study_registry.patientOf(study_key) == patient


def test_register_study_emits_study_registered(
    study_registry, site, patient, study_key, content_root
):
    tx = study_registry.registerStudy(study_key, patient, content_root, 3, {"from": site})

    assert len(tx.events) == 1
    assert tx.events["StudyRegistered"] == {
        "studyKey": "0x" + study_key.hex(),
        "patient": patient,
        "site": site,
        "contentRoot": "0x" + content_root.hex(),
        "instanceCount": 3,
    }


def test_register_study_rejects_non_site(
    study_registry, custom_error, stranger, patient, study_key, content_root
):
    role = study_registry.SITE_ROLE()

    with custom_error("AccessControlUnauthorizedAccount", stranger, bytes(role)):
        study_registry.registerStudy(study_key, patient, content_root, 3, {"from": stranger})


def test_register_study_rejects_existing_key(
    study_registry, registered, custom_error, other_site, patient, study_key, content_root
):
    with custom_error("StudyRegistryStudyExists", study_key):
        study_registry.registerStudy(study_key, patient, content_root, 1, {"from": other_site})


def test_register_study_rejects_zero_key(study_registry, custom_error, site, patient, content_root):
    with custom_error("StudyRegistryZeroStudyKey"):
        study_registry.registerStudy(bytes(32), patient, content_root, 1, {"from": site})


def test_register_study_rejects_zero_patient(
    study_registry, custom_error, site, study_key, content_root
):
    with custom_error("StudyRegistryZeroPatient"):
        study_registry.registerStudy(
            study_key, brownie.ZERO_ADDRESS, content_root, 1, {"from": site}
        )


def test_register_study_rejects_zero_root(study_registry, custom_error, site, patient, study_key):
    with custom_error("StudyRegistryInvalidContent", bytes(32), 1):
        study_registry.registerStudy(study_key, patient, bytes(32), 1, {"from": site})


def test_register_study_rejects_zero_instances(
    study_registry, custom_error, site, patient, study_key, content_root
):
    with custom_error("StudyRegistryInvalidContent", content_root, 0):
        study_registry.registerStudy(study_key, patient, content_root, 0, {"from": site})


def test_register_study_rejects_revoked_site(
    study_registry, custom_error, admin, site, patient, content_root
):
    role = study_registry.SITE_ROLE()
    study_registry.revokeRole(role, site, {"from": admin})

    with custom_error("AccessControlUnauthorizedAccount", site, bytes(role)):
        study_registry.registerStudy(keccak(b"another"), patient, content_root, 1, {"from": site})
