"""``imaging-consent audit``: who accessed a patient's studies, and under which consent.

It reads the audit index when one is configured (or ``index sync`` made the default one) and
says how far behind the chain the index is; ``--from-chain`` reads the chain's logs instead.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from imaging_consent.audit import EXPORTS
from imaging_consent.cli.common import (
    JsonOpt,
    UsageProblem,
    Workspace,
    address,
    err_console,
    out_console,
    spinner,
    with_workspace,
)
from imaging_consent.cli.index import IndexOpt, moment, open_indexer
from imaging_consent.cli.tables import audit_view
from imaging_consent.index import AuditTrail, trail_from_chain

__all__ = ["AuditFormat", "app", "read_trail", "write_private"]

app = typer.Typer()


class AuditFormat(str, enum.Enum):
    """What ``audit`` prints: the terminal table, or one of the export formats."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    HTML = "html"
    FHIR = "fhir"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8), created or replaced with mode 0600.

    Raises:
        OSError: If the file cannot be written, or ``path`` is a symbolic link.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
        os.fchmod(out.fileno(), 0o600)  # an existing file keeps its mode through open()
        out.write(text)


def _table_text(trail: AuditTrail) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=out_console.width, highlight=False, soft_wrap=True)
    for part in audit_view(trail):
        console.print(part)
    return buffer.getvalue()


def read_trail(
    ws: Workspace,
    patient: str,
    *,
    index: str | None = None,
    from_chain: bool = False,
    since: int | None = None,
    until: int | None = None,
) -> AuditTrail:
    """The patient's trail from the index if there is one (and not ``from_chain``), else from
    the chain's logs; accesses limited to ``[since, until)`` when given."""
    owner = address(patient, "--patient")
    if not from_chain:
        with open_indexer(ws, index, create=False) as indexer:
            if indexer is not None:
                return indexer.trail(owner, since=since, until=until)
    with spinner("reading the chain's events..."):
        trail = trail_from_chain(ws.suite, owner)
    kept = tuple(
        e
        for e in trail.accesses
        if (since is None or e.timestamp >= since) and (until is None or e.timestamp < until)
    )
    return dataclasses.replace(trail, accesses=kept)


@app.command("audit")
@with_workspace(signs=False)
def audit(
    ws: Workspace,
    patient: Annotated[str, typer.Option("--patient", help="The patient's address.")],
    index: IndexOpt = None,
    from_chain: Annotated[
        bool,
        typer.Option("--from-chain", help="Read the chain's logs, not the audit index."),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only accesses from then: an ISO date, or a duration ago (30d).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Only accesses before then (same forms).", show_default=False),
    ] = None,
    output_format: Annotated[
        AuditFormat,
        typer.Option(
            "--format",
            help="table (terminal), json, csv, html (a report for the patient) or fhir "
            "(an R4B Bundle of Consent and AuditEvent resources).",
        ),
    ] = AuditFormat.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write to this file (mode 0600) instead of standard output."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a patient's grants and every access, refusal and break-glass event (newest first).

    Below 100 columns, or when a table would not fit, each record is a block of lines; keys
    and addresses are always shown whole. ``--json`` is ``--format json``.
    """
    if from_chain and index:
        raise UsageProblem("--from-chain and --index cannot be combined")
    if as_json and output_format not in (AuditFormat.TABLE, AuditFormat.JSON):
        raise UsageProblem(
            f"--json is --format json; it cannot go with --format {output_format.value}"
        )
    chosen = AuditFormat.JSON if as_json else output_format
    trail = read_trail(
        ws, patient, index=index, from_chain=from_chain,
        since=moment(since, "--since"), until=moment(until, "--until"),
    )  # fmt: skip
    if trail.source == "index":
        err_console.print(f"from the audit index, {trail.behind} block(s) behind the chain")
    if chosen is AuditFormat.TABLE and output is None:
        for part in audit_view(trail):
            out_console.print(part)
        return
    if chosen is AuditFormat.TABLE:
        text = _table_text(trail)
    else:
        text = EXPORTS[chosen.value](trail, int(time.time()))
    if output is None:
        typer.echo(text, nl=False)
        return
    write_private(output, text)
    err_console.print(f"audit trail ({chosen.value}) written to [bold]{output}[/] (mode 0600)")
