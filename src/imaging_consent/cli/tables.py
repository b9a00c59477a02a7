"""The tables and short forms that several commands (and the demo) print.

A leaf: it imports nothing from the other command modules but :mod:`.common`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from rich.table import Table

from imaging_consent.access_log import AccessEvent, access_history
from imaging_consent.cli.common import address
from imaging_consent.consent import ALL_STUDIES, ConsentClient, ConsentEvent, Grant
from imaging_consent.contracts.deployment import Suite

__all__ = ["audit_tables", "grants_table", "scope_label", "short", "when"]


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


def grants_table(grants: tuple[Grant, ...], now: int, title: str) -> Table:
    """A table of grants, marking expired and not-yet-valid ones."""
    table = Table(title=title)
    for column in ("patient", "grantee", "scope", "purposes", "data", "valid", "status"):
        table.add_column(column)
    for grant in grants:
        start = when(grant.not_before) if grant.not_before else "now"
        end = when(grant.expires_at) if grant.expires_at else "no expiry"
        status = (
            "[green]active[/]"
            if grant.is_active(now)
            else ("[yellow]not yet valid[/]" if now < grant.not_before else "[red]expired[/]")
        )
        table.add_row(
            grant.patient,
            grant.grantee,
            scope_label(grant.scope) if grant.all_studies else short(grant.scope, 16),
            ", ".join(p.name for p in sorted(grant.purposes, key=lambda p: p.value)),
            "identified" if grant.identified else "de-identified",
            f"{start} → {end}",
            status,
        )
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
