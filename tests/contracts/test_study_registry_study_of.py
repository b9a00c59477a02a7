"""StudyRegistry.studyOf: a registered study of a site; unknown studies revert."""


def test_study_of_returns_registered_study(
    study_registry, registered, site, patient, study_key, content_root
):
    assert tuple(study_registry.studyOf(site, study_key)) == (
        patient,
        "0x" + content_root.hex(),
        3,
        registered.timestamp,
    )


def test_study_of_rejects_unknown_study(study_registry, custom_error, site, study_key):
    with custom_error("StudyRegistryUnknownStudy", site, study_key):
        study_registry.studyOf(site, study_key)


def test_study_of_rejects_other_sites_namespace(
    study_registry, registered, custom_error, other_site, study_key
):
    with custom_error("StudyRegistryUnknownStudy", other_site, study_key):
        study_registry.studyOf(other_site, study_key)
