"""The tables and short forms that several commands (and the demo) print.

A leaf: it imports nothing from the other command modules but :mod:`.common`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from rich.table import Table

from imaging_consent.access_log import AccessEvent, access_history
from imaging_consent.cli.common import address, iso_utc
from imaging_consent.consent import ALL_STUDIES, ConsentClient, ConsentEvent, Grant
from imaging_consent.contracts.deployment import Suite

__all__ = [
    "audit_tables",
    "grant_status",
    "grant_window",
    "grants_table",
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
    """Unix seconds as ``YYYY-MM-DD HH:MM:SS UTC``."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


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
        why += f" (reason commitment {short(event.reason_commitment, 10)})"
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


def audit_tables(suite: Suite, patient: str) -> tuple[Table, Table]:
    """The patient's current grants, and every consent and access event, newest first.

    Raises:
        InvalidAddressError: If ``patient`` is not an address.
    """
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
