"""Deploy the suite with plain web3.py, and load a deployed suite from its manifest.

:func:`deploy` writes the same ``deployments/<chainId>.json`` manifest as
``scripts/deploy.py`` (brownie), through :class:`imaging_consent.contracts.manifest.Manifest`.
:func:`load` refuses a manifest for another chain, or one whose addresses hold no code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3

from imaging_consent.chain import ChainSession, TransactionSender
from imaging_consent.contracts.access_log import AccessLog
from imaging_consent.contracts.artifacts import SUITE, load_artifact
from imaging_consent.contracts.consent_registry import ConsentRegistry
from imaging_consent.contracts.manifest import (
    CompilerSettings,
    DeployedContract,
    Manifest,
    RoleGrant,
    manifest_path,
    refuse_existing,
    write_new,
)
from imaging_consent.contracts.revert import decode_revert
from imaging_consent.contracts.study_registry import StudyRegistry
from imaging_consent.errors import ContractError, WrongChainError

logger = logging.getLogger(__name__)

#: Seconds an admin transfer of StudyRegistry waits (OpenZeppelin AccessControlDefaultAdminRules).
DEFAULT_ADMIN_DELAY = 2 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Suite:
    """The three deployed contracts on one chain, bound to a session.

    Attributes:
        session: The chain they live on.
        manifest: Where they live and how they were deployed.
        consent: ConsentRegistry.
        studies: StudyRegistry.
        access_log: AccessLog.
    """

    session: ChainSession
    manifest: Manifest
    consent: ConsentRegistry
    studies: StudyRegistry
    access_log: AccessLog


def _compiler_settings() -> CompilerSettings:
    compiler = load_artifact(SUITE[0]).compiler
    optimizer = compiler.get("optimizer", {})
    return CompilerSettings(
        solc_version=compiler["version"],
        evm_version=compiler["evm_version"],
        optimizer_enabled=bool(optimizer.get("enabled", False)),
        optimizer_runs=int(optimizer.get("runs", 0)),
        via_ir=bool(compiler.get("viaIR", False)),
    )


def deploy(
    session: ChainSession,
    deployer: TransactionSender,
    *,
    sites: Sequence[str] = (),
    gateways: Sequence[str] = (),
    emergency: Sequence[str] = (),
    admin_delay: int = DEFAULT_ADMIN_DELAY,
    out_dir: str | os.PathLike[str] | None = "deployments",
    replace: bool = False,
) -> Suite:
    """Deploy ConsentRegistry, StudyRegistry and AccessLog in dependency order.

    The deployer becomes StudyRegistry's admin (transfers take ``admin_delay`` seconds) and
    grants SITE_ROLE to ``sites``. Gateways and emergency clinicians are appointed by a site for
    itself, never by the admin: ``gateways`` and ``emergency`` are appointed by the deployer
    acting as a site, so the deployer must then be one of ``sites`` (see :func:`appoint`).

    Args:
        session: The chain to deploy on.
        deployer: Sends (and pays for) every transaction.
        sites: Accounts to receive StudyRegistry's SITE_ROLE.
        gateways: Gateways the deployer (as a site) appoints.
        emergency: Emergency clinicians the deployer (as a site) appoints.
        admin_delay: Seconds an admin transfer waits.
        out_dir: Folder to write ``<chainId>.json`` into, or None to write nothing.
        replace: If ``<chainId>.json`` is already there, move it aside to
            ``<chainId>.replaced-<its deployedAt>.json`` in the same folder. Without it an
            existing manifest is never overwritten.

    Returns:
        The deployed suite and its manifest.

    Raises:
        ManifestExistsError: If ``out_dir`` already holds this chain's manifest and ``replace``
            is False (checked before anything is sent).
        ValueError: If gateways or clinicians are given but the deployer is not a site.
        TransactionError: If a deployment transaction fails.
    """
    target = None if out_dir is None else manifest_path(out_dir, session.chain_id)
    if target is not None and not replace:
        refuse_existing(target)
    admin = deployer.address
    site_accounts = [Web3.to_checksum_address(a) for a in sites]
    if (gateways or emergency) and admin not in site_accounts:
        raise ValueError(
            "gateways and emergency clinicians are appointed by their site: include the "
            "deployer in sites, or appoint them later with the site's own key"
        )
    deployed: dict[str, DeployedContract] = {}

    def create(name: str, *args: object) -> ChecksumAddress:
        artifact = load_artifact(name)
        factory = session.w3.eth.contract(abi=list(artifact.abi), bytecode=artifact.bytecode)
        receipt = deployer.transact(factory.constructor(*args))
        if receipt.contract_address is None:
            raise ContractError(f"deploying {name} created no contract (tx {receipt.tx_hash})")
        deployed[name] = DeployedContract(
            receipt.contract_address, receipt.tx_hash, receipt.block_number
        )
        logger.info("deployed %s at %s", name, receipt.contract_address)
        return receipt.contract_address

    consent = create("ConsentRegistry")
    studies = create("StudyRegistry", admin_delay, admin)
    create("AccessLog", consent, studies)

    registry = StudyRegistry(session, studies)
    roles: list[RoleGrant] = []
    for account in site_accounts:
        deployer.transact(registry.grant_role("SITE_ROLE", account))
        roles.append(RoleGrant("StudyRegistry", "SITE_ROLE", account, admin))
    access_log = AccessLog(session, deployed["AccessLog"].address)
    roles += appoint(access_log, deployer, gateways=gateways, emergency=emergency)

    first = deployed["ConsentRegistry"].block_number
    timestamp = session.w3.eth.get_block(first)["timestamp"]
    manifest = Manifest(
        chain_id=session.chain_id,
        deployer=admin,
        block_number=first,
        deployed_at=datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        compiler=_compiler_settings(),
        contracts=deployed,
        roles=tuple(roles),
    )
    if target is not None:
        aside = write_new(manifest, target, replace=replace)
        if aside is not None:
            logger.info("moved the replaced manifest %s to %s", target, aside)
    return _bound(session, manifest)


def appoint(
    access_log: AccessLog,
    site: TransactionSender,
    *,
    gateways: Sequence[str] = (),
    emergency: Sequence[str] = (),
) -> list[RoleGrant]:
    """Appoint a site's own gateways and emergency clinicians (sent by the site).

    Raises:
        TransactionError: If the site lacks SITE_ROLE or a gateway belongs to another site.
    """
    done: list[RoleGrant] = []
    for member in gateways:
        account = Web3.to_checksum_address(member)
        site.transact(access_log.set_gateway(account, True))
        done.append(RoleGrant("AccessLog", "GATEWAY", account, site.address))
    for member in emergency:
        account = Web3.to_checksum_address(member)
        site.transact(access_log.set_emergency_clinician(account, True))
        done.append(RoleGrant("AccessLog", "EMERGENCY", account, site.address))
    return done


def load(session: ChainSession, manifest: Manifest | str | os.PathLike[str]) -> Suite:
    """Bind to a deployed suite, checking its manifest against the chain.

    Args:
        session: The chain the suite should be on.
        manifest: The manifest, or the path of its JSON file.

    Raises:
        ManifestError: If the file is missing or malformed, or a contract is missing from it.
        WrongChainError: If the manifest is for another chain id.
        ContractError: If an address in the manifest holds no code on this chain.
    """
    if not isinstance(manifest, Manifest):
        manifest = Manifest.read(Path(manifest))
    if manifest.chain_id != session.chain_id:
        raise WrongChainError(
            f"manifest is for chain id {manifest.chain_id}, but the endpoint serves chain id "
            f"{session.chain_id}"
        )
    for name in SUITE:
        address = manifest.address(name)
        if not session.w3.eth.get_code(address):
            raise ContractError(
                f"no contract code at {address} ({name}) on chain {session.chain_id}: "
                "the manifest is stale or for another network"
            )
    return _bound(session, manifest)


def _bound(session: ChainSession, manifest: Manifest) -> Suite:
    addresses = {name: manifest.address(name) for name in SUITE}
    return Suite(
        session=session,
        manifest=manifest,
        consent=ConsentRegistry(session, addresses["ConsentRegistry"]),
        studies=StudyRegistry(session, addresses["StudyRegistry"]),
        access_log=AccessLog(session, addresses["AccessLog"]),
    )


def sender_for(
    session: ChainSession, account: LocalAccount, *, confirmations: int = 0
) -> TransactionSender:
    """A :class:`TransactionSender` that decodes the suite's custom errors into typed ones."""
    return TransactionSender(
        session, account, confirmations=confirmations, error_decoder=decode_revert
    )
