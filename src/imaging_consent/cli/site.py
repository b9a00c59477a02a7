"""``imaging-consent site``: register and list studies, manage and list roles, make a pepper."""

from __future__ import annotations

import enum
import os
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_typing import ChecksumAddress
from rich.table import Table
from rich.text import Text
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import EventData

from imaging_consent.chain.logs import fetch_logs
from imaging_consent.cli.common import (
    UNCHECKED_FLAG,
    AcceptUncheckedOpt,
    JsonOpt,
    Workspace,
    address,
    err_console,
    iso_utc,
    out_console,
    print_json,
    progress,
    with_workspace,
)
from imaging_consent.cli.stores import OrthancOpt, report_orthanc_skipped, site_store, store_label
from imaging_consent.cli.tables import CountingStore, fit, name_the_file
from imaging_consent.contracts.deployment import Suite
from imaging_consent.contracts.revert import ROLE_NAMES, role_name
from imaging_consent.contracts.study_registry import StudyRecord
from imaging_consent.dicom.keys import PEPPER_FILE_ENV
from imaging_consent.errors import DicomError, KeyMaterialError, StudyNotRegisteredError
from imaging_consent.provenance import RegistrationResult, register_study
from imaging_consent.stores import FolderStore, OrthancStore, Problem

#: Up to this many skipped files are listed by default; more are counted by reason.
SKIPPED_LISTED = 10

__all__ = ["Role", "app"]

app = typer.Typer(
    name="site",
    help="Register and list studies, manage and list roles (sites, admins), make a pepper.",
    no_args_is_help=True,
)
pepper_app = typer.Typer(name="pepper", help="The site pepper (keys every study).")
app.add_typer(pepper_app)


class Role(str, enum.Enum):
    """Who does what: the admin makes sites; a site appoints its own gateways and clinicians."""

    SITE = "SITE"
    GATEWAY = "GATEWAY"
    EMERGENCY = "EMERGENCY"

    @property
    def role_name(self) -> str:
        """The role's name, e.g. ``SITE_ROLE`` (StudyRegistry's constant) or ``GATEWAY_ROLE``."""
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


# --- register ---------------------------------------------------------------------------------


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
    as_json: JsonOpt = False,
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
        total = sum(len(store.instances(uid)) for uid in uids)
        bar.update(task, description="hashing and registering", completed=0, total=total)
        counted = CountingStore(store, lambda: bar.advance(task))
        results = []
        for uid in uids:
            try:
                results.append(register_study(suite, sender, counted, pepper, uid, owner))
            except DicomError as exc:
                if isinstance(store, FolderStore):
                    name_the_file(exc, store, uid)
                raise
    if as_json:
        print_json(_register_document(sender.address, owner, results, store, show_uids))
        return
    out_console.print(fit(_register_table(owner, results, show_uids)))
    if isinstance(store, FolderStore):
        _report_skipped(store, show_skipped)
    else:
        report_orthanc_skipped(store)
    if not results:
        err_console.print(f"[yellow]no DICOM studies found in {store_label(store)}[/]")


def _register_table(
    owner: ChecksumAddress, results: list[RegistrationResult], show_uids: bool
) -> Table:
    table = Table(title=f"Studies for patient {owner}")
    columns = ["study UID"] if show_uids else []
    for column in (*columns, "study key", "content root", "instances", "action"):
        table.add_column(column, justify="right" if column == "instances" else "left")
    for result in results:
        uid_cell = [result.study_uid] if show_uids else []
        table.add_row(
            *uid_cell,
            "0x" + result.study_key.hex(),
            "0x" + result.content_root.hex(),
            str(result.instance_count),
            result.action.value,
        )
    return table


def _register_document(
    site: ChecksumAddress,
    owner: ChecksumAddress,
    results: list[RegistrationResult],
    store: FolderStore | OrthancStore,
    show_uids: bool,
) -> dict[str, Any]:
    studies = []
    for result in results:
        entry: dict[str, Any] = {
            "study_key": result.study_key,
            "content_root": result.content_root,
            "instance_count": result.instance_count,
            "action": result.action.value,
            "tx_hash": result.tx_hash,
        }
        if show_uids:
            entry["study_uid"] = result.study_uid
        studies.append(entry)
    if isinstance(store, FolderStore):
        skipped = [
            {
                "file": _printable(p.path.relative_to(store.root).as_posix()),
                "reason": p.kind.value,
                "detail": _printable(p.detail),
            }
            for p in store.problems()
        ]
    else:
        skipped = [
            {"orthanc_instance": p.instance, "reason": p.kind.value, "detail": p.detail}
            for p in store.problems()
        ]
    return {"site": site, "patient": owner, "studies": studies, "skipped": skipped}


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


