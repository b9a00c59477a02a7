"""Shared fixtures for the contract tests (brownie, on Ganache)."""

from __future__ import annotations

import pytest


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
