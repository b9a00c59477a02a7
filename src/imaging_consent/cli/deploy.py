"""``imaging-consent deploy``: deploy the suite and write its manifest (operators)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from imaging_consent.cli.common import (
    ConfigOpt,
    KeystoreOpt,
    ManifestOpt,
    RpcUrlOpt,
    Workspace,
    address,
    out_console,
    spinner,
)
from imaging_consent.contracts.deployment import deploy

__all__ = ["register"]


def deploy_command(
    rpc_url: RpcUrlOpt = None,
    manifest: ManifestOpt = None,
    keystore: KeystoreOpt = None,
    config: ConfigOpt = None,
    site: list[str] = typer.Option(
        [], "--site", help="Grant SITE_ROLE (StudyRegistry) to this address. Repeatable."
    ),
    gateway: list[str] = typer.Option(
        [], "--gateway", help="Grant GATEWAY_ROLE (AccessLog) to this address. Repeatable."
    ),
    emergency: list[str] = typer.Option(
        [], "--emergency", help="Grant EMERGENCY_ROLE (AccessLog) to this address. Repeatable."
    ),
) -> None:
    """Deploy ConsentRegistry, StudyRegistry and AccessLog; the signer becomes their admin."""
    ws = Workspace(rpc_url=rpc_url, manifest=manifest, keystore=keystore, config=config)
    sites = [address(a, "--site") for a in site]
    gateways = [address(a, "--gateway") for a in gateway]
    emergencies = [address(a, "--emergency") for a in emergency]
    sender = ws.sender()
    target: Path = ws.manifest_path
    with spinner(f"deploying the suite on chain {ws.session.chain_id}..."):
        suite = deploy(
            ws.session,
            sender,
            sites=sites,
            gateways=gateways,
            emergency=emergencies,
            out_dir=None,
        )
        suite.manifest.write(target)
    table = Table(title=f"Deployed on chain {suite.manifest.chain_id}")
    table.add_column("contract")
    table.add_column("address")
    table.add_column("block", justify="right")
    for name, contract in suite.manifest.contracts.items():
        table.add_row(name, contract.address, str(contract.block_number))
    out_console.print(table)
    for grant in suite.manifest.roles:
        out_console.print(f"granted {grant.role} on {grant.contract} to {grant.account}")
    out_console.print(f"admin: {sender.address}")
    out_console.print(f"manifest written to [bold]{target}[/]")


def register(app: typer.Typer) -> None:
    """Add the ``deploy`` command to ``app``."""
    app.command("deploy")(deploy_command)
