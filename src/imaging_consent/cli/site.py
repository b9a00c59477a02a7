"""``imaging-consent site``: register studies, and manage roles (sites and admins)."""

from __future__ import annotations

import enum
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from eth_typing import ChecksumAddress
from rich.table import Table
from rich.text import Text
from web3.contract.contract import ContractFunction

from imaging_consent.cli.common import (
    Workspace,
    address,
    err_console,
    out_console,
    progress,
    with_workspace,
)
from imaging_consent.cli.stores import OrthancOpt, report_orthanc_skipped, site_store, store_label
from imaging_consent.cli.tables import short
from imaging_consent.contracts.deployment import Suite
from imaging_consent.provenance import register_study
from imaging_consent.stores import FolderStore, Problem

#: Up to this many skipped files are listed by default; more are counted by reason.
SKIPPED_LISTED = 10

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
    patient: Annotated[str, typer.Option("--patient", help="The patient's wallet address.")],
    path: Annotated[
        Path | None,
        typer.Argument(help="Folder of DICOM files (searched recursively); or use --orthanc."),
    ] = None,
    orthanc: OrthancOpt = None,
    study: Annotated[
        list[str] | None,
        typer.Option("--study", help="Register only this Study Instance UID. Repeatable."),
    ] = None,
    show_uids: Annotated[
        bool,
        typer.Option("--show-uids", help="Also print each study's Study Instance UID."),
    ] = False,
    show_skipped: Annotated[
        bool,
        typer.Option(
            "--show-skipped",
            help=f"List every skipped file with its reason (default: up to {SKIPPED_LISTED}; "
            "beyond that, a count per reason).",
        ),
    ] = False,
) -> None:
    """Register (or update) every study in a folder or an Orthanc server for one patient
    (needs SITE_ROLE).

    The site pepper comes from IMAGING_CONSENT_SITE_PEPPER_FILE (a mode-0600 file) or
    IMAGING_CONSENT_SITE_PEPPER; it never leaves this process. Study UIDs stay off screen
    unless --show-uids is given; files that are not used are reported with their reason.
    """
    owner = address(patient, "--patient")
    pepper = ws.pepper()
    suite = ws.suite
    sender = ws.sender()
    with progress() as bar:
        task = bar.add_task("indexing DICOM files", total=None)

        def on_file(done: int, total: int, _path: object) -> None:
            bar.update(task, completed=done, total=total)

        store = site_store(ws, path, orthanc, on_file)
        uids = study or store.studies()
        bar.update(task, description="registering studies", completed=0, total=len(uids))
        results = []
        for uid in uids:
            results.append(register_study(suite, sender, store, pepper, uid, owner))
            bar.advance(task)
    table = Table(title=f"Studies for patient {owner}")
    columns = ["study UID"] if show_uids else []
    for column in (*columns, "study key", "content root", "instances", "action"):
        table.add_column(column, justify="right" if column == "instances" else "left")
    for result in results:
        uid_cell = [result.study_uid] if show_uids else []
        table.add_row(
            *uid_cell,
            "0x" + result.study_key.hex(),
            short(result.content_root, 16),
            str(result.instance_count),
            result.action.value,
        )
    out_console.print(table)
    if isinstance(store, FolderStore):
        _report_skipped(store, show_skipped)
    else:
        report_orthanc_skipped(store)
    if not results:
        err_console.print(f"[yellow]no DICOM studies found in {store_label(store)}[/]")


def _report_skipped(store: FolderStore, listed: bool) -> None:
    """On stderr: each skipped file with its reason (if few, or asked), then a count by reason."""
    problems = store.problems()
    if not problems:
        return
    listed = listed or len(problems) <= SKIPPED_LISTED
    if listed:
        err_console.print(_skipped_table(store, problems))
    counts = Counter(p.kind.value for p in problems)
    by_reason = ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
    hint = "" if listed else " (--show-skipped lists them)"
    err_console.print(Text(f"{len(problems)} file(s) skipped: {by_reason}{hint}", style="yellow"))


def _skipped_table(store: FolderStore, problems: list[Problem]) -> Table:
    table = Table(title=f"Skipped files in {_printable(str(store.root))}")
    for column in ("file", "reason", "detail"):
        table.add_column(column)
    for problem in problems:
        table.add_row(
            Text(_printable(problem.path.relative_to(store.root).as_posix())),
            Text(problem.kind.value),
            Text(_printable(problem.detail)),
        )
    return table


def _printable(text: str) -> str:
    """``text`` with bytes of a file name that are not UTF-8 shown as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
