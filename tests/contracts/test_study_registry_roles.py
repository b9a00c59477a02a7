"""StudyRegistry roles: the admin grants and revokes SITE_ROLE; nobody else can."""

from brownie import ZERO_ADDRESS, StudyRegistry
from eth_hash.auto import keccak


def test_site_role_is_keccak_of_its_name(study_registry):
    assert study_registry.SITE_ROLE() == "0x" + keccak(b"SITE_ROLE").hex()


def test_constructor_makes_admin(study_registry, admin):
    assert study_registry.hasRole(study_registry.DEFAULT_ADMIN_ROLE(), admin)


def test_constructor_rejects_zero_admin(custom_error, admin):
    with custom_error("StudyRegistryZeroAdmin"):
        StudyRegistry.deploy(ZERO_ADDRESS, {"from": admin})


def test_grant_role_lets_admin_add_a_site(study_registry, admin, stranger):
    role = study_registry.SITE_ROLE()

    tx = study_registry.grantRole(role, stranger, {"from": admin})

    assert study_registry.hasRole(role, stranger)
    assert tx.events["RoleGranted"]["account"] == stranger


def test_revoke_role_lets_admin_remove_a_site(study_registry, admin, site):
    role = study_registry.SITE_ROLE()

    tx = study_registry.revokeRole(role, site, {"from": admin})

    assert not study_registry.hasRole(role, site)
    assert tx.events["RoleRevoked"]["account"] == site


def test_grant_role_rejects_non_admin(study_registry, custom_error, site, stranger):
    admin_role = study_registry.DEFAULT_ADMIN_ROLE()

    with custom_error("AccessControlUnauthorizedAccount", site, bytes(admin_role)):
        study_registry.grantRole(study_registry.SITE_ROLE(), stranger, {"from": site})
