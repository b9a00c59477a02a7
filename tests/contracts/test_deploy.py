"""scripts/deploy.py: dependency order, roles, admin handover and the manifest it writes."""

import json

from brownie import AccessLog, ConsentRegistry, StudyRegistry, chain

from imaging_consent.contracts.manifest import Manifest, manifest_path
from scripts.deploy import RolePlan, deploy, plan_from_env


def test_deploy_writes_manifest_of_wired_contracts(admin, site, gateway, emergency, tmp_path):
    plan = RolePlan(
        sites=(site.address,), gateways=(gateway.address,), emergency=(emergency.address,)
    )

    manifest = deploy(admin, plan, tmp_path)

    assert Manifest.read(manifest_path(tmp_path, chain.id)) == manifest
    log = AccessLog.at(manifest.address("AccessLog"))
    studies = StudyRegistry.at(manifest.address("StudyRegistry"))
    assert log.consentRegistry() == manifest.address("ConsentRegistry")
    assert log.studyRegistry() == studies
    assert ConsentRegistry.at(manifest.address("ConsentRegistry")).nonces(admin) == 0
    assert studies.hasRole(studies.SITE_ROLE(), site)
    assert log.hasRole(log.GATEWAY_ROLE(), gateway)
    assert log.hasRole(log.EMERGENCY_ROLE(), emergency)
    assert [r.role for r in manifest.roles] == ["SITE_ROLE", "GATEWAY_ROLE", "EMERGENCY_ROLE"]
    blocks = [c.block_number for c in manifest.contracts.values()]
    assert list(manifest.contracts) == ["ConsentRegistry", "StudyRegistry", "AccessLog"]
    assert blocks == sorted(blocks) and manifest.block_number == blocks[0]


def test_deploy_manifest_records_chain_and_compiler(admin, tmp_path):
    manifest = deploy(admin, RolePlan(), tmp_path)

    data = json.loads(manifest_path(tmp_path, chain.id).read_text())
    assert data["schema"] == 1
    assert data["chainId"] == chain.id == 1337
    assert data["deployer"] == admin.address
    assert data["compiler"] == {
        "solcVersion": "0.8.37+commit.f401782d",
        "evmVersion": "shanghai",
        "optimizer": {"enabled": True, "runs": 10000},
        "viaIR": False,
    }
    assert data["deployedAt"].endswith("Z")
    assert manifest.roles == ()


def test_deploy_hands_admin_over(admin, stranger, tmp_path):
    manifest = deploy(admin, RolePlan(admin=stranger.address), tmp_path)

    for name, container in (("StudyRegistry", StudyRegistry), ("AccessLog", AccessLog)):
        contract = container.at(manifest.address(name))
        admin_role = contract.DEFAULT_ADMIN_ROLE()
        assert contract.hasRole(admin_role, stranger)
        assert not contract.hasRole(admin_role, admin)


def test_plan_from_env_defaults_to_deployer_on_dev_chain(admin, site, gateway):
    assert plan_from_env(admin.address, 1337, {}) == RolePlan(
        sites=(admin.address,), gateways=(admin.address,)
    )
    assert plan_from_env(admin.address, 1, {}) == RolePlan()
    env = {"IMAGING_CONSENT_SITES": f"{site.address.lower()}, ", "IMAGING_CONSENT_GATEWAYS": ""}
    assert plan_from_env(admin.address, 1337, env) == RolePlan(sites=(site.address,))
