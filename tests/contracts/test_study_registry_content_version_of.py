"""StudyRegistry.contentVersionOf: 1 at registration, +1 per update."""


def test_content_version_of_starts_at_one(study_registry, registered, site, study_key):
    assert study_registry.contentVersionOf(site, study_key) == 1


def test_content_version_of_rejects_unknown_study(study_registry, custom_error, site, study_key):
    with custom_error("StudyRegistryUnknownStudy", site, study_key):
        study_registry.contentVersionOf(site, study_key)
