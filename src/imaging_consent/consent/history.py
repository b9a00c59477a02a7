"""Grants and their full history, rebuilt from ConsentRegistry's events alone.

Every change to a grant emits ``ConsentGranted`` or ``ConsentRevoked`` and every delegate
change ``DelegateSet``, so replaying them in order (block, then log index) gives the stored
state. One paged ``eth_getLogs`` query per page covers all three events, from the manifest's
deployment block to ``latest``. Reorganisations are not followed (see
:mod:`imaging_consent.access_log.history`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.types import EventData

from imaging_consent.chain.logs import DEFAULT_PAGE, block_timestamps, fetch_logs
from imaging_consent.consent.purposes import Purpose, purposes_from_mask
from imaging_consent.contracts.consent_registry import ALL_STUDIES
from imaging_consent.contracts.deployment import Suite

__all__ = [
    "ALL_STUDIES",
    "ConsentEvent",
    "Grant",
    "GrantHistory",
    "grant_history",
    "history_from_logs",
]

ConsentEventKind = Literal["granted", "revoked", "delegate_set", "excluded", "included"]
#: Who made a change: the patient directly, a delegate, or a relayed signature of the patient.
Via = Literal["patient", "delegate", "signature"]
_ZERO = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class Grant:
    """A stored grant.

    Attributes:
        patient: The patient who granted.
        grantee: The account allowed access.
        scope: A 32-byte study key, or :data:`ALL_STUDIES`.
        purposes: The purposes of use it permits (never empty).
        identified: True if identified data may be released, False for de-identified only.
        not_before: Unix second from which it applies (0: from the start).
        expires_at: Unix second at which it stops applying (0: never).
    """

    patient: ChecksumAddress
    grantee: ChecksumAddress
    scope: bytes
    purposes: frozenset[Purpose]
    identified: bool
    not_before: int
    expires_at: int

    def is_active(self, at: int) -> bool:
        """Whether the grant applies at unix second ``at`` (the contract's own rule)."""
        return (
            bool(self.purposes)
            and at >= self.not_before
            and (self.expires_at == 0 or at < self.expires_at)
        )

    @property
    def all_studies(self) -> bool:
        """Whether the grant covers all of the patient's studies."""
        return self.scope == ALL_STUDIES


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """One ConsentGranted, ConsentRevoked, DelegateSet or ExclusionSet event.

    Attributes:
        kind: ``"granted"``, ``"revoked"``, ``"delegate_set"``, ``"excluded"`` or
            ``"included"`` (an exclusion lifted).
        patient: The patient.
        grantee: The grantee; for ``delegate_set`` the delegate; zero for exclusions.
        scope: The grant's or delegation's scope, or the excluded study.
        purposes: Granted purposes (empty unless ``granted``).
        identified: Whether identified data was allowed (False unless ``granted``).
        not_before: Grant start (0 unless ``granted``).
        expires_at: Grant or delegation end (0: never, or removed for ``delegate_set``).
        block_number: The block holding the event.
        tx_hash: The transaction, 0x-hex.
        log_index: The event's index in its block.
        timestamp: The block's unix time.
        allowed: For ``delegate_set``: appointed (True) or removed (False); else None.
        via: Who made the change: the patient, a delegate, or a relayed signature.
        actor: The account that acted (the patient, or the delegate).
    """

    kind: ConsentEventKind
    patient: ChecksumAddress
    grantee: ChecksumAddress
    scope: bytes
    purposes: frozenset[Purpose]
    identified: bool
    not_before: int
    expires_at: int
    block_number: int
    tx_hash: str
    log_index: int
    timestamp: int
    allowed: bool | None = None
    via: Via = "patient"
    actor: ChecksumAddress | None = None

    @property
    def label(self) -> str:
        """What happened, in words: ``consent granted``, ``delegate appointed``, ..."""
        if self.kind == "delegate_set":
            return "delegate appointed" if self.allowed else "delegate removed"
        return {
            "granted": "consent granted",
            "revoked": "consent revoked",
            "excluded": "study excluded",
            "included": "exclusion lifted",
        }[self.kind]

    @property
    def acted_by(self) -> str:
        """Who made the change: ``patient``, ``delegate 0x...`` or ``signature relayed``."""
        if self.via == "delegate":
            return f"delegate {self.actor}"
        return "patient (signature, relayed)" if self.via == "signature" else "patient"


@dataclass(frozen=True, slots=True)
class GrantHistory:
    """Grants as stored now, and every event that led there.

    Attributes:
        current: Stored grants (not revoked), oldest change first. Expired or not-yet-valid
            grants are included; filter with :meth:`Grant.is_active`.
        events: Every matching event, oldest first.
    """

    current: tuple[Grant, ...]
    events: tuple[ConsentEvent, ...]


def _event(log: EventData, timestamp: int, companions: dict[str, EventData]) -> ConsentEvent:
    args = log["args"]
    name = log["event"]
    tx_hash = "0x" + bytes(log["transactionHash"]).hex()
    patient = Web3.to_checksum_address(args["patient"])
    companion = companions.get(tx_hash)
    via: Via = "patient"
    actor = patient
    if companion is not None and companion["event"] == "DelegateActed":
        via, actor = "delegate", Web3.to_checksum_address(companion["args"]["delegate"])
    elif companion is not None:
        via = "signature"
    common = {
        "block_number": int(log["blockNumber"]),
        "tx_hash": tx_hash,
        "log_index": int(log["logIndex"]),
        "timestamp": timestamp,
        "patient": patient,
        "via": via,
        "actor": actor,
        "purposes": frozenset(),
        "identified": False,
        "not_before": 0,
        "expires_at": 0,
    }
    if name == "DelegateSet":
        common["expires_at"] = int(args["expiresAt"])
        return ConsentEvent(
            kind="delegate_set",
            grantee=Web3.to_checksum_address(args["delegate"]),
            scope=bytes(args["scope"]),
            allowed=int(args["expiresAt"]) != 0,
            **common,  # type: ignore[arg-type]
        )
    if name == "ExclusionSet":
        return ConsentEvent(
            kind="excluded" if args["excluded"] else "included",
            grantee=Web3.to_checksum_address(_ZERO),
            scope=bytes(args["studyKey"]),
            **common,  # type: ignore[arg-type]
        )
    if name == "ConsentGranted":
        common.update(
            purposes=purposes_from_mask(int(args["purposes"])),
            identified=bool(args["identified"]),
            not_before=int(args["notBefore"]),
            expires_at=int(args["expiresAt"]),
        )
    return ConsentEvent(
        kind="granted" if name == "ConsentGranted" else "revoked",
        grantee=Web3.to_checksum_address(args["grantee"]),
        scope=bytes(args["scope"]),
        **common,  # type: ignore[arg-type]
    )


def grant_history(
    suite: Suite,
    *,
    patient: str | None = None,
    grantee: str | None = None,
    page: int = DEFAULT_PAGE,
    to_block: int | None = None,
) -> GrantHistory:
    """Rebuild the grants of a patient or to a grantee from events.

    Exactly one of ``patient`` and ``grantee`` is given. For a grantee, ``delegate_set``
    events naming them as delegate are included too.

    Args:
        suite: The deployed suite; scanning starts at its manifest's ``block_number``.
        patient: Whose grants to rebuild.
        grantee: Or: the grants made to this account.
        page: Blocks per ``eth_getLogs`` request (halved when the node asks for less).
        to_block: Last block to read; by default ``latest``.

    Raises:
        ValueError: If not exactly one of ``patient`` and ``grantee`` is given.
        LogQueryError: If the node refuses the log query.
        ChainUnavailableError: If the node cannot be reached.
    """
    if (patient is None) == (grantee is None):
        raise ValueError("give exactly one of patient and grantee")
    events = suite.consent.events
    companion_kinds = [events.DelegateActed, events.SignatureUsed]
    if patient is not None:
        filters = {"patient": Web3.to_checksum_address(patient)}
        kinds = [
            events.ConsentGranted,
            events.ConsentRevoked,
            events.DelegateSet,
            events.ExclusionSet,
            *companion_kinds,
        ]
    else:
        # grantee and delegate are both the second indexed argument (topic 2).
        filters = {"grantee": Web3.to_checksum_address(str(grantee))}
        kinds = [events.ConsentGranted, events.ConsentRevoked, events.SignatureUsed]
    logs = list(
        fetch_logs(suite.session, kinds, filters, suite.manifest.block_number, to_block, page=page)
    )
    if grantee is not None:
        logs += fetch_logs(
            suite.session,
            events.DelegateSet,
            {"delegate": filters["grantee"]},
            suite.manifest.block_number,
            to_block,
            page=page,
        )
        logs += fetch_logs(
            suite.session,
            events.DelegateActed,
            {"delegate": filters["grantee"]},
            suite.manifest.block_number,
            to_block,
            page=page,
        )
        logs.sort(key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))
    stamps = block_timestamps(suite.session, (int(log["blockNumber"]) for log in logs))
    return history_from_logs(logs, stamps)


