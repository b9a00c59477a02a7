"""AccessLog.recordAccess: every request is recorded, granted or denied, as consent says now."""

from brownie import ZERO_ADDRESS, chain
from eth_hash.auto import keccak

TREAT, HRESCH = 0, 2
REQUEST = keccak(b"request-1")
ALL_STUDIES = bytes(32)


def test_record_access_grants_with_consent(
    access_log, consent, registered, gateway, patient, grantee, study_key
):
    consent.grant(grantee, study_key, 1 << TREAT, False, 0, 0, {"from": patient})

    tx = access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})

    assert tx.return_value is True
    assert len(tx.events) == 1
    assert tx.events["AccessGranted"] == {
        "studyKey": "0x" + study_key.hex(),
        "patient": patient,
        "accessor": grantee,
        "purpose": TREAT,
        "requestId": "0x" + REQUEST.hex(),
        "gateway": gateway,
    }


def test_record_access_grants_with_all_studies_consent(
    access_log, consent, registered, gateway, patient, grantee, study_key
):
    consent.grant(grantee, ALL_STUDIES, 1 << HRESCH, False, 0, 0, {"from": patient})

    tx = access_log.recordAccess(study_key, grantee, HRESCH, REQUEST, {"from": gateway})

    assert tx.return_value is True
    assert "AccessGranted" in tx.events


def test_record_access_denies_without_consent(
    access_log, registered, gateway, patient, grantee, study_key
):
    tx = access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})

    assert tx.return_value is False
    assert len(tx.events) == 1
    assert tx.events["AccessDenied"] == {
        "studyKey": "0x" + study_key.hex(),
        "patient": patient,
        "accessor": grantee,
        "purpose": TREAT,
        "requestId": "0x" + REQUEST.hex(),
        "gateway": gateway,
    }


def test_record_access_denies_other_purpose(
    access_log, consent, registered, gateway, patient, grantee, study_key
):
    consent.grant(grantee, study_key, 1 << TREAT, True, 0, 0, {"from": patient})

    tx = access_log.recordAccess(study_key, grantee, HRESCH, REQUEST, {"from": gateway})

    assert tx.return_value is False
    assert "AccessDenied" in tx.events


def test_record_access_denies_after_expiry(
    access_log, consent, registered, gateway, patient, grantee, study_key
):
    consent.grant(grantee, study_key, 1 << TREAT, True, 0, chain.time() + 60, {"from": patient})
    chain.sleep(120)
    chain.mine()

    tx = access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})

    assert tx.return_value is False
    assert "AccessDenied" in tx.events


def test_record_access_denies_after_revoke(
    access_log, consent, registered, gateway, patient, grantee, study_key
):
    consent.grant(grantee, study_key, 1 << TREAT, True, 0, 0, {"from": patient})
    consent.revoke(grantee, study_key, {"from": patient})

    tx = access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})

    assert tx.return_value is False
    assert "AccessDenied" in tx.events


def test_record_access_denies_out_of_range_purpose(
    access_log, consent, registered, gateway, patient, grantee, study_key
):
    consent.grant(grantee, study_key, 1 << TREAT, True, 0, 0, {"from": patient})

    tx = access_log.recordAccess(study_key, grantee, 255, REQUEST, {"from": gateway})

    assert tx.events["AccessDenied"]["purpose"] == 255


def test_record_access_rejects_unknown_study(access_log, custom_error, gateway, grantee, study_key):
    with custom_error("StudyRegistryUnknownStudy", study_key):
        access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})


def test_record_access_unknown_study_error_is_study_registrys(access_log, study_registry):
    def errors(contract):
        return {item["name"]: item for item in contract.abi if item["type"] == "error"}

    log_errors, registry_errors = errors(access_log), errors(study_registry)

    assert "AccessLogUnknownStudy" not in log_errors
    assert log_errors["StudyRegistryUnknownStudy"] == registry_errors["StudyRegistryUnknownStudy"]


def test_record_access_rejects_zero_accessor(
    access_log, custom_error, registered, gateway, study_key
):
    with custom_error("AccessLogZeroAccessor"):
        access_log.recordAccess(study_key, ZERO_ADDRESS, TREAT, REQUEST, {"from": gateway})


def test_record_access_rejects_non_gateway(
    access_log, custom_error, registered, stranger, grantee, study_key
):
    role = access_log.GATEWAY_ROLE()

    with custom_error("AccessControlUnauthorizedAccount", stranger, bytes(role)):
        access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": stranger})


def test_record_access_rejects_revoked_gateway(
    access_log, custom_error, registered, admin, gateway, grantee, study_key
):
    role = access_log.GATEWAY_ROLE()
    access_log.revokeRole(role, gateway, {"from": admin})

    with custom_error("AccessControlUnauthorizedAccount", gateway, bytes(role)):
        access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})
