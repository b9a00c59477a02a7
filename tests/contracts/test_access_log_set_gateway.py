"""AccessLog.setGateway: a site binds gateways to itself; no site takes over another's."""

from brownie import ZERO_ADDRESS


def test_set_gateway_emits_gateway_set(access_log, site, stranger):
    tx = access_log.setGateway(stranger, True, {"from": site})

    assert dict(tx.events["GatewaySet"]) == {"site": site, "gateway": stranger, "allowed": True}
    assert access_log.siteOf(stranger) == site


def test_set_gateway_release(access_log, site, gateway):
    tx = access_log.setGateway(gateway, False, {"from": site})

    assert tx.events["GatewaySet"]["allowed"] is False
    assert access_log.siteOf(gateway) == ZERO_ADDRESS


def test_set_gateway_of_other_site_reverts(access_log, custom_error, other_site, site, gateway):
    with custom_error("AccessLogGatewayOfOtherSite", gateway, site):
        access_log.setGateway(gateway, True, {"from": other_site})
    with custom_error("AccessLogGatewayOfOtherSite", gateway, site):
        access_log.setGateway(gateway, False, {"from": other_site})

    assert access_log.siteOf(gateway) == site


def test_set_gateway_by_non_site_reverts(access_log, custom_error, stranger):
    with custom_error("AccessLogNotSite", stranger):
        access_log.setGateway(stranger, True, {"from": stranger})


def test_set_gateway_zero_address_reverts(access_log, custom_error, site):
    with custom_error("AccessLogZeroAddress"):
        access_log.setGateway(ZERO_ADDRESS, True, {"from": site})
