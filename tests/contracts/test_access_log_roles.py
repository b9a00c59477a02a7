"""AccessLog construction and roles: immutable registries; the admin manages both roles."""

from brownie import ZERO_ADDRESS, AccessLog
from eth_hash.auto import keccak


def test_roles_are_keccak_of_their_names(access_log):
    assert access_log.GATEWAY_ROLE() == "0x" + keccak(b"GATEWAY_ROLE").hex()
    assert access_log.EMERGENCY_ROLE() == "0x" + keccak(b"EMERGENCY_ROLE").hex()
    assert access_log.BREAK_GLASS_PURPOSE() == 1


def test_constructor_sets_registries_and_admin(access_log, consent, study_registry, admin):
    assert access_log.consentRegistry() == consent
    assert access_log.studyRegistry() == study_registry
    assert access_log.hasRole(access_log.DEFAULT_ADMIN_ROLE(), admin)


def test_constructor_rejects_zero_addresses(custom_error, consent, study_registry, admin):
    for args in (
        (ZERO_ADDRESS, study_registry, admin),
        (consent, ZERO_ADDRESS, admin),
        (consent, study_registry, ZERO_ADDRESS),
    ):
        with custom_error("AccessLogZeroAddress"):
            AccessLog.deploy(*args, {"from": admin})


def test_grant_role_lets_admin_add_gateway_and_emergency(access_log, admin, stranger):
    for role in (access_log.GATEWAY_ROLE(), access_log.EMERGENCY_ROLE()):
        tx = access_log.grantRole(role, stranger, {"from": admin})

        assert access_log.hasRole(role, stranger)
        assert tx.events["RoleGranted"]["role"] == role


def test_revoke_role_lets_admin_remove_gateway(access_log, admin, gateway):
    role = access_log.GATEWAY_ROLE()

    tx = access_log.revokeRole(role, gateway, {"from": admin})

    assert not access_log.hasRole(role, gateway)
    assert tx.events["RoleRevoked"]["account"] == gateway


def test_grant_role_rejects_non_admin(access_log, custom_error, gateway, stranger):
    admin_role = access_log.DEFAULT_ADMIN_ROLE()

    with custom_error("AccessControlUnauthorizedAccount", gateway, bytes(admin_role)):
        access_log.grantRole(access_log.EMERGENCY_ROLE(), stranger, {"from": gateway})
