"""Shared fixtures for the contract tests (brownie, on Ganache)."""

from __future__ import annotations

import pytest
from brownie import chain


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
