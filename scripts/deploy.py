"""Deploy the three contracts, grant roles, bind gateways and write the manifest.

Run with ``brownie run scripts/deploy.py --network <net>``. The manifest goes to
``deployments/<chainId>.json`` (schema in docs/deployments.md). Configuration, all optional, comes
from the environment, so no key ever sits in a flag or a file in the repository:

- ``IMAGING_CONSENT_DEPLOYER_KEY``: the deployer's private key (hex). Otherwise
  ``IMAGING_CONSENT_DEPLOYER_ID``: a brownie keystore account id (the password is prompted).
  Otherwise, on a local development chain only (chain id 1337 or 31337), ``accounts[0]``.
- ``IMAGING_CONSENT_SITES``: comma-separated addresses granted ``SITE_ROLE`` (StudyRegistry).
- ``IMAGING_CONSENT_GATEWAYS``, ``IMAGING_CONSENT_EMERGENCY``: comma-separated gateways and
  emergency clinicians, bound in AccessLog to the *deployer's* site (v2 has no gateway admin: each
  site binds its own). They need the deployer among the sites. On a development chain, unset SITES
  and GATEWAYS default to the deployer; elsewhere every list defaults to empty.
- ``IMAGING_CONSENT_ADMIN``: the account that is to hold StudyRegistry's ``DEFAULT_ADMIN_ROLE``
  (default: the deployer). If it differs, the deployer starts the two-step handover
  (``beginDefaultAdminTransfer``); the new admin accepts it after ``IMAGING_CONSENT_ADMIN_DELAY``.
- ``IMAGING_CONSENT_ADMIN_DELAY``: StudyRegistry's admin handover delay in seconds
  (default 0 on a development chain, 2 days elsewhere).
- ``IMAGING_CONSENT_DEPLOYMENTS``: the manifest folder (default ``deployments``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from brownie import AccessLog, ConsentRegistry, StudyRegistry, accounts, chain, config
from eth_utils.address import to_checksum_address

from imaging_consent.contracts.manifest import (
    CompilerSettings,
    DeployedContract,
    Manifest,
    RoleGrant,
    manifest_path,
)

DEV_CHAIN_IDS = frozenset({1337, 31337})
DEFAULT_ADMIN_DELAY = 2 * 86_400


@dataclass(frozen=True, slots=True)
class RolePlan:
    """Who receives which role at deployment."""

    sites: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    emergency: tuple[str, ...] = ()
    admin: str | None = None
    admin_delay: int = 0


def _addresses(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(to_checksum_address(a.strip()) for a in value.split(",") if a.strip())


def plan_from_env(deployer: str, chain_id: int, env: dict[str, str] | None = None) -> RolePlan:
    """Read the role plan from the environment, with the development-chain defaults."""
    env = dict(os.environ if env is None else env)
    dev = (to_checksum_address(deployer),) if chain_id in DEV_CHAIN_IDS else ()
    sites = _addresses(env.get("IMAGING_CONSENT_SITES"))
    gateways = _addresses(env.get("IMAGING_CONSENT_GATEWAYS"))
    admin = env.get("IMAGING_CONSENT_ADMIN")
    delay = env.get("IMAGING_CONSENT_ADMIN_DELAY")
    return RolePlan(
        sites=dev if sites is None else sites,
        gateways=dev if gateways is None else gateways,
        emergency=_addresses(env.get("IMAGING_CONSENT_EMERGENCY")) or (),
        admin=to_checksum_address(admin) if admin else None,
        admin_delay=int(delay) if delay else (0 if dev else DEFAULT_ADMIN_DELAY),
    )


def compiler_settings() -> CompilerSettings:
    """The settings the deployed bytecode was compiled with (build artifact and config)."""
    build = ConsentRegistry._build["compiler"]
    return CompilerSettings(
        solc_version=build["version"],
        evm_version=build["evm_version"],
        optimizer_enabled=bool(build["optimizer"]["enabled"]),
        optimizer_runs=int(build["optimizer"]["runs"]),
        via_ir=bool(config["compiler"]["solc"].get("viaIR") or False),
    )


def _deployed(tx: Any) -> DeployedContract:
    return DeployedContract(
        address=to_checksum_address(tx.contract_address),
        tx_hash="0x" + tx.txid.removeprefix("0x"),
        block_number=tx.block_number,
    )


def deploy(deployer: Any, plan: RolePlan, out_dir: str | os.PathLike[str]) -> Manifest:
    """Deploy the contracts in dependency order, grant roles, bind gateways, write the manifest.

    Args:
        deployer: The brownie account that sends every transaction.
        plan: Who receives which role, and the final admin.
        out_dir: Folder of the manifest; the file is ``<chainId>.json``.

    Returns:
        The manifest written.

    Raises:
        ValueError: If gateways or clinicians are to be bound but the deployer is not a site.
    """
    if (plan.gateways or plan.emergency) and deployer.address not in plan.sites:
        raise ValueError("gateways and emergency clinicians are bound to the deployer's site")
    tx = {"from": deployer}
    consent = ConsentRegistry.deploy(tx)
    studies = StudyRegistry.deploy(plan.admin_delay, deployer, tx)
    log = AccessLog.deploy(consent, studies, tx)
    deployments = {
        name: _deployed(c.tx)
        for name, c in (
            ("ConsentRegistry", consent),
            ("StudyRegistry", studies),
            ("AccessLog", log),
        )
    }

    roles: list[RoleGrant] = []
    by = to_checksum_address(deployer.address)
    for account in plan.sites:
        studies.grantRole(studies.SITE_ROLE(), account, tx)
        roles.append(RoleGrant("StudyRegistry", "SITE_ROLE", to_checksum_address(account), by))
    # AccessLog v2 has no roles of its own: the deployer, as a site, binds them to itself.
    for kind, bind, members in (
        ("GATEWAY", log.setGateway, plan.gateways),
        ("EMERGENCY", log.setEmergencyClinician, plan.emergency),
    ):
        for account in members:
            bind(account, True, tx)
            roles.append(RoleGrant("AccessLog", kind, to_checksum_address(account), by))
    admin = plan.admin or deployer.address
    if admin != deployer.address:
        # Two steps (AccessControlDefaultAdminRules): the new admin accepts after the delay.
        studies.beginDefaultAdminTransfer(admin, tx)
        roles.append(
            RoleGrant("StudyRegistry", "PENDING_DEFAULT_ADMIN", to_checksum_address(admin), by)
        )

    first = deployments["ConsentRegistry"].block_number
    stamp = datetime.fromtimestamp(chain[first].timestamp, tz=timezone.utc)
    manifest = Manifest(
        chain_id=chain.id,
        deployer=to_checksum_address(deployer.address),
        block_number=first,
        deployed_at=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        compiler=compiler_settings(),
        contracts=deployments,
        roles=tuple(roles),
    )
    manifest.write(manifest_path(out_dir, chain.id))
    return manifest


def load_deployer(env: dict[str, str] | None = None) -> Any:
    """The deployer account, from the environment or, on a development chain, accounts[0].

    Raises:
        RuntimeError: If no deployer is configured on a chain that is not a development chain.
    """
    env = dict(os.environ if env is None else env)
    if key := env.get("IMAGING_CONSENT_DEPLOYER_KEY"):
        return accounts.add(key)
    if account_id := env.get("IMAGING_CONSENT_DEPLOYER_ID"):
        return accounts.load(account_id)
    if chain.id in DEV_CHAIN_IDS and len(accounts) > 0:
        return accounts[0]
    raise RuntimeError(
        f"no deployer for chain {chain.id}: set IMAGING_CONSENT_DEPLOYER_KEY or "
        "IMAGING_CONSENT_DEPLOYER_ID"
    )


def main() -> Manifest:
    """Deploy with the configuration from the environment and print where things went."""
    deployer = load_deployer()
    plan = plan_from_env(deployer.address, chain.id)
    out_dir = Path(os.environ.get("IMAGING_CONSENT_DEPLOYMENTS", "deployments"))
    manifest = deploy(deployer, plan, out_dir)
    for name, contract in manifest.contracts.items():
        print(f"{name}: {contract.address}")
    print(f"manifest: {manifest_path(out_dir, manifest.chain_id)}")
    return manifest
