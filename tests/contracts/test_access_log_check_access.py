"""AccessLog.checkAccess: what recordAccess would decide for a site's study, without recording."""

TREAT = 0


def test_check_access_permitted_returns_patient_root_and_consent(
    access_log, consent, registered, site, patient, grantee, study_key, content_root
):
    consent.grant(grantee, study_key, 1, False, 0, 0, {"from": patient})

    assert tuple(access_log.checkAccess(site, study_key, grantee, TREAT)) == (
        patient,
        "0x" + content_root.hex(),
        True,
        False,
    )


def test_check_access_denied_for_other_purpose(access_log, registered, site, grantee, study_key):
    assert tuple(access_log.checkAccess(site, study_key, grantee, 2))[2:] == (False, False)


def test_check_access_unknown_study_in_site_reverts(
    access_log, custom_error, registered, other_site, grantee, study_key
):
    with custom_error("StudyRegistryUnknownStudy", other_site, study_key):
        access_log.checkAccess(other_site, study_key, grantee, TREAT)
