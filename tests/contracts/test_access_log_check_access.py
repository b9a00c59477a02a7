"""AccessLog.checkAccess: the gateway's one-call view of patient, content root and consent."""

import brownie

PURPOSE_TREAT = 0
PURPOSE_HRESCH = 2


def test_check_access_permitted_returns_patient_root_and_consent(
    access_log, consent, registered, patient, grantee, study_key, content_root
):
    consent.grant(grantee, study_key, 1 << PURPOSE_TREAT, False, 0, 0, {"from": patient})

    result = access_log.checkAccess(study_key, grantee, PURPOSE_TREAT)

    assert result[0] == patient
    assert bytes(result[1]) == content_root
    assert result[2:] == (True, False)


def test_check_access_denied_for_other_purpose(
    access_log, consent, registered, patient, grantee, study_key
):
    consent.grant(grantee, study_key, 1 << PURPOSE_TREAT, True, 0, 0, {"from": patient})

    result = access_log.checkAccess(study_key, grantee, PURPOSE_HRESCH)

    assert result[2:] == (False, False)


def test_check_access_unknown_study_reverts(access_log, grantee):
    unknown = b"\x42" * 32

    with brownie.reverts(revert_pattern=r"StudyRegistryUnknownStudy: .*"):
        access_log.checkAccess(unknown, grantee, PURPOSE_TREAT)
