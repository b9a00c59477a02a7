"""StudyRegistry.updateContent: the registering site replaces content, as a new version."""

from eth_hash.auto import keccak

NEW_ROOT = keccak(b"new content root")


def test_update_content_replaces_root_and_count(
    study_registry, registered, site, patient, study_key
):
    study_registry.updateContent(study_key, NEW_ROOT, 4, {"from": site})

    patient_, site_, root, count, registered_at = study_registry.studyOf(study_key)
    assert (patient_, site_, root, count) == (patient, site, "0x" + NEW_ROOT.hex(), 4)
    assert registered_at == registered.timestamp


def test_update_content_emits_content_updated_per_version(
    study_registry, registered, site, study_key
):
    first = study_registry.updateContent(study_key, NEW_ROOT, 4, {"from": site})
    second = study_registry.updateContent(study_key, keccak(b"third"), 5, {"from": site})

    assert len(first.events) == 1
    assert first.events["ContentUpdated"] == {
        "studyKey": "0x" + study_key.hex(),
        "version": 2,
        "contentRoot": "0x" + NEW_ROOT.hex(),
        "instanceCount": 4,
    }
    assert second.events["ContentUpdated"]["version"] == 3
    assert study_registry.contentVersionOf(study_key) == 3


def test_update_content_rejects_other_site(
    study_registry, registered, custom_error, other_site, study_key
):
    with custom_error("StudyRegistryNotStudySite", study_key, other_site):
        study_registry.updateContent(study_key, NEW_ROOT, 4, {"from": other_site})


def test_update_content_rejects_non_site(
    study_registry, registered, custom_error, stranger, study_key
):
    role = study_registry.SITE_ROLE()

    with custom_error("AccessControlUnauthorizedAccount", stranger, bytes(role)):
        study_registry.updateContent(study_key, NEW_ROOT, 4, {"from": stranger})


def test_update_content_rejects_site_whose_role_was_revoked(
    study_registry, registered, custom_error, admin, site, study_key
):
    role = study_registry.SITE_ROLE()
    study_registry.revokeRole(role, site, {"from": admin})

    with custom_error("AccessControlUnauthorizedAccount", site, bytes(role)):
        study_registry.updateContent(study_key, NEW_ROOT, 4, {"from": site})


def test_update_content_rejects_unknown_study(study_registry, custom_error, site, study_key):
    with custom_error("StudyRegistryUnknownStudy", study_key):
        study_registry.updateContent(study_key, NEW_ROOT, 4, {"from": site})


def test_update_content_rejects_invalid_content(
    study_registry, registered, custom_error, site, study_key
):
    with custom_error("StudyRegistryInvalidContent", bytes(32), 4):
        study_registry.updateContent(study_key, bytes(32), 4, {"from": site})
    with custom_error("StudyRegistryInvalidContent", NEW_ROOT, 0):
        study_registry.updateContent(study_key, NEW_ROOT, 0, {"from": site})
