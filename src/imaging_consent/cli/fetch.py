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
from typing import Annotated, Any

import typer
from rich.progress import Progress

from imaging_consent.chain import TransactionSender, load_keystore
from imaging_consent.cli.common import (
    JsonOpt,
    UsageProblem,
    Workspace,
    address,
    out_console,
    print_json,
    progress,
    spinner,
    with_workspace,
)
from imaging_consent.cli.stores import StoreOpt
from imaging_consent.cli.tables import CountingStore, name_the_file
from imaging_consent.consent import Purpose
from imaging_consent.contracts.deployment import Suite
from imaging_consent.dicom.keys import PEPPER_FILE_ENV
from imaging_consent.errors import (
    ImagingConsentError,
    IntegrityError,
    ReleaseError,
    StoreError,
    StudyNotRegisteredError,
)
from imaging_consent.gateway import ImageGateway
from imaging_consent.provenance import (
    PROOF_FILE,
    FileStatus,
    ReleaseCheck,
    read_proofs,
    verify_release,
)
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
    store: StoreOpt = None,
    as_json: JsonOpt = False,
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
        with progress() as bar:
            task = bar.add_task(f"{label} as {who}", total=_instance_count(image_store, study_uid))
            counted = CountingStore(image_store, lambda: bar.advance(task))
            with ImageGateway(
                suite, sender, counted, pepper, outbox_path=outbox_path(ws, sender)
            ) as gate:
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
                except IntegrityError as exc:
                    name_the_file(exc, image_store, study_uid)
                    raise
                except StudyNotRegisteredError as exc:
                    _hint_pepper(exc, image_store, study_uid)
                    raise
                finally:
                    _flush(gate)
            files = [p for p in release.files if p.name != PROOF_FILE]
            check = _verified(suite, staging / PROOF_FILE, bar)
        if not check.ok:
            bad = len(check.failed)
            raise ReleaseError(f"{bad} released file(s) failed verification; nothing written")
        _move_into(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if as_json:
        print_json(
            {
                "site": release.site,
                "study_key": release.study_key,
                "requester": who,
                "purpose": release.purpose.name,
                "identified": release.identified,
                "break_glass": release.break_glass,
                "request_id": release.request_id,
                "log_tx": release.log_tx,
                "out": str(out),
                "proof": str(out / PROOF_FILE),
                "files": [str(out / p.name) for p in files],
                "verified": len(files),
                "proves": check.proofs.proves,
            }
        )
        return
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


def _instance_count(store: FolderStore, study_uid: str) -> int | None:
    """How many instances the gate will read (the whole study), if the store has it."""
    try:
        return len(store.instances(study_uid))
    except StoreError:
        return None


def _hint_pepper(exc: StudyNotRegisteredError, store: FolderStore, study_uid: str) -> None:
    """Say what to check when the chain has no study under the key the pepper gives."""
    if _instance_count(store, study_uid) is None:
        hint = "the store has no such study either: check the Study Instance UID"
    else:
        hint = (
            "the store has this study, but no study is registered under this key: check the "
            f"site pepper ({PEPPER_FILE_ENV}), or register the study (`site register`)"
        )
    exc.args = (f"{exc}; {hint}",)


def _verified(
    suite: Suite, proof: Path, bar: Progress, files: list[Path] | None = None
) -> ReleaseCheck:
    """Verify a release against the chain, counting its files on ``bar``."""
    total = len(read_proofs(proof).files)
    task = bar.add_task("verifying against the chain", total=total)
    return verify_release(suite, proof, files, on_file=lambda _path: bar.advance(task))


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
    as_json: JsonOpt = False,
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
    with progress() as bar:
        check = _verified(ws.suite, proof, bar, [*given, *extra])
    if as_json:
        print_json(_verify_document(check))
    else:
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
    if not as_json:
        out_console.print(
            f"[green]verified[/] {len(check.files)} file(s) against the chain: "
            f"{check.proofs.proves}"
        )


def _verify_document(check: ReleaseCheck) -> dict[str, Any]:
    """``verify --json``: the release, what its verification proves, and each file's status."""
    proofs = check.proofs
    return {
        "ok": check.ok,
        "site": proofs.site,
        "study_key": proofs.study_key,
        "request_id": proofs.request_id,
        "identified": proofs.identified,
        "break_glass": proofs.break_glass,
        "content_protocol": int(proofs.protocol),
        "proves": proofs.proves,
        "files": [
            {"path": str(f.path), "status": f.status.name.lower(), "detail": f.status.value}
            for f in check.files
        ],
    }
