"""The patient's view of the access log: who accessed (or was refused) which study, when, why.

:func:`access_history` reads AccessLog's ``AccessGranted``, ``AccessDenied`` and
``BreakGlassAccess`` events where the patient is the indexed ``patient``, in one paged
``eth_getLogs`` query per page (:func:`fetch_logs`, shared with the consent history), and
fetches each distinct block's timestamp once.

Reorganisations: not handled at this stage. Everything is read at ``latest`` from the
manifest's deployment block, every time, with no local index; a block that is later
reorganised away may appear in one answer and be gone from the next. Callers that need
finality should pass ``to_block = latest - confirmations``. A reorg-aware incremental index
(SQLite) is planned and will build on the same :func:`fetch_logs`.

Batched records (``BatchAnchored``) are not expanded here: their contents live in the
gateways' outboxes, and only their Merkle roots are on chain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.types import EventData

from imaging_consent.chain.logs import DEFAULT_PAGE, block_timestamps, fetch_logs
from imaging_consent.consent.purposes import Purpose
from imaging_consent.contracts.deployment import Suite

__all__ = ["AccessEvent", "AccessKind", "access_history", "fetch_logs"]

logger = logging.getLogger(__name__)

AccessKind = Literal["granted", "denied", "break_glass"]

_KINDS: dict[str, AccessKind] = {
    "AccessGranted": "granted",
    "AccessDenied": "denied",
    "BreakGlassAccess": "break_glass",
}


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One recorded access to a patient's study.

    Attributes:
        kind: ``"granted"`` (released), ``"denied"`` (refused) or ``"break_glass"``.
        study_key: The study's opaque 32-byte key.
        patient: The study's patient.
        accessor: The account that asked (for break-glass, the emergency clinician).
        purpose: The purpose of use asked for (ETREAT for break-glass); None if the gateway
            recorded a code the registry does not know (then always ``denied``).
        purpose_code: The raw purpose bit index as recorded.
        request_id: The gateway's request id.
        gateway: The gateway that recorded it.
        block_number: The block holding the event.
        tx_hash: The transaction, 0x-hex.
        log_index: The event's index in its block.
        timestamp: The block's unix time.
        identified: True if identified data were released (granted and break-glass).
        reason_commitment: For break-glass, the site's keyed commitment to the reason; else
            None.
        batched: True for a record anchored in a batch (``BatchAnchored``) rather than
            recorded on chain one by one. Its block, transaction and log index are the
            anchor's; the gateway judged consent, and the chain proves only that the record is
            under the anchored root (:attr:`proof`).
        batch_id: The batch's id, for a batched record; else None.
        batch_root: The anchored Merkle root, for a batched record; else None.
        proof: The record leaf's inclusion proof against :attr:`batch_root` (OpenZeppelin
            ``MerkleProof`` order); empty unless batched.
        reason: For a batched refusal, the gateway's reason (an error class name); else None.
    """

    kind: AccessKind
    study_key: bytes
    patient: ChecksumAddress
    accessor: ChecksumAddress
    purpose: Purpose | None
    purpose_code: int
    request_id: bytes
    gateway: ChecksumAddress
    block_number: int
    tx_hash: str
    log_index: int
    timestamp: int
    identified: bool = False
    reason_commitment: bytes | None = None
    batched: bool = False
    batch_id: bytes | None = None
    batch_root: bytes | None = None
    proof: tuple[bytes, ...] = ()
    reason: str | None = None


def _access_event(log: EventData, timestamp: int) -> AccessEvent:
    args = log["args"]
    kind = _KINDS[log["event"]]
    code = Purpose.ETREAT.value if kind == "break_glass" else int(args["purpose"])
    return AccessEvent(
        kind=kind,
        study_key=bytes(args["studyKey"]),
        patient=Web3.to_checksum_address(args["patient"]),
        accessor=Web3.to_checksum_address(
            args["clinician"] if kind == "break_glass" else args["accessor"]
        ),
        purpose=Purpose(code) if code in {p.value for p in Purpose} else None,
        purpose_code=code,
        request_id=bytes(args["requestId"]),
        gateway=Web3.to_checksum_address(args["gateway"]),
        block_number=int(log["blockNumber"]),
        tx_hash="0x" + bytes(log["transactionHash"]).hex(),
        log_index=int(log["logIndex"]),
        timestamp=timestamp,
        identified=kind == "break_glass" or bool(args.get("identified", False)),
        reason_commitment=bytes(args["reasonCommitment"]) if kind == "break_glass" else None,
    )


def access_history(
    suite: Suite,
    patient: str,
    *,
    newest_first: bool = False,
    to_block: int | None = None,
    page: int = DEFAULT_PAGE,
) -> tuple[AccessEvent, ...]:
    """Every recorded access to ``patient``'s studies: releases, refusals and break-glass.

    Args:
        suite: The deployed suite; scanning starts at its manifest's ``block_number``.
        patient: The patient's address.
        newest_first: Return the newest event first (default: oldest first).
        to_block: Last block to read; default ``latest`` (see the module notes on reorgs).
        page: Blocks per ``eth_getLogs`` request (halved when the node asks for less).

    Raises:
        ValueError: If ``patient`` is not an address.
        LogQueryError: If the node refuses the log query even one block at a time.
        ChainUnavailableError: If the chain cannot be reached.
    """
    events = suite.access_log.events
    logs = fetch_logs(
        suite.session,
        [events.AccessGranted, events.AccessDenied, events.BreakGlassAccess],
        {"patient": Web3.to_checksum_address(patient)},
        suite.manifest.block_number,
        to_block,
        page=page,
    )
    stamps = block_timestamps(suite.session, (int(log["blockNumber"]) for log in logs))
    history = [_access_event(log, stamps[int(log["blockNumber"])]) for log in logs]
    if newest_first:
        history.reverse()
    return tuple(history)