def history_from_logs(logs: Sequence[EventData], stamps: Mapping[int, int]) -> GrantHistory:
    """Replay decoded ConsentRegistry logs (oldest first) into grants and their history.

    ``DelegateActed`` and ``SignatureUsed`` logs are companions: they say who made the change
    in their transaction and are not events of their own.

    Args:
        logs: Decoded logs (``event``, ``args``, ``blockNumber``, ``logIndex``,
            ``transactionHash``), oldest first.
        stamps: Each block's unix time, for every block in ``logs``.
    """
    companions = {
        "0x" + bytes(log["transactionHash"]).hex(): log
        for log in logs
        if log["event"] in ("DelegateActed", "SignatureUsed")
    }
    kept = [log for log in logs if log["event"] not in ("DelegateActed", "SignatureUsed")]
    history = tuple(_event(log, stamps[int(log["blockNumber"])], companions) for log in kept)
    state: dict[tuple[str, str, bytes], Grant] = {}
    for event in history:
        key = (event.patient, event.grantee, event.scope)
        if event.kind == "granted":
            state.pop(key, None)  # a replaced grant moves to the end: latest change last
            state[key] = Grant(
                event.patient,
                event.grantee,
                event.scope,
                event.purposes,
                event.identified,
                event.not_before,
                event.expires_at,
            )
        elif event.kind == "revoked":
            state.pop(key, None)
    return GrantHistory(current=tuple(state.values()), events=history)
