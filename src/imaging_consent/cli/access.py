"""``fetch``, ``verify`` and ``audit``: getting images through the gate, checking them, and
reading who accessed what.

``fetch`` runs the release gate in this process, as the site's gateway: the gateway key (the
``--keystore`` or ``IMAGING_CONSENT_PRIVATE_KEY``) signs the access-log transaction, and the
requester is named with ``--as ADDRESS`` or proven with ``--requester-keystore``. Across a
network the DICOMweb server authenticates the requester first (a signed challenge), then calls
the same gate; the CLI trusts whoever runs it with the gateway key.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import typer
from rich.table import Table

from imaging_consent.access_log.history import AccessEvent, access_history
from imaging_consent.chain import load_keystore
from imaging_consent.cli.common import (
    ConfigOpt,
    KeystoreOpt,
    ManifestOpt,
    RpcUrlOpt,
    UsageProblem,
    Workspace,
    address,
    err_console,
    out_console,
    short,
    spinner,
    when,
)
from imaging_consent.cli.consent import grants_table, scope_label
from imaging_consent.consent import ConsentClient, ConsentEvent, Purpose
from imaging_consent.contracts.deployment import Suite
from imaging_consent.errors import ReleaseError
from imaging_consent.gateway import ImageGateway
from imaging_consent.provenance import PROOF_FILE, read_proofs, verify_files, write_release
from imaging_consent.stores import FolderStore

__all__ = ["REQUESTER_PASSWORD_ENV", "register"]

REQUESTER_PASSWORD_ENV = "IMAGING_CONSENT_REQUESTER_KEYSTORE_PASSWORD"


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageProblem(f"--out {out} exists and is not an empty folder")


def _move_into(staging: Path, out: Path) -> None:
    """Move the staged files into ``out`` (created, or empty) as late as possible."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()
    os.replace(staging, out)


