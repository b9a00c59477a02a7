"""Smoke test: the suite compiles and deploys on the brownie-launched Ganache."""


def test_consent_registry_deploys(consent):
    assert consent.eip712Domain()[2] == "2"
