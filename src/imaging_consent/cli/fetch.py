"""``fetch`` and ``verify``: getting images through the release gate, and checking them.

``fetch`` runs the release gate in this process, as the site's gateway: the gateway key (the
``--keystore`` or ``IMAGING_CONSENT_PRIVATE_KEY``) signs the access-log transaction, and the
requester is named with ``--as ADDRESS`` or proven with ``--requester-keystore``. Across a
network the DICOMweb server authenticates the requester first (a signed challenge), then calls
the same gate; the CLI trusts whoever runs it with the gateway key.

The gateway's outbox is ``outbox-<chainId>-<gateway>.sqlite3`` beside the manifest; every fetch
flushes it after the gate decided, so refusals and earlier leftovers are anchored.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from imaging_consent.chain import TransactionSender, load_keystore
from imaging_consent.cli.common import (
    UsageProblem,
    Workspace,
    address,
    out_console,
    spinner,
    with_workspace,
)
from imaging_consent.consent import Purpose
from imaging_consent.errors import ImagingConsentError, ReleaseError
from imaging_consent.gateway import ImageGateway
from imaging_consent.provenance import PROOF_FILE, FileStatus, verify_release
from imaging_consent.stores import FolderStore

__all__ = ["REQUESTER_PASSWORD_ENV", "app"]

REQUESTER_PASSWORD_ENV = "IMAGING_CONSENT_REQUESTER_KEYSTORE_PASSWORD"

app = typer.Typer()

logger = logging.getLogger(__name__)


def outbox_path(ws: Workspace, sender: TransactionSender) -> Path:
    """The gateway's default outbox: beside the manifest, one per chain and gateway account."""
    return ws.manifest_path.parent / f"outbox-{ws.session.chain_id}-{sender.address}.sqlite3"


def _flush(gate: ImageGateway) -> None:
    """Anchor what waits in the outbox; a failure leaves it there for the next run."""
    try:
        gate.flush()
    except ImagingConsentError as exc:
        logger.warning("the outbox could not be flushed (%s); it is kept", type(exc).__name__)


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageProblem(f"--out {out} exists and is not an empty folder")


