"""StudyRegistry's admin (OpenZeppelin AccessControlDefaultAdminRules): two steps, a delay."""

import brownie
from brownie import ZERO_ADDRESS, chain, web3


def _now():
    return web3.eth.get_block("latest").timestamp


def test_default_admin_rules_deploy_with_zero_admin_reverts(
    StudyRegistry, admin, custom_error, admin_delay
):
    with custom_error("StudyRegistryZeroAdmin"):
        StudyRegistry.deploy(admin_delay, ZERO_ADDRESS, {"from": admin})


def test_default_admin_rules_admin_and_delay_set(study_registry, admin, admin_delay):
    assert study_registry.defaultAdmin() == admin
    assert study_registry.defaultAdminDelay() == admin_delay


def test_default_admin_rules_grant_admin_role_directly_reverts(study_registry, admin, stranger):
    with brownie.reverts(revert_pattern=r"AccessControlEnforcedDefaultAdminRules: "):
        study_registry.grantRole(study_registry.DEFAULT_ADMIN_ROLE(), stranger, {"from": admin})


def test_default_admin_rules_silent_renounce_reverts(study_registry, admin):
    with brownie.reverts(revert_pattern=r"AccessControlEnforcedDefaultAdminDelay: 0"):
        study_registry.renounceRole(study_registry.DEFAULT_ADMIN_ROLE(), admin, {"from": admin})

    assert study_registry.defaultAdmin() == admin


def test_default_admin_rules_transfer_needs_delay(study_registry, admin, stranger, admin_delay):
    study_registry.beginDefaultAdminTransfer(stranger, {"from": admin})
    schedule = study_registry.pendingDefaultAdmin()[1]

    with brownie.reverts(revert_pattern=rf"AccessControlEnforcedDefaultAdminDelay: {schedule}"):
        study_registry.acceptDefaultAdminTransfer({"from": stranger})
    chain.mine(timestamp=schedule + 1)
    study_registry.acceptDefaultAdminTransfer({"from": stranger})

    assert study_registry.defaultAdmin() == stranger
    assert not study_registry.hasRole(study_registry.DEFAULT_ADMIN_ROLE(), admin)


def test_default_admin_rules_renounce_after_two_steps(study_registry, admin):
    study_registry.beginDefaultAdminTransfer(ZERO_ADDRESS, {"from": admin})
    schedule = study_registry.pendingDefaultAdmin()[1]
    chain.mine(timestamp=schedule + 1)

    study_registry.renounceRole(study_registry.DEFAULT_ADMIN_ROLE(), admin, {"from": admin})

    assert study_registry.defaultAdmin() == ZERO_ADDRESS


def test_default_admin_rules_only_admin_grants_site_role(study_registry, custom_error, stranger):
    with custom_error("AccessControlUnauthorizedAccount", stranger, bytes(32)):
        study_registry.grantRole(study_registry.SITE_ROLE(), stranger, {"from": stranger})
