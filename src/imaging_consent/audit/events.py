"""What every audit format shares: times, the events in order, and what they mean in words.

Pure functions of the values in an :class:`~imaging_consent.index.AuditTrail`; nothing here
reads the chain or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from imaging_consent.access_log import AccessEvent
from imaging_consent.consent import ALL_STUDIES, ConsentEvent, Grant, Purpose
from imaging_consent.index import AuditTrail

__all__ = [
    "AuditItem",
    "Counts",
    "counts",
    "grant_status",
    "grant_window",
    "iso_utc",
    "newest_first",
    "outcome",
    "purpose_label",
    "refusal_reason",
    "scope_label",
    "source_line",
]

#: One row of a trail: a consent change or an access.
AuditItem = ConsentEvent | AccessEvent

#: Refusal reasons a gateway stores beside a batched refusal (error class names), in words.
_REASONS = {
    "ConsentDeniedError": "no consent of yours covered this request",
    "ConsentNarrowed": "your consent was narrowed to de-identified images while the study was read",
    "IntegrityError": "the images did not match what the site registered, so none were sent",
    "ChainUnavailableError": "the consent could not be checked (the chain did not answer)",
    "InvalidSignatureError": "the emergency request was not properly signed",
    "SignatureExpiredError": "the emergency request had expired",
    "NotEmergencyError": "the requester is not an emergency clinician of the site",
}


def iso_utc(timestamp: int) -> str:
    """Unix seconds as ISO 8601 in UTC (``2027-01-31T12:00:00Z``)."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def scope_label(scope: bytes) -> str:
    """``all studies`` or the study key (0x-hex)."""
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


def purpose_label(purpose: Purpose | None, code: int) -> str:
    """``TREAT (treatment)``, or ``code 9 (unknown purpose)`` for a code the registry lacks."""
    if purpose is None:
        return f"code {code} (unknown purpose)"
    return f"{purpose.name} ({purpose.display})"


def outcome(event: AccessEvent) -> str:
    """``released``, ``refused`` or ``break-glass`` (released without consent, flagged)."""
    return {"granted": "released", "denied": "refused", "break_glass": "break-glass"}[event.kind]


def refusal_reason(event: AccessEvent) -> str:
    """Why an access was refused, in words (the gateway's reason for a batched refusal)."""
    if event.reason is not None:
        return _REASONS.get(event.reason, f"the gateway stopped the release ({event.reason})")
    if event.purpose is None:
        return "the purpose asked for is not one a consent can name"
    return "no consent of yours covered this requester, study and purpose at that time"


def _order(item: AuditItem) -> tuple[int, int, int, bytes]:
    request_id = item.request_id if isinstance(item, AccessEvent) else b""
    return item.block_number, item.log_index, item.timestamp, request_id


def newest_first(trail: AuditTrail) -> list[AuditItem]:
    """Every consent change and access, newest first (block, log index; batched records,
    which share their anchor's block and log index, by time then request id)."""
    items: list[AuditItem] = [*trail.consents, *trail.accesses]
    return sorted(items, key=_order, reverse=True)


@dataclass(frozen=True, slots=True)
class Counts:
    """How many accesses of each outcome a trail holds.

    Attributes:
        released: Releases with consent.
        refused: Refusals.
        break_glass: Emergency accesses without consent.
        batched: Records (of any outcome) anchored in a batch.
    """

    released: int
    refused: int
    break_glass: int
    batched: int


def counts(trail: AuditTrail) -> Counts:
    """The trail's accesses counted by outcome."""
    kinds = [e.kind for e in trail.accesses]
    return Counts(
        released=kinds.count("granted"),
        refused=kinds.count("denied"),
        break_glass=kinds.count("break_glass"),
        batched=sum(1 for e in trail.accesses if e.batched),
    )


def source_line(trail: AuditTrail) -> str:
    """Where the data came from and how far behind the chain it is, in one sentence."""
    if trail.source == "chain":
        return (
            f"Read straight from the chain's events, up to its latest block ({iso_utc(trail.now)})."
        )
    lag = "up to date with" if trail.behind == 0 else f"{trail.behind} block(s) behind"
    return (
        f"Read from the audit index, {lag} the chain's latest block; its newest block is from "
        f"{iso_utc(trail.now)}."
    )
