"""``imaging-consent audit``: who accessed a patient's studies, and under which consent."""

from __future__ import annotations

from typing import Annotated

import typer

from imaging_consent.cli.common import (
    JsonOpt,
    Workspace,
    address,
    out_console,
    print_json,
    spinner,
    with_workspace,
)
from imaging_consent.cli.tables import audit_document, audit_view
from imaging_consent.index import trail_from_chain

__all__ = ["app"]

app = typer.Typer()


@app.command("audit")
@with_workspace(signs=False)
def audit(
    ws: Workspace,
    patient: Annotated[str, typer.Option("--patient", help="The patient's address.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a patient's grants and every access, refusal and break-glass event (newest first).

    Below 100 columns, or when a table would not fit, each record is a block of lines; keys
    and addresses are always shown whole.
    """
    with spinner("reading the chain's events..."):
        trail = trail_from_chain(ws.suite, address(patient, "--patient"))
    if as_json:
        print_json(audit_document(trail))
        return
    for part in audit_view(trail):
        out_console.print(part)
