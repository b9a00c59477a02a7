"""AccessLog.setEmergencyClinician: a site appoints its own emergency clinicians."""

from brownie import ZERO_ADDRESS


def test_set_emergency_clinician_emits_event(access_log, other_site, stranger):
    tx = access_log.setEmergencyClinician(stranger, True, {"from": other_site})

    assert dict(tx.events["EmergencyClinicianSet"]) == {
        "site": other_site,
        "clinician": stranger,
        "allowed": True,
    }
    assert access_log.isEmergencyClinician(other_site, stranger)


def test_set_emergency_clinician_is_per_site(access_log, site, other_site, emergency):
    assert access_log.isEmergencyClinician(site, emergency)
    assert not access_log.isEmergencyClinician(other_site, emergency)


def test_set_emergency_clinician_remove(access_log, site, emergency):
    access_log.setEmergencyClinician(emergency, False, {"from": site})

    assert not access_log.isEmergencyClinician(site, emergency)


def test_set_emergency_clinician_by_non_site_reverts(access_log, custom_error, gateway, stranger):
    with custom_error("AccessLogNotSite", gateway):
        access_log.setEmergencyClinician(stranger, True, {"from": gateway})


def test_set_emergency_clinician_zero_address_reverts(access_log, custom_error, site):
    with custom_error("AccessLogZeroAddress"):
        access_log.setEmergencyClinician(ZERO_ADDRESS, True, {"from": site})
