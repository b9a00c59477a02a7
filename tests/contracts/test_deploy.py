"""scripts/deploy.py: dependency order, roles, gateway binding, admin handover and the manifest."""

import json

import pytest
from brownie import AccessLog, ConsentRegistry, StudyRegistry, chain

from imaging_consent.contracts.manifest import Manifest, manifest_path
from scripts.deploy import RolePlan, deploy, plan_from_env


def test_deploy_writes_manifest_of_wired_contracts(admin, gateway, emergency, tmp_path):
    plan = RolePlan(
        sites=(admin.address,), gateways=(gateway.address,), emergency=(emergency.address,)
    )

    manifest = deploy(admin, plan, tmp_path)

    assert Manifest.read(manifest_path(tmp_path, chain.id)) == manifest
    log = AccessLog.at(manifest.address("AccessLog"))
    studies = StudyRegistry.at(manifest.address("StudyRegistry"))
    assert log.consentRegistry() == manifest.address("ConsentRegistry")
    assert log.studyRegistry() == studies
    assert ConsentRegistry.at(manifest.address("ConsentRegistry")).eip712Domain()[2] == "2"
    assert studies.hasRole(studies.SITE_ROLE(), admin)
    assert log.siteOf(gateway) == admin
    assert log.isEmergencyClinician(admin, emergency)
    assert [r.role for r in manifest.roles] == ["SITE_ROLE", "GATEWAY", "EMERGENCY"]
    blocks = [c.block_number for c in manifest.contracts.values()]
    assert list(manifest.contracts) == ["ConsentRegistry", "StudyRegistry", "AccessLog"]
    assert blocks == sorted(blocks) and manifest.block_number == blocks[0]


def test_deploy_gateways_need_deployer_site(admin, gateway, tmp_path):
    with pytest.raises(ValueError, match="deployer's site"):
        deploy(admin, RolePlan(gateways=(gateway.address,)), tmp_path)


def test_deploy_manifest_records_chain_and_compiler(admin, tmp_path):
    manifest = deploy(admin, RolePlan(), tmp_path)

    data = json.loads(manifest_path(tmp_path, chain.id).read_text())
    assert data["schema"] == 2
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


def test_deploy_starts_two_step_admin_handover(admin, stranger, tmp_path):
    manifest = deploy(admin, RolePlan(admin=stranger.address, admin_delay=60), tmp_path)

    studies = StudyRegistry.at(manifest.address("StudyRegistry"))
    assert studies.defaultAdmin() == admin
    assert studies.pendingDefaultAdmin()[0] == stranger
    chain.mine(timestamp=studies.pendingDefaultAdmin()[1] + 1)
    studies.acceptDefaultAdminTransfer({"from": stranger})
    assert studies.defaultAdmin() == stranger


def test_plan_from_env_defaults_to_deployer_on_dev_chain(admin, site):
    assert plan_from_env(admin.address, 1337, {}) == RolePlan(
        sites=(admin.address,), gateways=(admin.address,)
    )
    assert plan_from_env(admin.address, 1, {}) == RolePlan(admin_delay=2 * 86_400)
    env = {"IMAGING_CONSENT_SITES": f"{site.address.lower()}, ", "IMAGING_CONSENT_GATEWAYS": ""}
    assert plan_from_env(admin.address, 1337, env) == RolePlan(sites=(site.address,))
