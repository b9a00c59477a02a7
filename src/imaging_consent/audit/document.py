"""The audit trail as one JSON document (``audit --format json``, alias ``--json``)."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

from imaging_consent.access_log import AccessEvent
from imaging_consent.audit.events import iso_utc, newest_first
from imaging_consent.index import AuditTrail

__all__ = ["audit_document", "audit_json", "record"]

#: Fields that hold unix seconds (0: none); :func:`record` writes them as ISO 8601 UTC.
_TIMES = frozenset({"timestamp", "not_before", "expires_at", "registered_at"})


def _value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, frozenset):
        return sorted(_value(v) for v in value)
    if isinstance(value, tuple):
        return [_value(v) for v in value]
    return value


def record(item: Any) -> dict[str, Any]:
    """A dataclass as a JSON object: times ISO 8601 UTC (0 as null), sets of purposes as
    sorted names, enums by name, bytes as 0x-hex."""
    document: dict[str, Any] = {}
    for field in dataclasses.fields(item):
        value = getattr(item, field.name)
        if field.name in _TIMES:
            document[field.name] = iso_utc(value) if value else None
        else:
            document[field.name] = _value(value)
    return document


def audit_document(trail: AuditTrail, generated_at: int | None = None) -> dict[str, Any]:
    """The trail as the ``audit --json`` document: grants, then events newest first.

    Args:
        trail: The patient's audit trail.
        generated_at: When the document was made (unix seconds); null if not given.
    """
    events = [
        {"type": "access" if isinstance(e, AccessEvent) else "consent", **record(e)}
        for e in newest_first(trail)
    ]
    return {
        "patient": trail.patient,
        "now": iso_utc(trail.now),
        "source": trail.source,
        "behind": trail.behind,
        "generated_at": iso_utc(generated_at) if generated_at is not None else None,
        "grants": [{**record(g), "active": g.is_active(trail.now)} for g in trail.grants],
        "events": events,
        "break_glass_flagged": trail.flagged,
    }


def audit_json(trail: AuditTrail, generated_at: int | None = None) -> str:
    """:func:`audit_document` as text: indented, sorted keys, one final newline."""
    return json.dumps(audit_document(trail, generated_at), indent=2, sort_keys=True) + "\n"
