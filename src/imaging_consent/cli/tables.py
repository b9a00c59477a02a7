"""The tables that several commands (and the demo) print, how they fit the terminal, and
the progress and file names they show over an image store.

A leaf: it imports nothing from the other command modules but :mod:`.common`. Keys, hashes and
addresses are printed whole, never cut: :func:`fit` shows a table as it is when it fits the
console, and one record per block (a header and a value a line) when it does not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import BinaryIO

from rich.console import RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from imaging_consent.access_log import AccessEvent
from imaging_consent.audit.events import (
    grant_status,
    grant_window,
    newest_first,
    scope_label,
    source_line,
)
from imaging_consent.cli.common import address, iso_utc, out_console
from imaging_consent.consent import ConsentEvent, Grant
from imaging_consent.contracts.deployment import Suite
from imaging_consent.errors import ImagingConsentError, StoreError
from imaging_consent.index import AuditTrail, trail_from_chain
from imaging_consent.stores import FolderStore, ImageStore, InstanceRecord

__all__ = [
    "CountingStore",
    "accesses_table",
    "audit_tables",
    "audit_view",
    "fit",
    "grant_status",
    "grant_window",
    "grants_table",
    "name_the_file",
    "record_blocks",
    "scope_label",
    "short",
    "when",
]


def short(value: bytes | str, digits: int = 10) -> str:
    """A shortened 0x-hex value for tables (``0x1234abcd…``)."""
    text = "0x" + value.hex() if isinstance(value, bytes) else value
    return text if len(text) <= digits + 2 else text[: digits + 2] + "…"


def when(timestamp: int) -> str:
    """Unix seconds as ISO 8601 in UTC (``2027-01-31T12:00:00Z``), as every time is shown."""
    return iso_utc(timestamp)


def record_blocks(title: str, records: list[list[tuple[str, str]]]) -> Table:
    """The narrow layout (below 100 columns): one block of ``field  value`` lines per record.

    Values are never cut: one that does not fit folds onto the next line.
    """
    table = Table(title=title, show_header=False, box=None, padding=(0, 1))
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for number, record in enumerate(records):
        if number:
            table.add_row("", "")
        for field, value in record:
            table.add_row(field, value)
    return table


def grants_table(grants: tuple[Grant, ...], now: int, title: str, *, narrow: bool = False) -> Table:
    """A table of grants, full addresses and keys, marking expired and not-yet-valid ones.

    Args:
        grants: The grants.
        now: Unix second to judge them at (the latest block's time).
        title: The table's title.
        narrow: One block per grant (for fewer than 100 columns) instead of one row.
    """
    colour = {"active": "green", "not yet valid": "yellow", "expired": "red"}
    rows = [
        [
            ("patient", grant.patient),
            ("grantee", grant.grantee),
            ("scope", scope_label(grant.scope)),
            ("purposes", ", ".join(p.name for p in sorted(grant.purposes, key=lambda p: p.value))),
            ("data", "identified" if grant.identified else "de-identified"),
            ("valid", grant_window(grant.not_before, grant.expires_at)),
            ("status", f"[{colour[grant_status(grant, now)]}]{grant_status(grant, now)}[/]"),
        ]
        for grant in grants
    ]
    if narrow:
        return record_blocks(title, rows)
    table = Table(title=title)
    for column in ("patient", "grantee", "scope", "purposes", "data", "valid", "status"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(value for _, value in row))
    return table


def _access_row(event: AccessEvent) -> list[str]:
    purpose = event.purpose.name if event.purpose else f"code {event.purpose_code}"
    if event.kind == "granted":
        what, outcome = "access", "[green]released[/]"
    elif event.kind == "denied":
        what, outcome = "access", "[red]refused[/]"
    else:
        what, outcome = "[bold red]BREAK-GLASS[/]", "[bold red]released, flagged[/]"
    why = purpose
    if event.reason_commitment is not None:
        why += f" (reason commitment 0x{event.reason_commitment.hex()})"
    if event.reason is not None:
        outcome += f" ({event.reason})"
    if event.batched:
        what += " [yellow](batched)[/]"
    return [
        when(event.timestamp),
        what,
        event.accessor,
        "0x" + event.study_key.hex(),
        why,
        outcome,
        event.gateway,
        event.tx_hash,
    ]


def _consent_row(event: ConsentEvent) -> list[str]:
    why = ""
    if event.kind == "granted":
        why = ", ".join(p.name for p in sorted(event.purposes, key=lambda p: p.value))
        why += " identified" if event.identified else " de-identified"
        if event.expires_at:
            why += f" until {iso_utc(event.expires_at)}"
    elif event.kind == "delegate_set" and event.allowed:
        why = f"until {iso_utc(event.expires_at)}"
    if event.via != "patient":
        why = f"{why} (by {event.acted_by})".strip()
    outcome = {
        "consent granted": "[green]granted[/]",
        "consent revoked": "[yellow]revoked[/]",
        "delegate appointed": "appointed",
        "delegate removed": "removed",
    }.get(event.label, event.kind)
    return [
        iso_utc(event.timestamp),
        event.label,
        event.grantee,
        scope_label(event.scope),
        why,
        outcome,
        "",
        event.tx_hash,
    ]


def accesses_table(events: tuple[AccessEvent, ...], title: str) -> RenderableType:
    """Access records (newest first), fitted to the console like the audit trail's events."""
    table = Table(title=title)
    for column in ("when", "what", "who", "study", "why", "outcome", "gateway", "tx"):
        table.add_column(column)
    for event in reversed(events):
        table.add_row(*_access_row(event))
    return fit(table)


def audit_tables(suite: Suite, patient: str) -> tuple[RenderableType, RenderableType]:
    """The patient's current grants, and every consent and access event, newest first, each
    fitted to the console (see :func:`fit`).

    Raises:
        InvalidAddressError: If ``patient`` is not an address.
        LogQueryError: If the node refuses the log query even one block at a time.
        ChainUnavailableError: If the chain cannot be reached.
    """
    return audit_view(trail_from_chain(suite, address(patient, "--patient")))


def audit_view(trail: AuditTrail) -> tuple[RenderableType, RenderableType]:
    """The trail's current grants, and every consent and access event, newest first, each
    fitted to the console (see :func:`fit`)."""
    events = Table(title=f"Audit trail of patient {trail.patient}, newest first")
    for column in ("when", "what", "who", "study", "why", "outcome", "gateway", "tx"):
        events.add_column(column)
    for item in newest_first(trail):
        events.add_row(
            *(_access_row(item) if isinstance(item, AccessEvent) else _consent_row(item))
        )
    notes = [escape(source_line(trail))]
    batched = sum(1 for e in trail.accesses if e.batched)
    if batched:
        notes.append(
            f"[yellow]{batched} batched record(s)[/]: judged by the gateway and anchored in a "
            "batch; their tx is the anchor's, and each is provable against its root"
        )
    if trail.flagged:
        notes.append(f"[bold red]{trail.flagged} break-glass access(es) flagged for review[/]")
    events.caption = "\n".join(notes)
    return fit(grants_table(trail.grants, trail.now, "Current grants")), fit(events)


def fit(table: Table, width: int | None = None) -> RenderableType:
    """``table`` as it is if it fits ``width`` (default: the console's) unwrapped, else one
    record per block: each column's header and value on a line, values folded, never cut."""
    width = out_console.width if width is None else width
    wide = out_console.options.update_width(_UNBOUNDED)
    if Measurement.get(out_console, wide, table).maximum <= width:
        for column in table.columns:
            column.overflow = "fold"
        return table
    return _blocks(table)


_UNBOUNDED = 10_000


def _blocks(table: Table) -> RenderableType:
    # One grid of one column: its rows wrap at the console's width (a title at spaces, a long
    # value folded), where printed text would not (the consoles print with soft wrap).
    page = Table.grid()
    page.add_column(overflow="fold")
    if table.title:
        page.add_row(Text.from_markup(str(table.title), style="bold"))
    headers = [str(column.header) for column in table.columns]
    label_width = max((len(h) for h in headers), default=0)
    for row in zip(*(list(column.cells) for column in table.columns), strict=True):
        block = Table.grid(padding=(0, 2))
        block.add_column(style="dim", no_wrap=True, min_width=label_width)
        block.add_column(overflow="fold")
        for header, cell in zip(headers, row, strict=True):
            if _plain(cell):
                block.add_row(header, cell)
        page.add_row("")
        page.add_row(block)
    if table.caption:
        page.add_row("")
        page.add_row(Text.from_markup(str(table.caption)))
    return page


def _plain(cell: RenderableType) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(cell).plain if isinstance(cell, str) else "-"


# --- progress and file names over an image store ----------------------------------------------


class CountingStore:
    """An image store that calls ``on_open`` each time an instance is opened (for progress).

    Args:
        store: The store read.
        on_open: Called (from any thread) before each instance is opened.
    """

    def __init__(self, store: ImageStore, on_open: Callable[[], None]) -> None:
        self._store = store
        self._on_open = on_open

    def studies(self) -> list[str]:
        """The store's Study Instance UIDs, sorted."""
        return self._store.studies()

    def instances(
        self, study_instance_uid: str, series_instance_uid: str | None = None
    ) -> list[InstanceRecord]:
        """A study's (or one series') instances.

        Raises:
            UnknownStudyError: If the store has no such study or series.
        """
        return self._store.instances(study_instance_uid, series_instance_uid)

    def instance(self, sop_instance_uid: str) -> InstanceRecord:
        """One instance's record.

        Raises:
            UnknownInstanceError: If the store has no such instance.
        """
        return self._store.instance(sop_instance_uid)

    def open(self, sop_instance_uid: str) -> AbstractContextManager[BinaryIO]:
        """Count, then open the instance's bytes.

        Raises:
            UnknownInstanceError: If the store has no such instance.
            StoreError: If the bytes cannot be fetched.
        """
        self._on_open()
        return self._store.open(sop_instance_uid)


_POSITION = re.compile(r"\binstance (\d+) of (\d+)\b")


def name_the_file(exc: ImagingConsentError, store: FolderStore, study_uid: str) -> None:
    """Add the store file to an error that names "instance N of M" of ``study_uid``.

    The gateway and the registration count a study's instances in the store's order; this
    turns the position back into the file, so the operator knows which one to look at.
    """
    text = str(exc)
    match = _POSITION.search(text)
    if match is None:
        return
    try:
        instances = store.instances(study_uid)
        position = int(match.group(1))
        if int(match.group(2)) != len(instances) or not 0 < position <= len(instances):
            return
        path = store.path(instances[position - 1].sop_instance_uid)
    except StoreError:
        return
    exc.args = (f"{text} (file {path})",)