# --- list -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Listed:
    """A study of the site as it stands, with its content version."""

    record: StudyRecord
    version: int


@app.command("list")
@with_workspace()
def list_studies(
    ws: Workspace,
    site: Annotated[
        str | None,
        typer.Option("--site", help="The site's address (default: the signing account's)."),
    ] = None,
    patient: Annotated[
        str | None, typer.Option("--patient", help="Only this patient's studies.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List a site's registered studies: study key, patient, instances, content version.

    Read from StudyRegistry's events and current state; retired studies are counted, not
    listed. Patients use the study key in `consent grant --study-key`.
    """
    owner = address(patient, "--patient") if patient is not None else None
    namespace = address(site, "--site") if site is not None else ws.signer().address
    suite = ws.suite
    listed, retired = _site_studies(suite, namespace)
    if owner is not None:
        listed = [s for s in listed if s.record.patient == owner]
    if as_json:
        print_json(
            {
                "site": namespace,
                "patient": owner,
                "studies": [_study_document(s) for s in listed],
                "retired": retired,
            }
        )
        return
    whose = f" for patient {owner}" if owner is not None else ""
    table = Table(title=f"Studies of site {namespace}{whose}")
    for column in ("study key", "patient", "instances", "version", "registered"):
        table.add_column(column, justify="right" if column in ("instances", "version") else "left")
    for study in listed:
        record = study.record
        table.add_row(
            "0x" + record.study_key.hex(),
            record.patient,
            str(record.instance_count),
            str(study.version),
            iso_utc(record.registered_at),
        )
    if retired:
        table.caption = f"{retired} retired study(ies) not listed"
    out_console.print(fit(table))
    if not listed:
        err_console.print(f"[yellow]no registered study{whose} at site {namespace}[/]")


def _site_studies(suite: Suite, site: ChecksumAddress) -> tuple[list[_Listed], int]:
    """The site's current studies (in order of first registration), and how many are retired.

    Raises:
        LogQueryError: If the node refuses the log query even one block at a time.
        ChainUnavailableError: If the chain cannot be reached.
    """
    studies = suite.studies
    logs = fetch_logs(
        suite.session,
        studies.events.StudyRegistered,
        {"site": site},
        from_block=suite.manifest.contracts[studies.NAME].block_number,
    )
    keys = dict.fromkeys(bytes(log["args"]["studyKey"]) for log in logs)
    listed: list[_Listed] = []
    for key in keys:
        try:
            record = studies.study(site, key)
        except StudyNotRegisteredError:
            continue
        listed.append(_Listed(record, studies.content_version(site, key)))
    return listed, len(keys) - len(listed)


def _study_document(study: _Listed) -> dict[str, Any]:
    record = study.record
    return {
        "study_key": record.study_key,
        "patient": record.patient,
        "content_root": record.content_root,
        "instance_count": record.instance_count,
        "content_version": study.version,
        "registered_at": iso_utc(record.registered_at),
    }


# --- roles ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class _Holder:
    """One account holding one role (``site``: the appointing site, for AccessLog roles)."""

    role: str
    account: ChecksumAddress
    site: ChecksumAddress | None
    contract: str


@app.command("roles")
@with_workspace(signs=False)
def roles(ws: Workspace, as_json: JsonOpt = False) -> None:
    """List who holds which role: StudyRegistry's DEFAULT_ADMIN_ROLE and SITE_ROLE, and each
    site's GATEWAY_ROLE and EMERGENCY_ROLE appointments in AccessLog (from the events)."""
    suite = ws.suite
    holders = sorted(_registry_holders(suite)) + sorted(_appointed(suite))
    if as_json:
        print_json({"holders": [_holder_document(h) for h in holders]})
        return
    table = Table(title=f"Role holders on chain {suite.manifest.chain_id}")
    for column in ("role", "account", "appointed by site"):
        table.add_column(column)
    for holder in holders:
        table.add_row(holder.role, holder.account, holder.site or "")
    out_console.print(fit(table))


def _holder_document(holder: _Holder) -> dict[str, Any]:
    return {
        "role": holder.role,
        "account": holder.account,
        "site": holder.site,
        "contract": holder.contract,
    }


def _replay(logs: Iterable[EventData], who: tuple[str, str]) -> dict[tuple[Any, Any], bool]:
    """Each pair of the ``who`` arguments' last state, replayed in order: ``allowed`` where the
    event has it, else granted by RoleGranted and cleared by RoleRevoked."""
    state: dict[tuple[Any, Any], bool] = {}
    for log in logs:
        args = log["args"]
        state[(args[who[0]], args[who[1]])] = bool(
            args.get("allowed", log["event"] == "RoleGranted")
        )
    return state


def _registry_holders(suite: Suite) -> list[_Holder]:
    studies = suite.studies
    logs = fetch_logs(
        suite.session,
        [studies.events.RoleGranted, studies.events.RoleRevoked],
        from_block=suite.manifest.contracts[studies.NAME].block_number,
    )
    return [
        _Holder(role_name(role), Web3.to_checksum_address(account), None, studies.NAME)
        for (role, account), held in _replay(logs, ("role", "account")).items()
        if held and bytes(role) in ROLE_NAMES
    ]


#: AccessLog's appointments: the role, its event, and the event's argument for the member.
_APPOINTMENTS = (
    (Role.GATEWAY, "GatewaySet", "gateway"),
    (Role.EMERGENCY, "EmergencyClinicianSet", "clinician"),
)


def _appointed(suite: Suite) -> list[_Holder]:
    log = suite.access_log
    start = suite.manifest.contracts[log.NAME].block_number
    holders = []
    for role, event, member in _APPOINTMENTS:
        logs = fetch_logs(suite.session, getattr(log.events, event), from_block=start)
        holders += [
            _Holder(role.role_name, Web3.to_checksum_address(account), site, log.NAME)
            for (site, account), held in _replay(logs, ("site", member)).items()
            if held
        ]
    return holders


# --- grant-role / revoke-role -----------------------------------------------------------------


def _role_change(
    role: Role, account: str, grant: bool, ws: Workspace, as_json: bool, checked: bool = True
) -> None:
    who = address(account, "ACCOUNT", checksum_flag=UNCHECKED_FLAG if checked else None)
    suite = ws.suite
    sender = ws.sender()
    site = None if role is Role.SITE else sender.address
    document: dict[str, Any] = {"role": role.role_name, "account": who, "site": site}
    if role.holds(suite, sender.address, who) == grant:
        if as_json:
            print_json({**document, "action": "unchanged", "tx_hash": None, "gas_used": None})
            return
        out_console.print(f"{who} {'already has' if grant else 'does not have'} {role.role_name}")
        return
    receipt = sender.transact(role.change(suite, who, grant))
    verb = "granted" if grant else "revoked"
    if as_json:
        document |= {"action": verb, "tx_hash": receipt.tx_hash, "gas_used": receipt.gas_used}
        print_json(document)
        return
    by = "" if site is None else f" for site {site}"
    out_console.print(
        f"{verb} {role.role_name}{by} {'to' if grant else 'from'} {who} "
        f"in tx {receipt.tx_hash} (gas {receipt.gas_used:,})"
    )


RoleArg = Annotated[Role, typer.Argument(case_sensitive=False, help="SITE, GATEWAY or EMERGENCY.")]
AccountArg = Annotated[str, typer.Argument(help="The address that gains or loses the role.")]


@app.command("grant-role")
@with_workspace()
def grant_role(
    ws: Workspace,
    role: RoleArg,
    account: AccountArg,
    accept_unchecksummed: AcceptUncheckedOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Grant a role: SITE (signed by the admin), or GATEWAY / EMERGENCY (signed by the site
    appointing its own gateway or emergency clinician). The address must carry its EIP-55
    checksum unless --accept-unchecksummed is given."""
    _role_change(role, account, True, ws, as_json, checked=not accept_unchecksummed)


@app.command("revoke-role")
@with_workspace()
def revoke_role(
    ws: Workspace, role: RoleArg, account: AccountArg, as_json: JsonOpt = False
) -> None:
    """Revoke a role: SITE (signed by the admin), GATEWAY / EMERGENCY (signed by their site)."""
    _role_change(role, account, False, ws, as_json, checked=False)


# --- pepper new -------------------------------------------------------------------------------


@pepper_app.command("new")
def pepper_new(
    path: Annotated[Path, typer.Argument(help="The file to create (it must not exist).")],
    as_json: JsonOpt = False,
) -> None:
    """Create a site pepper: 32 random bytes as 64 hex digits, in a new file of mode 0600.

    Every study key depends on the pepper: keep it secret and backed up; an existing file is
    never overwritten.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyMaterialError(
            f"{path} already exists: a site pepper is never overwritten (every study key "
            "registered with it would be lost); choose another path"
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_bytes(32).hex() + "\n")
        out.flush()
        os.fsync(out.fileno())
    if as_json:
        print_json({"path": str(path), "mode": "0600"})
        return
    out_console.print(f"site pepper written to [bold]{path}[/] (mode 0600); use it with")
    out_console.print(f"  export {PEPPER_FILE_ENV}={path}")
