"""Shared fixtures for the contract tests (brownie, on Ganache)."""

from __future__ import annotations

import re

import brownie
import pytest
from brownie import chain
from consent_values import later
from eth_hash.auto import keccak


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    """Revert the chain after every test."""


@pytest.fixture(scope="module")
def admin(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def patient(accounts):
    return accounts[1]


@pytest.fixture(scope="module")
def grantee(accounts):
    return accounts[2]


@pytest.fixture(scope="module")
def delegate(accounts):
    return accounts[3]


@pytest.fixture(scope="module")
def stranger(accounts):
    return accounts[4]


@pytest.fixture(scope="module")
def relayer(accounts):
    return accounts[5]


@pytest.fixture(scope="module")
def consent(ConsentRegistry, admin):
    return ConsentRegistry.deploy({"from": admin})


# --- provenance: StudyRegistry and AccessLog -----------------------------------------------------


@pytest.fixture(scope="module")
def site(accounts):
    return accounts[6]


@pytest.fixture(scope="module")
def gateway(accounts):
    return accounts[7]


@pytest.fixture(scope="module")
def emergency(accounts):
    """An emergency clinician of `site`, whose key the tests hold (it signs break-glass)."""
    return accounts.add()


@pytest.fixture(scope="module")
def other_site(accounts):
    return accounts[9]


@pytest.fixture(scope="module")
def other_gateway(accounts):
    """The gateway of `other_site`."""
    return accounts[8]


ADMIN_DELAY = 3 * 86_400  # StudyRegistry's delay between starting and accepting an admin handover


@pytest.fixture(scope="module")
def admin_delay():
    return ADMIN_DELAY


@pytest.fixture(scope="module")
def study_registry(StudyRegistry, admin, site, other_site):
    registry = StudyRegistry.deploy(ADMIN_DELAY, admin, {"from": admin})
    for account in (site, other_site):
        registry.grantRole(registry.SITE_ROLE(), account, {"from": admin})
    return registry


@pytest.fixture(scope="module")
def access_log(
    AccessLog, consent, study_registry, site, other_site, gateway, other_gateway, emergency
):
    """The log; `gateway` and `emergency` belong to `site`, `other_gateway` to `other_site`."""
    log = AccessLog.deploy(consent, study_registry, {"from": site})
    log.setGateway(gateway, True, {"from": site})
    log.setEmergencyClinician(emergency, True, {"from": site})
    log.setGateway(other_gateway, True, {"from": other_site})
    return log


@pytest.fixture(scope="module")
def study_key():
    """An opaque study key, as a site derives it (keccak256(pepper ‖ StudyInstanceUID))."""
    return keccak(b"site-pepper" + b"1.2.826.0.1.3680043.8.498.1")


@pytest.fixture(scope="module")
def content_root():
    return keccak(b"content root")


@pytest.fixture
def registered(study_registry, site, patient, study_key, content_root):
    """The transaction registering `study_key` for `patient` at `site`, with 3 instances."""
    return study_registry.registerStudy(study_key, patient, content_root, 3, {"from": site})


def _revert_arg(value):
    """Render a custom error argument the way brownie prints it in a revert message."""
    if isinstance(value, bytes):
        return re.escape(repr(value))
    if hasattr(value, "address"):
        return value.address.lower()
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    return re.escape(str(value))


@pytest.fixture(scope="session")
def custom_error():
    """`custom_error("Name", *args)`: a `brownie.reverts` matching that custom error exactly."""

    def reverts(name, *args):
        return brownie.reverts(revert_pattern=f"{name}: " + ", ".join(map(_revert_arg, args)))

    return reverts


@pytest.fixture(scope="module")
def signer(accounts, admin):
    """A patient whose private key the tests hold (`signer.private_key`), with some ether."""
    account = accounts.add()
    admin.transfer(account, "1 ether")
    return account


@pytest.fixture(scope="module")
def other_signer(accounts):
    """A second key holder, never funded: it only signs."""
    return accounts.add()


@pytest.fixture(scope="module")
def wallet(MockWallet1271, signer, admin):
    """An EIP-1271 smart-contract wallet owned by `signer`."""
    return MockWallet1271.deploy(signer, {"from": admin})


@pytest.fixture
def deadline():
    """A deadline an hour from now."""
    return chain.time() + 3600


@pytest.fixture
def issued_at():
    """A fresh `issuedAt`: the timestamp of a newly mined block."""
    return later()
