"""StudyRegistry.updateContent: a site replaces the content root of its own study."""

from eth_hash.auto import keccak

NEW_ROOT = keccak(b"new root")


def test_update_content_replaces_root_and_count(study_registry, registered, site, study_key):
    study_registry.updateContent(study_key, NEW_ROOT, 5, {"from": site})

    assert tuple(study_registry.studyOf(site, study_key)[1:3]) == ("0x" + NEW_ROOT.hex(), 5)
    assert study_registry.contentVersionOf(site, study_key) == 2


def test_update_content_emits_content_updated_per_version(
    study_registry, registered, site, study_key
):
    study_registry.updateContent(study_key, NEW_ROOT, 5, {"from": site})

    tx = study_registry.updateContent(study_key, keccak(b"third"), 6, {"from": site})

    assert dict(tx.events["ContentUpdated"]) == {
        "site": site,
        "studyKey": "0x" + study_key.hex(),
        "version": 3,
        "contentRoot": "0x" + keccak(b"third").hex(),
        "instanceCount": 6,
    }


def test_update_content_other_site_cannot_touch_it(
    study_registry, registered, custom_error, site, other_site, study_key, content_root
):
    with custom_error("StudyRegistryUnknownStudy", other_site, study_key):
        study_registry.updateContent(study_key, NEW_ROOT, 5, {"from": other_site})

    assert study_registry.studyOf(site, study_key)[1] == "0x" + content_root.hex()


def test_update_content_rejects_non_site(
    study_registry, registered, custom_error, stranger, study_key
):
    with custom_error(
        "AccessControlUnauthorizedAccount", stranger, bytes(study_registry.SITE_ROLE())
    ):
        study_registry.updateContent(study_key, NEW_ROOT, 5, {"from": stranger})


def test_update_content_rejects_invalid_content(
    study_registry, registered, custom_error, site, study_key
):
    with custom_error("StudyRegistryInvalidContent", NEW_ROOT, 0):
        study_registry.updateContent(study_key, NEW_ROOT, 0, {"from": site})
