"""AccessLog.recordBreakGlass: an emergency clinician's access without consent, always recorded."""

from eth_hash.auto import keccak

REQUEST = keccak(b"request-bg")
REASON = keccak(b"reason document, kept off chain")


def test_record_break_glass_emits_break_glass_access(
    access_log, registered, gateway, emergency, patient, study_key
):
    tx = access_log.recordBreakGlass(study_key, emergency, REQUEST, REASON, {"from": gateway})

    assert len(tx.events) == 1
    assert tx.events["BreakGlassAccess"] == {
        "studyKey": "0x" + study_key.hex(),
        "patient": patient,
        "accessor": emergency,
        "requestId": "0x" + REQUEST.hex(),
        "reasonHash": "0x" + REASON.hex(),
        "gateway": gateway,
    }


def test_record_break_glass_needs_no_consent(
    access_log, consent, registered, gateway, emergency, patient, study_key
):
    assert consent.isPermitted(patient, emergency, study_key, 1) == (False, False)

    tx = access_log.recordBreakGlass(study_key, emergency, REQUEST, REASON, {"from": gateway})

    assert "BreakGlassAccess" in tx.events


def test_record_break_glass_rejects_non_emergency_accessor(
    access_log, custom_error, registered, gateway, grantee, study_key
):
    with custom_error("AccessLogNotEmergency", grantee):
        access_log.recordBreakGlass(study_key, grantee, REQUEST, REASON, {"from": gateway})


def test_record_break_glass_rejects_revoked_emergency_role(
    access_log, custom_error, registered, admin, gateway, emergency, study_key
):
    access_log.revokeRole(access_log.EMERGENCY_ROLE(), emergency, {"from": admin})

    with custom_error("AccessLogNotEmergency", emergency):
        access_log.recordBreakGlass(study_key, emergency, REQUEST, REASON, {"from": gateway})


def test_record_break_glass_rejects_zero_reason(
    access_log, custom_error, registered, gateway, emergency, study_key
):
    with custom_error("AccessLogZeroReason", REQUEST):
        access_log.recordBreakGlass(study_key, emergency, REQUEST, bytes(32), {"from": gateway})


def test_record_break_glass_rejects_unknown_study(
    access_log, custom_error, gateway, emergency, study_key
):
    with custom_error("StudyRegistryUnknownStudy", study_key):
        access_log.recordBreakGlass(study_key, emergency, REQUEST, REASON, {"from": gateway})


def test_record_break_glass_rejects_non_gateway(
    access_log, custom_error, registered, emergency, study_key
):
    role = access_log.GATEWAY_ROLE()

    with custom_error("AccessControlUnauthorizedAccount", emergency, bytes(role)):
        access_log.recordBreakGlass(study_key, emergency, REQUEST, REASON, {"from": emergency})