def fetch(
    study_uid: str = typer.Argument(..., help="The Study Instance UID to fetch."),
    purpose: str = typer.Option(..., "--purpose", help="Purpose of use (TREAT, HRESCH, ...)."),
    out: Path = typer.Option(..., "--out", help="Folder to write the files and proof.json to."),
    requester: str | None = typer.Option(
        None, "--as", help="The requester's address (the app or clinician asking)."
    ),
    requester_keystore: Path | None = typer.Option(
        None,
        "--requester-keystore",
        help=f"Prove the requester with its keystore instead (password {REQUESTER_PASSWORD_ENV}).",
    ),
    series: str | None = typer.Option(None, "--series", help="Only this Series Instance UID."),
    break_glass: str | None = typer.Option(
        None,
        "--break-glass",
        help="Emergency access without consent, with the documented reason (EMERGENCY_ROLE; "
        "always recorded and flagged for the patient).",
    ),
    store: Path | None = typer.Option(
        None, "--store", help="The site's DICOM folder (env IMAGING_CONSENT_STORE; config store)."
    ),
    rpc_url: RpcUrlOpt = None,
    manifest: ManifestOpt = None,
    keystore: KeystoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Fetch a study through the release gate; files are written only once it is released."""
    if (requester is None) == (requester_keystore is None):
        raise UsageProblem("give exactly one of --as ADDRESS or --requester-keystore PATH")
    ws = Workspace(
        rpc_url=rpc_url, manifest=manifest, keystore=keystore, config=config, store=store
    )
    chosen = Purpose.parse(purpose)
    who = (
        address(requester, "--as")
        if requester is not None
        else load_keystore(
            Path(str(requester_keystore)), password_env=REQUESTER_PASSWORD_ENV
        ).address
    )
    _prepare_out(out)
    root = ws.store_root(store)
    pepper = ws.pepper()
    suite = ws.suite
    sender = ws.sender()
    with spinner("indexing the store..."):
        image_store = FolderStore(root)
    label = "break-glass access" if break_glass is not None else f"{chosen.name} access"
    with (
        spinner(f"asking the gate for {label} as {who}..."),
        ImageGateway(suite, sender, image_store, pepper) as gate,
    ):
        release = gate.release(
            study_uid, who, chosen, series_uid=series, break_glass_reason=break_glass
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=out.parent))
    try:
        with spinner("writing and verifying against the chain..."):
            written = write_release(release, staging)
            files = [p for p in written if p.name != PROOF_FILE]
            results = verify_files(suite, files, staging / PROOF_FILE)
        if not all(results.values()):
            bad = sum(not ok for ok in results.values())
            raise ReleaseError(f"{bad} released file(s) failed verification; nothing written")
        _move_into(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    kind = "identified" if release.identified else "de-identified"
    flag = " [bold red]BREAK-GLASS (flagged for the patient)[/]" if release.break_glass else ""
    out_console.print(
        f"[green]released[/] {len(files)} instance(s) of study 0x{release.study_key.hex()} "
        f"({kind}) to {who} for {release.purpose.name}{flag}"
    )
    out_console.print(f"recorded in tx {release.log_tx} (request 0x{release.request_id.hex()})")
    out_console.print(
        f"[green]verified[/] {len(files)}/{len(files)} against the chain; "
        f"written to [bold]{out}[/] with {PROOF_FILE}"
    )


def verify(
    files: list[Path] = typer.Argument(..., help="Released .dcm files, or a folder of them."),
    proof: Path | None = typer.Option(
        None, "--proof", help=f"The release's {PROOF_FILE} (default: next to the files)."
    ),
    rpc_url: RpcUrlOpt = None,
    manifest: ManifestOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Check released files against the content root on chain; exit 1 if any fails."""
    expanded: list[Path] = []
    for item in files:
        if item.is_dir():
            expanded.extend(sorted(item.glob("*.dcm")))
        else:
            expanded.append(item)
    if not expanded:
        raise UsageProblem("no .dcm files to verify")
    if proof is None:
        folders = {p.parent for p in expanded}
        if len(folders) != 1:
            raise UsageProblem("files are in several folders: pass --proof PROOF.json")
        proof = folders.pop() / PROOF_FILE
    ws = Workspace(rpc_url=rpc_url, manifest=manifest, config=config)
    proofs = read_proofs(proof)
    results = verify_files(ws.suite, expanded, proofs)
    for path, ok in results.items():
        mark = "[green]ok[/]    " if ok else "[bold red]FAILED[/]"
        out_console.print(f"{mark} {path}")
    failed = sum(not ok for ok in results.values())
    if failed:
        err_console.print(
            f"[bold red]error:[/] [red]{failed} of {len(results)} file(s) do not match the "
            f"chain (study 0x{proofs.study_key.hex()})[/]"
        )
        raise typer.Exit(1)
    out_console.print(f"[green]verified[/] {len(results)} file(s) against the chain")


def _access_row(event: AccessEvent) -> tuple[int, int, list[str]]:
    purpose = event.purpose.name if event.purpose else f"code {event.purpose_code}"
    if event.kind == "granted":
        what, outcome = "access", "[green]released[/]"
    elif event.kind == "denied":
        what, outcome = "access", "[red]refused[/]"
    else:
        what, outcome = "[bold red]BREAK-GLASS[/]", "[bold red]released, flagged[/]"
    why = purpose
    if event.reason_hash is not None:
        why += f" (reason hash {short(event.reason_hash, 10)})"
    return (
        event.block_number,
        event.log_index,
        [
            when(event.timestamp),
            what,
            event.accessor,
            short(event.study_key, 12),
            why,
            outcome,
            short(event.gateway, 10),
            short(event.tx_hash, 10),
        ],
    )


def _consent_row(event: ConsentEvent) -> tuple[int, int, list[str]]:
    if event.kind == "granted":
        why = ", ".join(p.name for p in sorted(event.purposes, key=lambda p: p.value))
        why += " identified" if event.identified else " de-identified"
        if event.expires_at:
            why += f" until {when(event.expires_at)}"
        what, outcome = "consent granted", "[green]granted[/]"
    elif event.kind == "revoked":
        why, what, outcome = "", "consent revoked", "[yellow]revoked[/]"
    else:
        why = "delegate"
        what = "delegate set"
        outcome = "appointed" if event.allowed else "removed"
    return (
        event.block_number,
        event.log_index,
        [
            when(event.timestamp),
            what,
            event.grantee,
            scope_label(event.scope) if event.scope == bytes(32) else short(event.scope, 12),
            why,
            outcome,
            "",
            short(event.tx_hash, 10),
        ],
    )


def audit_tables(suite: Suite, patient: str) -> tuple[Table, Table]:
    """The patient's current grants, and every consent and access event, newest first."""
    owner = address(patient, "--patient")
    grants = ConsentClient(suite).grants_of(owner)
    accesses = access_history(suite, owner)
    now = int(suite.session.w3.eth.get_block("latest")["timestamp"])
    rows = [_consent_row(e) for e in grants.events] + [_access_row(e) for e in accesses]
    rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
    events = Table(title=f"Audit trail of patient {owner}, newest first")
    for column in ("when", "what", "who", "study", "why", "outcome", "gateway", "tx"):
        events.add_column(
            column, no_wrap=column == "who", min_width=42 if column == "who" else None
        )
    for _block, _index, cells in rows:
        events.add_row(*cells)
    flagged = sum(1 for e in accesses if e.kind == "break_glass")
    if flagged:
        events.caption = f"[bold red]{flagged} break-glass access(es) flagged for review[/]"
    return grants_table(grants.current, now, "Current grants"), events


def audit(
    patient: str = typer.Option(..., "--patient", help="The patient's address."),
    rpc_url: RpcUrlOpt = None,
    manifest: ManifestOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show a patient's grants and every access, refusal and break-glass event (newest first)."""
    ws = Workspace(rpc_url=rpc_url, manifest=manifest, config=config)
    with spinner("reading the chain's events..."):
        grants, events = audit_tables(ws.suite, patient)
    out_console.print(grants)
    out_console.print(events)


def register(app: typer.Typer) -> None:
    """Add ``fetch``, ``verify`` and ``audit`` to ``app``."""
    app.command("fetch")(fetch)
    app.command("verify")(verify)
    app.command("audit")(audit)