def _move_into(staging: Path, out: Path) -> None:
    """Move the staged files into ``out`` (created, or empty) as late as possible."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()
    os.replace(staging, out)


@app.command("fetch")
@with_workspace()
def fetch(
    ws: Workspace,
    study_uid: Annotated[str, typer.Argument(help="The Study Instance UID to fetch.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Purpose of use (TREAT, HRESCH, ...).")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the files and proof.json to.")
    ],
    requester: Annotated[
        str | None,
        typer.Option("--as", help="The requester's address (the app or clinician asking)."),
    ] = None,
    requester_keystore: Annotated[
        Path | None,
        typer.Option(
            "--requester-keystore",
            help="Prove the requester with its keystore instead "
            f"(password {REQUESTER_PASSWORD_ENV}).",
        ),
    ] = None,
    series: Annotated[
        str | None, typer.Option("--series", help="Only this Series Instance UID.")
    ] = None,
    break_glass: Annotated[
        str | None,
        typer.Option(
            "--break-glass",
            help="Emergency access without consent, with the documented reason: the "
            "site's emergency clinician signs it with --requester-keystore (always recorded "
            "and flagged for the patient; the reason stays at the site).",
        ),
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store", help="The site's DICOM folder (env IMAGING_CONSENT_STORE; config store)."
        ),
    ] = None,
) -> None:
    """Fetch a study through the release gate; files are written only once it is released."""
    if (requester is None) == (requester_keystore is None):
        raise UsageProblem("give exactly one of --as ADDRESS or --requester-keystore PATH")
    if break_glass is not None and requester_keystore is None:
        raise UsageProblem(
            "--break-glass needs the clinician's own signature: use --requester-keystore"
        )
    chosen = Purpose.parse(purpose)
    clinician = (
        None
        if requester_keystore is None
        else load_keystore(Path(requester_keystore), password_env=REQUESTER_PASSWORD_ENV)
    )
    who = clinician.address if clinician is not None else address(str(requester), "--as")
    _prepare_out(out)
    root = ws.store_root(store)
    pepper = ws.pepper()
    suite = ws.suite
    sender = ws.sender()
    with spinner("indexing the store..."):
        image_store = FolderStore(root)
    label = "break-glass access" if break_glass is not None else f"{chosen.name} access"
    out.parent.mkdir(parents=True, exist_ok=True)
    # The gate streams the files into a staging folder beside --out; they move to --out only
    # once recorded and verified against the chain here.
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=out.parent))
    try:
        with (
            spinner(f"asking the gate for {label} as {who}..."),
            ImageGateway(
                suite, sender, image_store, pepper, outbox_path=outbox_path(ws, sender)
            ) as gate,
        ):
            signed = (
                gate.break_glass_request(clinician, study_uid, break_glass)
                if break_glass is not None and clinician is not None
                else None
            )
            try:
                release = gate.release(
                    study_uid,
                    who,
                    chosen,
                    series_uid=series,
                    break_glass=signed,
                    destination=staging,
                )
            finally:
                _flush(gate)
        files = [p for p in release.files if p.name != PROOF_FILE]
        with spinner("verifying against the chain..."):
            check = verify_release(suite, staging / PROOF_FILE)
        if not check.ok:
            bad = len(check.failed)
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
        f"[green]verified[/] {len(files)}/{len(files)} against the chain ({check.proofs.proves}); "
        f"written to [bold]{out}[/] with {PROOF_FILE}"
    )


_MARKS = {
    FileStatus.MISMATCH: "FAILED ",
    FileStatus.MISSING: "MISSING",
    FileStatus.UNLISTED: "UNNAMED",
}
_FAILURES = {
    FileStatus.MISMATCH: "do not match the chain",
    FileStatus.MISSING: f"named in {PROOF_FILE} are missing",
    FileStatus.UNLISTED: f"are not named in {PROOF_FILE}",
}


@app.command("verify")
@with_workspace(signs=False)
def verify(
    ws: Workspace,
    files: Annotated[list[Path], typer.Argument(help="A release folder, or released .dcm files.")],
    proof: Annotated[
        Path | None,
        typer.Option("--proof", help=f"The release's {PROOF_FILE} (default: next to the files)."),
    ] = None,
) -> None:
    """Check a release against the content root on chain: every file its proof names must be
    there and match, and no other .dcm file may be there; exit 1 if any fails."""
    for item in files:
        if not item.exists():
            raise UsageProblem(f"{item}: no such file or folder")
    folders = [item for item in files if item.is_dir()]
    given = [item for item in files if not item.is_dir()]
    if proof is None:
        places = {p.resolve() for p in folders} | {p.parent.resolve() for p in given}
        if len(places) != 1:
            raise UsageProblem("files are in several folders: pass --proof PROOF.json")
        proof = places.pop() / PROOF_FILE
    extra = [
        p for folder in folders for p in sorted(folder.iterdir()) if p.suffix.lower() == ".dcm"
    ]
    check = verify_release(ws.suite, proof, [*given, *extra])
    for result in check.files:
        mark = "[green]ok[/]     " if result.ok else f"[bold red]{_MARKS[result.status]}[/]"
        reason = "" if result.ok else f" ({result.status.value})"
        out_console.print(f"{mark} {result.path}{reason}")
    if not check.ok:
        counts = Counter(result.status for result in check.failed)
        parts = ", ".join(
            f"{counts[status]} file(s) {text}"
            for status, text in _FAILURES.items()
            if counts[status]
        )
        raise ReleaseError(
            f"release of study 0x{check.proofs.study_key.hex()} failed verification: {parts}"
        )
    out_console.print(
        f"[green]verified[/] {len(check.files)} file(s) against the chain: {check.proofs.proves}"
    )
