"""The audit trail as CSV (``audit --format csv``): one row per consent change and access.

RFC 4180 (the :mod:`csv` module, CRLF line ends, quoting where needed), a header row of
:data:`COLUMNS`, rows newest first. Times are ISO 8601 UTC, keys and addresses whole, an empty
cell means "none".
"""

from __future__ import annotations

import csv
import io

from imaging_consent.access_log import AccessEvent
from imaging_consent.audit.events import (
    AuditItem,
    iso_utc,
    newest_first,
    outcome,
    refusal_reason,
    scope_label,
)
from imaging_consent.consent import ConsentEvent
from imaging_consent.index import AuditTrail

__all__ = ["COLUMNS", "audit_csv"]

#: The columns, in order (docs/cli.md describes each).
COLUMNS = (
    "time",
    "record",
    "event",
    "outcome",
    "patient",
    "who",
    "study",
    "purposes",
    "identified",
    "valid_from",
    "valid_until",
    "break_glass",
    "batched",
    "batch_id",
    "batch_root",
    "batch_proof",
    "reason",
    "reason_code",
    "reason_commitment",
    "acted_by",
    "gateway",
    "request_id",
    "block_number",
    "log_index",
    "tx_hash",
)


def _hex(value: bytes | None) -> str:
    return "" if value is None else "0x" + value.hex()


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _access(event: AccessEvent) -> dict[str, str]:
    return {
        "record": "access",
        "event": event.kind,
        "outcome": outcome(event),
        "who": event.accessor,
        "study": "0x" + event.study_key.hex(),
        "purposes": event.purpose.name if event.purpose else str(event.purpose_code),
        "identified": _flag(event.identified),
        "break_glass": _flag(event.kind == "break_glass"),
        "batched": _flag(event.batched),
        "batch_id": _hex(event.batch_id),
        "batch_root": _hex(event.batch_root),
        "batch_proof": ";".join("0x" + step.hex() for step in event.proof),
        "reason": refusal_reason(event) if event.kind == "denied" else "",
        "reason_code": event.reason or "",
        "reason_commitment": _hex(event.reason_commitment),
        "gateway": event.gateway,
        "request_id": "0x" + event.request_id.hex(),
    }


def _consent(event: ConsentEvent) -> dict[str, str]:
    granted = event.kind == "granted"
    return {
        "record": "consent",
        "event": event.kind,
        "outcome": event.label,
        "who": event.grantee,
        "study": scope_label(event.scope),
        "purposes": " ".join(sorted(p.name for p in event.purposes)),
        "identified": _flag(event.identified) if granted else "",
        "valid_from": iso_utc(event.not_before) if event.not_before else "",
        "valid_until": iso_utc(event.expires_at) if event.expires_at else "",
        "break_glass": "false",
        "batched": "false",
        "acted_by": event.acted_by,
    }


def _row(item: AuditItem) -> dict[str, str]:
    cells = _access(item) if isinstance(item, AccessEvent) else _consent(item)
    return {
        "time": iso_utc(item.timestamp),
        "patient": item.patient,
        "block_number": str(item.block_number),
        "log_index": str(item.log_index),
        "tx_hash": item.tx_hash,
        **cells,
    }


def audit_csv(trail: AuditTrail, generated_at: int | None = None) -> str:
    """The trail as CSV text: a header, then one row per event, newest first.

    Args:
        trail: The patient's audit trail.
        generated_at: Unused (a CSV file has no place for it); accepted like every format.
    """
    del generated_at
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=COLUMNS, restval="", lineterminator="\r\n")
    writer.writeheader()
    for item in newest_first(trail):
        writer.writerow(_row(item))
    return out.getvalue()
