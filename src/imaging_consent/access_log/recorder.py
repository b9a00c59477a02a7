"""Recorders: how a gateway writes each release and refusal to AccessLog, none lost.

One protocol, :class:`Recorder`, two implementations:

- :class:`SyncRecorder`: one ``recordAccess`` transaction per release, mined before any bytes
  are returned. The chain re-checks consent, so a revocation that wins the race refuses.
- :class:`BatchedRecorder`: every record goes to the durable :class:`Outbox` first, and
  :meth:`Recorder.flush` anchors many records in one ``anchorBatch``.

Refusals that AccessLog has no event for (integrity, store and de-identification failures after
consent said yes, break-glass by a non-emergency account) become access records with
``permitted = false``: into the outbox if there is one, otherwise anchored at once as a
one-record batch. Break-glass is always sent at once (``recordBreakGlass``).
"""

from __future__ import annotations

import enum
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from eth_typing import ChecksumAddress

from imaging_consent.access_log.break_glass import BreakGlass
from imaging_consent.access_log.outbox import Batch, Outbox, flush
from imaging_consent.access_log.record import AccessRecord
from imaging_consent.chain import TransactionSender
from imaging_consent.contracts.access_log import AccessLog, RecordedAccess, RecordKind
from imaging_consent.errors import (
    ConsentDeniedError,
    ContractRevertedError,
    ImagingConsentError,
    ReleaseError,
)

__all__ = [
    "AccessRequest",
    "BatchedRecorder",
    "LogMode",
    "Recorder",
    "SyncRecorder",
    "make_recorder",
]

logger = logging.getLogger(__name__)


