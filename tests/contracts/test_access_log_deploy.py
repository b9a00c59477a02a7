"""AccessLog's constructor: wired for good to one ConsentRegistry and one StudyRegistry."""

from brownie import ZERO_ADDRESS


def test_deploy_wires_registries(access_log, consent, study_registry):
    assert access_log.consentRegistry() == consent
    assert access_log.studyRegistry() == study_registry
    assert tuple(access_log.eip712Domain()[1:3]) == ("AccessLog", "2")


def test_deploy_zero_registry_reverts(AccessLog, consent, admin, custom_error):
    with custom_error("AccessLogZeroAddress"):
        AccessLog.deploy(consent, ZERO_ADDRESS, {"from": admin})
