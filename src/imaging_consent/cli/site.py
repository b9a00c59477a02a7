"""``imaging-consent site``: register studies, and manage roles (sites and admins)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer
from eth_typing import ChecksumAddress
from rich.table import Table
from web3.contract.contract import ContractFunction

from imaging_consent.cli.common import (
    Workspace,
    address,
    err_console,
    out_console,
    progress,
    with_workspace,
)
from imaging_consent.cli.tables import short
from imaging_consent.contracts.deployment import Suite
from imaging_consent.provenance import register_study
from imaging_consent.stores import FolderStore

__all__ = ["Role", "app"]

app = typer.Typer(
    name="site",
    help="Register studies and manage roles (sites, admins).",
    no_args_is_help=True,
)


class Role(str, enum.Enum):
    """Who does what: the admin makes sites; a site appoints its own gateways and clinicians."""

    SITE = "SITE"
    GATEWAY = "GATEWAY"
    EMERGENCY = "EMERGENCY"

    @property
    def role_name(self) -> str:
        """The Solidity constant's name, e.g. ``SITE_ROLE``."""
        return f"{self.value}_ROLE"

    def holds(self, suite: Suite, signer: ChecksumAddress, who: ChecksumAddress) -> bool:
        """Whether ``who`` has the role (for GATEWAY and EMERGENCY: from site ``signer``)."""
        if self is Role.SITE:
            return suite.studies.has_role(self.role_name, who)
        if self is Role.GATEWAY:
            return suite.access_log.site_of(who) == signer
        return suite.access_log.is_emergency_clinician(signer, who)

    def change(self, suite: Suite, who: ChecksumAddress, grant: bool) -> ContractFunction:
        """The transaction that grants or revokes it."""
        if self is Role.SITE:
            studies = suite.studies
            return (studies.grant_role if grant else studies.revoke_role)(self.role_name, who)
        if self is Role.GATEWAY:
            return suite.access_log.set_gateway(who, grant)
        return suite.access_log.set_emergency_clinician(who, grant)


@app.command("register")
@with_workspace()
def register(
    ws: Workspace,
    path: Annotated[Path, typer.Argument(help="Folder of DICOM files (searched recursively).")],
    patient: Annotated[str, typer.Option("--patient", help="The patient's wallet address.")],
    study: Annotated[
        list[str] | None,
        typer.Option("--study", help="Register only this Study Instance UID. Repeatable."),
    ] = None,
) -> None:
    """Register (or update) every study in a folder for one patient (needs SITE_ROLE).

    The site pepper comes from IMAGING_CONSENT_SITE_PEPPER_FILE (a mode-0600 file) or
    IMAGING_CONSENT_SITE_PEPPER; it never leaves this process.
    """
    owner = address(patient, "--patient")
    pepper = ws.pepper()
    suite = ws.suite
    sender = ws.sender()
    with progress() as bar:
        task = bar.add_task("indexing DICOM files", total=None)

        def on_file(done: int, total: int, _path: object) -> None:
            bar.update(task, completed=done, total=total)

        store = FolderStore(path, progress=on_file)
        uids = study or store.studies()
        bar.update(task, description="registering studies", completed=0, total=len(uids))
        results = []
        for uid in uids:
            results.append(register_study(suite, sender, store, pepper, uid, owner))
            bar.advance(task)
    problems = store.problems()
    table = Table(title=f"Studies for patient {owner}")
    for column in ("study UID", "study key", "content root", "instances", "action"):
        table.add_column(column, justify="right" if column == "instances" else "left")
    for result in results:
        table.add_row(
            result.study_uid,
            "0x" + result.study_key.hex(),
            short(result.content_root, 16),
            str(result.instance_count),
            result.action.value,
        )
    out_console.print(table)
    if problems:
        err_console.print(f"[yellow]{len(problems)} file(s) skipped as unreadable DICOM[/]")
    if not results:
        err_console.print(f"[yellow]no DICOM studies found in {path}[/]")


def _role_change(role: Role, account: str, grant: bool, ws: Workspace) -> None:
    who = address(account)
    suite = ws.suite
    sender = ws.sender()
    verb = "granted" if grant else "revoked"
    if role.holds(suite, sender.address, who) == grant:
        out_console.print(f"{who} {'already has' if grant else 'does not have'} {role.role_name}")
        return
    receipt = sender.transact(role.change(suite, who, grant))
    by = "" if role is Role.SITE else f" for site {sender.address}"
    out_console.print(
        f"{verb} {role.role_name}{by} {'to' if grant else 'from'} {who} "
        f"in tx {receipt.tx_hash} (gas {receipt.gas_used:,})"
    )


RoleArg = Annotated[Role, typer.Argument(case_sensitive=False, help="SITE, GATEWAY or EMERGENCY.")]
AccountArg = Annotated[str, typer.Argument(help="The address that gains or loses the role.")]


@app.command("grant-role")
@with_workspace()
def grant_role(ws: Workspace, role: RoleArg, account: AccountArg) -> None:
    """Grant a role: SITE (signed by the admin), or GATEWAY / EMERGENCY (signed by the site
    appointing its own gateway or emergency clinician)."""
    _role_change(role, account, True, ws)


@app.command("revoke-role")
@with_workspace()
def revoke_role(ws: Workspace, role: RoleArg, account: AccountArg) -> None:
    """Revoke a role: SITE (signed by the admin), GATEWAY / EMERGENCY (signed by their site)."""
    _role_change(role, account, False, ws)
