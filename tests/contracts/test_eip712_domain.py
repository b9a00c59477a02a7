"""ConsentRegistry.eip712Domain: the ERC-5267 description of the signing domain."""

from __future__ import annotations

from brownie import ZERO_ADDRESS, chain


def test_eip712_domain_reports_name_version_chain_and_contract(consent):
    fields, name, version, chain_id, verifying_contract, salt, extensions = consent.eip712Domain()

    assert fields == "0x0f"  # name, version, chainId, verifyingContract; no salt, no extensions
    assert name == "ConsentRegistry"
    assert version == "2"
    assert chain_id == chain.id == 1337
    assert verifying_contract == consent.address
    assert int(salt.hex() or "0", 16) == 0
    assert list(extensions) == []


def test_eip712_domain_differs_per_deployment(consent, ConsentRegistry, admin):
    second = ConsentRegistry.deploy({"from": admin})

    domain = second.eip712Domain()

    assert domain[4] == second.address != consent.address
    assert domain[4] != ZERO_ADDRESS
