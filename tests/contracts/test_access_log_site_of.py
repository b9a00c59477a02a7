"""AccessLog.siteOf: the site a gateway is bound to."""

from brownie import ZERO_ADDRESS


def test_site_of_bound_gateways(access_log, site, other_site, gateway, other_gateway, stranger):
    assert access_log.siteOf(gateway) == site
    assert access_log.siteOf(other_gateway) == other_site
    assert access_log.siteOf(stranger) == ZERO_ADDRESS
