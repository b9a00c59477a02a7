"""Choosing a command's image store: a DICOM folder or an Orthanc server.

A folder given on the command line or ``--orthanc URL`` wins (not both); otherwise an Orthanc
URL from ``IMAGING_CONSENT_ORTHANC_URL`` or the config's ``orthanc``, else the folder from
``IMAGING_CONSENT_STORE`` or the config's ``store``. Orthanc credentials come from the
environment only (:data:`ORTHANC_USERNAME_ENV`, :data:`ORTHANC_PASSWORD_ENV`), never a flag:
a flag would show in process lists and shell history.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from imaging_consent.cli.common import UsageProblem, Workspace, err_console
from imaging_consent.cli.config import ENV
from imaging_consent.stores import FolderStore, OrthancStore

__all__ = [
    "ORTHANC_PASSWORD_ENV",
    "ORTHANC_USERNAME_ENV",
    "OrthancOpt",
    "StoreOpt",
    "report_orthanc_skipped",
    "site_store",
    "store_label",
]

ORTHANC_USERNAME_ENV = "IMAGING_CONSENT_ORTHANC_USERNAME"
ORTHANC_PASSWORD_ENV = "IMAGING_CONSENT_ORTHANC_PASSWORD"

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store", help="The site's DICOM folder (env IMAGING_CONSENT_STORE; config store)."
    ),
]

OrthancOpt = Annotated[
    str | None,
    typer.Option(
        "--orthanc",
        help=(
            f"Read the studies from this Orthanc server instead of a folder (env "
            f"{ENV['orthanc']}; config orthanc). https:// unless on this machine; credentials "
            f"from {ORTHANC_USERNAME_ENV} and {ORTHANC_PASSWORD_ENV}."
        ),
        show_default=False,
    ),
]


def site_store(
    ws: Workspace,
    folder: Path | None,
    orthanc: str | None,
    progress: Callable[[int, int, object], None] | None = None,
) -> FolderStore | OrthancStore:
    """Open (and index) the store a command was pointed at.

    Raises:
        UsageProblem: If both a folder and ``--orthanc`` are given, or no store is set at all.
        StoreError: If the folder or the server cannot be indexed (unreachable, refused...).
    """
    if folder is not None and orthanc is not None:
        raise UsageProblem("give a folder or --orthanc URL, not both")
    if folder is not None:
        return FolderStore(folder, progress=progress)
    url = orthanc if orthanc is not None else ws.config.orthanc
    if url is not None:
        return OrthancStore(
            url,
            username=os.environ.get(ORTHANC_USERNAME_ENV) or None,
            password=os.environ.get(ORTHANC_PASSWORD_ENV) or None,
            progress=progress,
        )
    if ws.config.store is None:
        raise UsageProblem(
            f"no image store: give a folder or --orthanc URL (or set {ENV['store']} or "
            f"{ENV['orthanc']}, or store or orthanc in the config)"
        )
    return FolderStore(ws.config.store, progress=progress)


def store_label(store: FolderStore | OrthancStore) -> str:
    """Where the store's studies are, for messages (an Orthanc URL without credentials)."""
    if isinstance(store, OrthancStore):
        return f"Orthanc at {store.shown}"
    return str(store.root)


def report_orthanc_skipped(store: OrthancStore) -> None:
    """On stderr: each Orthanc instance that could not be indexed, with its reason."""
    problems = store.problems()
    for problem in problems:
        err_console.print(Text(problem.error, style="yellow"))
    if problems:
        err_console.print(
            Text(f"{len(problems)} instance(s) in {store_label(store)} skipped", style="yellow")
        )
