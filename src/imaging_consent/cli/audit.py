"""``imaging-consent audit``: who accessed a patient's studies, and under which consent."""

from __future__ import annotations

from typing import Annotated

import typer

from imaging_consent.cli.common import Workspace, out_console, spinner, with_workspace
from imaging_consent.cli.tables import audit_tables

__all__ = ["app"]

app = typer.Typer()


@app.command("audit")
@with_workspace(signs=False)
def audit(
    ws: Workspace,
    patient: Annotated[str, typer.Option("--patient", help="The patient's address.")],
) -> None:
    """Show a patient's grants and every access, refusal and break-glass event (newest first)."""
    with spinner("reading the chain's events..."):
        grants, events = audit_tables(ws.suite, patient)
    out_console.print(grants)
    out_console.print(events)
