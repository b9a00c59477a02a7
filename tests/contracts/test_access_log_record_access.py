"""AccessLog.recordAccess: a gateway records decisions on its own site's studies only."""

from brownie import ZERO_ADDRESS, chain
from eth_hash.auto import keccak

TREAT, HRESCH = 0, 2
REQUEST = keccak(b"request-1")


def test_record_access_granted_returns_and_emits_identified(
    access_log, consent, registered, patient, grantee, gateway, study_key
):
    consent.grant(grantee, study_key, 1 << TREAT, True, 0, 0, {"from": patient})

    tx = access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})

    assert tx.return_value == (True, True)
    assert len(tx.events) == 1
    assert dict(tx.events["AccessGranted"]) == {
        "studyKey": "0x" + study_key.hex(),
        "patient": patient,
        "accessor": grantee,
        "purpose": TREAT,
        "identified": True,
        "requestId": "0x" + REQUEST.hex(),
        "gateway": gateway,
    }


def test_record_access_reflects_downgrade_to_deidentified(
    access_log, consent, registered, patient, grantee, gateway, study_key
):
    consent.grant(grantee, bytes(32), 1 << TREAT, True, 0, 0, {"from": patient})
    consent.grant(grantee, study_key, 1 << TREAT, False, 0, 0, {"from": patient})

    tx = access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})

    assert tx.return_value == (True, False)
    assert tx.events["AccessGranted"]["identified"] is False


def test_record_access_denied_emits_access_denied(
    access_log, registered, patient, grantee, gateway, study_key
):
    tx = access_log.recordAccess(study_key, grantee, HRESCH, REQUEST, {"from": gateway})

    assert tx.return_value == (False, False)
    assert dict(tx.events["AccessDenied"]) == {
        "studyKey": "0x" + study_key.hex(),
        "patient": patient,
        "accessor": grantee,
        "purpose": HRESCH,
        "requestId": "0x" + REQUEST.hex(),
        "gateway": gateway,
    }


def test_record_access_denied_after_revoke(
    access_log, consent, registered, patient, grantee, gateway, study_key
):
    consent.grant(grantee, study_key, 1 << TREAT, True, 0, 0, {"from": patient})
    consent.revoke(grantee, study_key, {"from": patient})

    tx = access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})

    assert "AccessDenied" in tx.events


def test_record_access_denied_after_expiry(
    access_log, consent, registered, patient, grantee, gateway, study_key
):
    end = chain.time() + 100
    consent.grant(grantee, study_key, 1 << TREAT, True, 0, end, {"from": patient})
    chain.mine(timestamp=end + 1)

    tx = access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})

    assert "AccessDenied" in tx.events


def test_record_access_other_sites_gateway_cannot_record(
    access_log, custom_error, registered, other_site, other_gateway, grantee, study_key
):
    # Attack: a second site's gateway records for site A's study (v1: any gateway could).
    with custom_error("StudyRegistryUnknownStudy", other_site, study_key):
        access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": other_gateway})


def test_record_access_copied_key_at_other_site_leaves_site_a_alone(
    access_log,
    consent,
    study_registry,
    registered,
    other_site,
    patient,
    stranger,
    grantee,
    gateway,
    study_key,
    content_root,
):
    # Attack: site B registers site A's key with a patient it controls, who grants everything.
    study_registry.registerStudy(study_key, stranger, content_root, 1, {"from": other_site})
    consent.grant(grantee, study_key, 0x7F, True, 0, 0, {"from": stranger})

    tx = access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})

    assert tx.events["AccessDenied"]["patient"] == patient
    assert tx.return_value == (False, False)


def test_record_access_by_non_gateway_reverts(
    access_log, custom_error, registered, site, grantee, study_key
):
    with custom_error("AccessLogNotGateway", site):
        access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": site})


def test_record_access_by_released_gateway_reverts(
    access_log, custom_error, registered, site, gateway, grantee, study_key
):
    access_log.setGateway(gateway, False, {"from": site})

    with custom_error("AccessLogNotGateway", gateway):
        access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})


def test_record_access_zero_accessor_reverts(
    access_log, custom_error, registered, gateway, study_key
):
    with custom_error("AccessLogZeroAccessor"):
        access_log.recordAccess(study_key, ZERO_ADDRESS, TREAT, REQUEST, {"from": gateway})


def test_record_access_unknown_study_reverts(
    access_log, custom_error, site, gateway, grantee, study_key
):
    with custom_error("StudyRegistryUnknownStudy", site, study_key):
        access_log.recordAccess(study_key, grantee, TREAT, REQUEST, {"from": gateway})
