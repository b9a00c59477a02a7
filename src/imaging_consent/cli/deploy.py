"""``imaging-consent deploy``: deploy the suite and write its manifest (operators)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from imaging_consent.cli.common import (
    JsonOpt,
    Workspace,
    address,
    out_console,
    print_json,
    spinner,
    with_workspace,
)
from imaging_consent.cli.tables import fit
from imaging_consent.contracts.deployment import deploy
from imaging_consent.contracts.manifest import refuse_existing, write_new

__all__ = ["app"]

app = typer.Typer()


@app.command("deploy")
@with_workspace()
def deploy_command(
    ws: Workspace,
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help="Grant SITE_ROLE (StudyRegistry) to this address. Repeatable."),
    ] = None,
    gateway: Annotated[
        list[str] | None,
        typer.Option(
            "--gateway",
            help="Appoint this gateway for the signer's own site (the signer must be one of "
            "--site). Repeatable.",
        ),
    ] = None,
    emergency: Annotated[
        list[str] | None,
        typer.Option(
            "--emergency",
            help="Appoint this emergency clinician for the signer's own site (the signer must "
            "be one of --site). Repeatable.",
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="If the manifest already exists, move it aside to "
            "<name>.replaced-<its deployedAt>.json and write the new one. Without it an "
            "existing manifest is never overwritten.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy ConsentRegistry, StudyRegistry and AccessLog; the signer becomes StudyRegistry's
    admin. Other sites appoint their own gateways later (`site grant-role GATEWAY`)."""
    sites = [address(a, "--site") for a in site or []]
    gateways = [address(a, "--gateway") for a in gateway or []]
    emergencies = [address(a, "--emergency") for a in emergency or []]
    sender = ws.sender()
    target: Path = ws.manifest_path
    if not replace:
        refuse_existing(
            target,
            hint=f"pass --replace to keep it as {target.stem}.replaced-<deployedAt>"
            f"{target.suffix} and deploy anew, or choose another --manifest",
        )
    with spinner(f"deploying the suite on chain {ws.session.chain_id}..."):
        suite = deploy(
            ws.session,
            sender,
            sites=sites,
            gateways=gateways,
            emergency=emergencies,
            out_dir=None,
        )
        aside = write_new(suite.manifest, target, replace=replace)
    manifest = suite.manifest
    if as_json:
        print_json(
            {
                "chain_id": manifest.chain_id,
                "admin": sender.address,
                "contracts": {
                    name: {
                        "address": contract.address,
                        "block_number": contract.block_number,
                        "tx_hash": contract.tx_hash,
                    }
                    for name, contract in manifest.contracts.items()
                },
                "roles": [
                    {
                        "contract": g.contract,
                        "role": _role(g.role),
                        "account": g.account,
                        "by": g.by,
                    }
                    for g in manifest.roles
                ],
                "manifest": str(target),
                "replaced": str(aside) if aside is not None else None,
            }
        )
        return
    table = Table(title=f"Deployed on chain {manifest.chain_id}")
    table.add_column("contract")
    table.add_column("address")
    table.add_column("block", justify="right")
    for name, contract in manifest.contracts.items():
        table.add_row(name, contract.address, str(contract.block_number))
    out_console.print(fit(table))
    for grant in manifest.roles:
        out_console.print(f"granted {_role(grant.role)} on {grant.contract} to {grant.account}")
    out_console.print(f"admin: {sender.address}")
    if aside is not None:
        out_console.print(f"[yellow]replaced[/] the previous manifest, kept as [bold]{aside}[/]")
    out_console.print(f"manifest written to [bold]{target}[/]")


def _role(name: str) -> str:
    """A manifest's role as the CLI names it: ``SITE_ROLE``, ``GATEWAY_ROLE``..."""
    return name if name.endswith("_ROLE") else f"{name}_ROLE"
