"""The tables that several commands (and the demo) print, how they fit the terminal, and
the progress and file names they show over an image store.

A leaf: it imports nothing from the other command modules but :mod:`.common`. Keys, hashes and
addresses are printed whole, never cut: :func:`fit` shows a table as it is when it fits the
console, and one record per block (a header and a value a line) when it does not.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, BinaryIO

from rich.console import RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from imaging_consent.access_log import AccessEvent
from imaging_consent.cli.common import address, iso_utc, out_console
from imaging_consent.consent import ALL_STUDIES, ConsentEvent, Grant
from imaging_consent.contracts.deployment import Suite
from imaging_consent.errors import ImagingConsentError, StoreError
from imaging_consent.index import AuditTrail, trail_from_chain
from imaging_consent.stores import FolderStore, ImageStore, InstanceRecord

__all__ = [
    "CountingStore",
    "audit_document",
    "audit_tables",
    "audit_view",
    "fit",
    "grant_status",
    "grant_window",
    "grants_table",
    "name_the_file",
    "record",
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


def scope_label(scope: bytes) -> str:
    """``all studies`` or the study key."""
    return "all studies" if scope == ALL_STUDIES else "0x" + scope.hex()


def grant_status(grant: Grant, now: int) -> str:
    """``active``, ``not yet valid`` or ``expired`` at unix second ``now``."""
    if grant.is_active(now):
        return "active"
    return "not yet valid" if now < grant.not_before else "expired"


def grant_window(not_before: int, expires_at: int) -> str:
    """A grant's window in ISO 8601 UTC: ``now → no expiry``, ``2027-01-01T00:00:00Z → ...``."""
    start = iso_utc(not_before) if not_before else "now"
    return f"{start} → {iso_utc(expires_at) if expires_at else 'no expiry'}"


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


def _access_row(event: AccessEvent) -> tuple[int, int, list[str]]:
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
    return (
        event.block_number,
        event.log_index,
        [
            when(event.timestamp),
            what,
            event.accessor,
            "0x" + event.study_key.hex(),
            why,
            outcome,
            event.gateway,
            event.tx_hash,
        ],
    )


def _consent_row(event: ConsentEvent) -> tuple[int, int, list[str]]:
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
    return (
        event.block_number,
        event.log_index,
        [
            iso_utc(event.timestamp),
            event.label,
            event.grantee,
            scope_label(event.scope),
            why,
            outcome,
            "",
            event.tx_hash,
        ],
    )


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
    rows = [_consent_row(e) for e in trail.consents] + [_access_row(e) for e in trail.accesses]
    rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
    events = Table(title=f"Audit trail of patient {trail.patient}, newest first")
    for column in ("when", "what", "who", "study", "why", "outcome", "gateway", "tx"):
        events.add_column(column)
    for _block, _index, cells in rows:
        events.add_row(*cells)
    if trail.flagged:
        events.caption = f"[bold red]{trail.flagged} break-glass access(es) flagged for review[/]"
    return fit(grants_table(trail.grants, trail.now, "Current grants")), fit(events)


def audit_document(trail: AuditTrail) -> dict[str, Any]:
    """The audit trail as the ``audit --json`` document: grants, then events newest first."""
    events = [{"type": "consent", **record(e)} for e in trail.consents]
    events += [{"type": "access", **record(e)} for e in trail.accesses]
    events.sort(key=lambda e: (e["block_number"], e["log_index"]), reverse=True)
    return {
        "patient": trail.patient,
        "now": iso_utc(trail.now),
        "grants": [{**record(g), "active": g.is_active(trail.now)} for g in trail.grants],
        "events": events,
        "break_glass_flagged": trail.flagged,
    }


#: Fields that hold unix seconds (0: none); :func:`record` writes them as ISO 8601 UTC.
_TIMES = frozenset({"timestamp", "not_before", "expires_at", "registered_at"})


def record(item: Any) -> dict[str, Any]:
    """A dataclass as a JSON object: times ISO 8601 UTC (0 as null), sets of purposes as
    sorted names, bytes as 0x-hex (by :func:`~.common.print_json`)."""
    document: dict[str, Any] = {}
    for field in dataclasses.fields(item):
        value = getattr(item, field.name)
        if field.name in _TIMES:
            value = iso_utc(value) if value else None
        elif isinstance(value, frozenset):
            value = sorted(p.name for p in value)
        document[field.name] = value
    return document


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