class LogMode(enum.Enum):
    """How the gateway records accesses."""

    SYNC = "sync"
    """One ``recordAccess`` transaction per release, mined before any bytes are returned."""
    BATCHED = "batched"
    """Records go to the durable outbox first, and are anchored in batches by ``flush()``."""


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One request as the gateway decided it, before it is recorded.

    Attributes:
        request_id: The unique 32-byte id the access is recorded under.
        study_key: The study's opaque key.
        patient: The study's patient.
        requester: Who asked.
        purpose: PurposeOfUse bit index.
        break_glass: True for an emergency access without consent.
        identified: True if identified data are to be released.
    """

    request_id: bytes
    study_key: bytes
    patient: ChecksumAddress
    requester: ChecksumAddress
    purpose: int
    break_glass: bool
    identified: bool = False


class Recorder(Protocol):
    """Where a gateway records its decisions."""

    mode: LogMode
    outbox: Outbox | None

    def record_release(self, request: AccessRequest) -> str | None:
        """Record a permitted release before any bytes leave; return the transaction, if any.

        Raises:
            ConsentDeniedError: If the chain recorded a refusal instead, or (sync) allows only
                de-identified data where an identified release was decided.
            TransactionError: If the record cannot be mined (sync).
            ReleaseError: If the record cannot be stored (batched).
        """
        ...

    def record_denial(self, request: AccessRequest) -> None:
        """Record that consent refused the request.

        Raises:
            ConsentDeniedError: If the refusal could not be recorded anywhere.
            ReleaseError: If the outbox cannot store it (batched).
        """
        ...

    def record_refusal(self, request: AccessRequest, reason: str) -> None:
        """Record a refusal AccessLog has no event for; never masks the caller's error.

        ``reason`` (an error's class name, never personal data) goes to the log only.
        """
        ...

    def record_break_glass(self, request: AccessRequest, signed: BreakGlass) -> str:
        """Relay the clinician's signed break-glass, mined at once; return the transaction.

        Raises:
            ReleaseError: If the transaction carries no record of the request.
            TransactionError: If it cannot be mined.
        """
        ...

    def flush(self) -> list[Batch]:
        """Anchor every record waiting in the outbox, exactly once."""
        ...

    def close(self) -> None:
        """Close the outbox (records already added are on disk)."""
        ...


class _Recorder:
    """What both recorders share: refusals, break-glass, the outbox and its anchors."""

    mode: LogMode

    def __init__(
        self,
        access_log: AccessLog,
        sender: TransactionSender,
        *,
        outbox_path: Path | None,
        from_block: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_log = access_log
        self.sender = sender
        self.outbox = Outbox(Path(outbox_path)) if outbox_path is not None else None
        self._from_block = from_block
        self._clock = clock

    def close(self) -> None:
        if self.outbox is not None:
            self.outbox.close()

    # --- records -------------------------------------------------------------------------------

    def _record(self, request: AccessRequest, *, permitted: bool) -> AccessRecord:
        return AccessRecord(
            study_key=request.study_key,
            patient=request.patient,
            accessor=request.requester,
            purpose=request.purpose,
            permitted=permitted,
            identified=permitted and request.identified,
            break_glass=request.break_glass,
            request_id=request.request_id,
            gateway=self.sender.address,
            timestamp=int(self._clock()),
        )

    def _add(self, record: AccessRecord) -> None:
        if self.outbox is None:
            raise ReleaseError("this gateway has no outbox; nothing released")
        try:
            self.outbox.add(record.request_id, record.leaf(), record.to_json())
        except sqlite3.Error as exc:
            raise ReleaseError(
                f"cannot store the access record in the outbox ({type(exc).__name__}); "
                "nothing released"
            ) from exc

    def _send_record_access(self, request: AccessRequest) -> tuple[str, RecordedAccess | None]:
        receipt = self.sender.transact(
            self.access_log.record_access(
                request.study_key, request.requester, request.purpose, request.request_id
            )
        )
        return receipt.tx_hash, self.access_log.recorded(receipt, request.request_id)

    def record_refusal(self, request: AccessRequest, reason: str) -> None:
        logger.warning(
            "refused request 0x%s (study 0x%s, %s): %s",
            request.request_id.hex()[:12],
            request.study_key.hex()[:12],
            request.requester,
            reason,
        )
        record = self._record(request, permitted=False)
        try:
            if self.outbox is not None:
                self._add(record)
                return
            receipt = self.sender.transact(
                self.access_log.anchor_batch(record.leaf(), 1, record.request_id)
            )
            logger.warning(
                "refusal anchored as a one-record batch in %s: %s",
                receipt.tx_hash,
                record.to_json(),
            )
        except ImagingConsentError as exc:
            logger.error("could not record refusal %s (%s)", record.to_json(), type(exc).__name__)

    def record_break_glass(self, request: AccessRequest, signed: BreakGlass) -> str:
        try:
            receipt = self.sender.transact(
                self.access_log.record_break_glass(
                    signed.study_key,
                    signed.clinician,
                    signed.request_id,
                    signed.reason_commitment,
                    signed.deadline,
                    signed.signature,
                )
            )
        except ContractRevertedError as exc:  # the chain refused it (replay, limit, ...)
            self.record_refusal(request, type(exc).__name__)
            raise
        found = self.access_log.recorded(receipt, request.request_id)
        if found is None or found.kind is not RecordKind.BREAK_GLASS:
            raise ReleaseError(
                f"transaction {receipt.tx_hash} carries no BreakGlassAccess record for the "
                "request; nothing released"
            )
        return receipt.tx_hash

    # --- anchors -------------------------------------------------------------------------------

    def flush(self) -> list[Batch]:
        if self.outbox is None:
            return []
        return flush(self.outbox, self._anchor, self._find_anchor)

    def _anchor(self, batch: Batch) -> bytes:
        receipt = self.sender.transact(
            self.access_log.anchor_batch(batch.root, batch.count, batch.batch_id)
        )
        logger.info(
            "anchored batch 0x%s (%d records) in %s",
            batch.batch_id.hex()[:12],
            batch.count,
            receipt.tx_hash,
        )
        return bytes.fromhex(receipt.tx_hash.removeprefix("0x"))

    def _find_anchor(self, batch_id: bytes) -> bytes | None:
        return self.access_log.find_anchor(batch_id, self.sender.address, self._from_block)


class SyncRecorder(_Recorder):
    """One ``recordAccess`` per release, mined before any bytes are returned.

    An optional outbox holds the refusals AccessLog has no event for (else each is anchored at
    once) and the denials that could not be sent.
    """

    mode = LogMode.SYNC

    def record_release(self, request: AccessRequest) -> str | None:
        tx_hash, found = self._send_record_access(request)
        if found is None:
            raise ReleaseError(
                f"transaction {tx_hash} carries no access record for the request; nothing released"
            )
        if found.kind is RecordKind.DENIED:
            raise ConsentDeniedError(
                f"consent for study 0x{request.study_key.hex()} was withdrawn before the access "
                f"was recorded (AccessDenied in block {found.block_number}); nothing released",
                request_id=request.request_id,
            )
        if request.identified and not found.identified:
            raise ConsentDeniedError(
                f"consent for study 0x{request.study_key.hex()} was narrowed to de-identified "
                f"data before the access was recorded (block {found.block_number}); the "
                "identified images are not released",
                request_id=request.request_id,
            )
        return tx_hash

    def record_denial(self, request: AccessRequest) -> None:
        try:
            tx_hash, found = self._send_record_access(request)
        except ImagingConsentError as exc:
            logger.error(
                "could not record the refusal of request 0x%s on chain: %s",
                request.request_id.hex()[:12],
                type(exc).__name__,
            )
            if self.outbox is None:
                raise ConsentDeniedError(
                    f"consent does not permit the access, and the refusal could not be recorded "
                    f"({type(exc).__name__})",
                    request_id=request.request_id,
                ) from exc
            self._add(self._record(request, permitted=False))
            return
        if found is not None and found.kind is RecordKind.GRANTED:
            # Consent was granted between the check and the record: the chain logs a grant for
            # a request the gateway refused. Refusing stays the safe side; nothing is released.
            logger.warning(
                "request 0x%s was refused at check time but recorded as granted in %s",
                request.request_id.hex()[:12],
                tx_hash,
            )


class BatchedRecorder(_Recorder):
    """Every record goes to the durable outbox before any bytes leave; ``flush`` anchors them."""

    mode = LogMode.BATCHED

    def record_release(self, request: AccessRequest) -> str | None:
        self._add(self._record(request, permitted=True))
        return None

    def record_denial(self, request: AccessRequest) -> None:
        self._add(self._record(request, permitted=False))


def make_recorder(
    mode: LogMode | str,
    access_log: AccessLog,
    sender: TransactionSender,
    *,
    outbox_path: Path | None,
    from_block: int,
    clock: Callable[[], float] = time.time,
) -> Recorder:
    """The recorder for ``mode``.

    Raises:
        ValueError: If ``mode`` is unknown, or batched without an outbox.
    """
    chosen = LogMode(mode)
    if chosen is LogMode.BATCHED and outbox_path is None:
        raise ValueError("batched logging needs an outbox_path")
    kind = BatchedRecorder if chosen is LogMode.BATCHED else SyncRecorder
    return kind(access_log, sender, outbox_path=outbox_path, from_block=from_block, clock=clock)
