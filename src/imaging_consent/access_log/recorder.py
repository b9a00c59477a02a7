"""Recorders: how a gateway writes each release and refusal to AccessLog, none lost.

One protocol, :class:`Recorder`, two implementations:

- :class:`SyncRecorder`: one ``recordAccess`` transaction per release, mined before any bytes
  are returned. The chain re-checks consent, so a revocation that wins the race refuses.
- :class:`BatchedRecorder`: every record goes to the durable :class:`Outbox` first, and
  :meth:`Recorder.flush` anchors many records in one ``anchorBatch``.

Both keep an outbox, and every record is in it before anything is sent or released: a sync
record stays there (``direct``) until its ``recordAccess`` is ``confirmations`` blocks deep, and
goes into the next batch if that transaction is lost (a reorganisation, a dropped transaction, a
crash before it was sent). Refusals that AccessLog has no event for (integrity, store and
de-identification failures after consent said yes, break-glass refused) become access records
with ``permitted = false`` and their reason (an error class name) in the outbox, in both modes.
Break-glass is always sent at once (``recordBreakGlass``).

:meth:`Recorder.flush` runs under the outbox's inter-process lock. It finishes what is open (a
batch whose anchor was sent is looked up by its stored transactions and by ``BatchAnchored``
before anything is resent; a removed anchor is rebroadcast byte for byte if its nonce is still
free, else sent anew), then seals and anchors the records added since.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from eth_typing import ChecksumAddress, HexStr
from web3.logs import DISCARD
from web3.types import TxReceipt

from imaging_consent.access_log.break_glass import BreakGlass
from imaging_consent.access_log.outbox import Batch, Outbox, OutboxEntry, SentTx
from imaging_consent.access_log.record import AccessRecord
from imaging_consent.chain import TransactionReceipt, TransactionSender
from imaging_consent.chain.receipts import OnSigned, TxState, look_up
from imaging_consent.contracts.access_log import AccessLog, RecordedAccess, RecordKind
from imaging_consent.errors import (
    ChainUnavailableError,
    ConsentDeniedError,
    ContractRevertedError,
    ImagingConsentError,
    ReleaseError,
    TransactionRejectedError,
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
        site: The site whose study it is (the gateway's).
        study_key: The study's opaque key.
        patient: The study's patient.
        requester: Who asked.
        purpose: PurposeOfUse bit index.
        break_glass: True for an emergency access without consent.
        identified: True if identified data are to be released.
    """

    request_id: bytes
    site: ChecksumAddress
    study_key: bytes
    patient: ChecksumAddress
    requester: ChecksumAddress
    purpose: int
    break_glass: bool
    identified: bool = False


class Recorder(Protocol):
    """Where a gateway records its decisions."""

    mode: LogMode
    outbox: Outbox

    def record_release(self, request: AccessRequest) -> str | None:
        """Record a permitted release before any bytes leave; return the transaction, if any.

        Raises:
            ConsentDeniedError: If the chain recorded a refusal instead, or (sync) allows only
                de-identified data where an identified release was decided.
            TransactionError: If the record cannot be mined (sync; the record then waits in
                the outbox as a refusal).
            ReleaseError: If the outbox cannot store the record.
        """
        ...

    def record_denial(self, request: AccessRequest) -> None:
        """Record that consent refused the request (in the outbox first, in both modes).

        Raises:
            ReleaseError: If the outbox cannot store it.
        """
        ...

    def record_refusal(self, request: AccessRequest, reason: str) -> None:
        """Record a refusal AccessLog has no event for, in the outbox; never masks the caller's
        error (if the outbox cannot store it, that is logged at ERROR).

        ``reason`` (an error's class name, never personal data) is stored beside the record.
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
        """Anchor every record waiting in the outbox, exactly once; return the batches this
        call saw mined or final (see :class:`Batch`).

        Raises:
            ChainUnavailableError: If the chain cannot be reached (records stay in the outbox).
            TransactionError: If an anchor transaction fails (records stay in the outbox).
        """
        ...

    def close(self) -> None:
        """Close the outbox (records already added are on disk)."""
        ...


_DENIED = ConsentDeniedError.__name__


@dataclass(frozen=True, slots=True)
class _Mined:
    """A transaction carrying a record or batch, mined ``confirmations`` blocks deep."""

    tx_hash: bytes
    confirmations: int


def _hex(tx_hash: bytes) -> HexStr:
    return HexStr("0x" + tx_hash.hex())


class _Recorder:
    """What both recorders share: the outbox, refusals, break-glass and anchors.

    ``direct_grace``: seconds a direct record whose transaction was never seen mined may wait
    (it may be being signed or broadcast right now) before a flush that finds none of its
    transactions on the node moves it to a batch. One seen mined and then gone moves at once.
    """

    mode: LogMode
    direct_grace: float = 60.0

    def __init__(
        self,
        access_log: AccessLog,
        sender: TransactionSender,
        *,
        outbox_path: Path,
        from_block: int,
        confirmations: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        self.access_log = access_log
        self.sender = sender
        self.outbox: Outbox = Outbox(Path(outbox_path))
        self.confirmations = confirmations
        self._from_block = from_block
        self._clock = clock

    def close(self) -> None:
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

    def _add(
        self, record: AccessRecord, *, reason: str | None = None, direct: bool = False
    ) -> None:
        try:
            self.outbox.add(
                record.request_id, record.leaf(), record.to_json(), reason=reason, direct=direct
            )
        except sqlite3.Error as exc:
            raise ReleaseError(
                f"cannot store the access record in the outbox ({type(exc).__name__}); "
                "nothing released"
            ) from exc

    def _keep_sent(
        self, *, batch_id: bytes | None = None, request_id: bytes | None = None
    ) -> OnSigned:
        """A hook that stores each signed transaction in the outbox before it is broadcast."""

        def keep(tx_hash: HexStr, nonce: int, raw: bytes) -> None:
            self.outbox.add_sent(
                bytes.fromhex(tx_hash[2:]), nonce, raw, batch_id=batch_id, request_id=request_id
            )

        return keep

    def _send_record_access(
        self, request: AccessRequest
    ) -> tuple[TransactionReceipt, RecordedAccess | None]:
        receipt = self.sender.transact(
            self.access_log.record_access(
                request.study_key, request.requester, request.purpose, request.request_id
            ),
            on_signed=self._keep_sent(request_id=request.request_id),
        )
        self.outbox.set_record_tx(
            request.request_id,
            bytes.fromhex(receipt.tx_hash[2:]),
            final=self.sender.confirmations >= self.confirmations,
        )
        return receipt, self.access_log.recorded(receipt, request.request_id)

    def _as_refusal(self, record: AccessRecord, reason: str) -> None:
        """Rewrite a direct record as the refusal it ended as."""
        refusal = dataclasses.replace(record, permitted=False, identified=False)
        self.outbox.amend(record.request_id, refusal.leaf(), refusal.to_json(), reason)

    def _send_failed(self, record: AccessRecord, exc: ImagingConsentError) -> None:
        """A direct record's transaction failed: it stays a refusal in the outbox, and goes into
        the next batch unless a transaction for it may still be mined."""
        try:
            self._as_refusal(record, type(exc).__name__)
            if not self.outbox.sent(request_id=record.request_id):
                self.outbox.to_batch(record.request_id)
        except (sqlite3.Error, ReleaseError) as stored:
            logger.error(
                "could not update request 0x%s in the outbox (%s)",
                record.request_id.hex()[:12],
                type(stored).__name__,
            )

    def record_refusal(self, request: AccessRequest, reason: str) -> None:
        logger.warning("refused request 0x%s: %s", request.request_id.hex()[:12], reason)
        try:
            self._add(self._record(request, permitted=False), reason=reason)
        except (ReleaseError, ValueError) as exc:
            logger.error(
                "could not store the refusal of request 0x%s in the outbox (%s)",
                request.request_id.hex()[:12],
                type(exc).__name__,
            )

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

    # --- flush ---------------------------------------------------------------------------------

    def flush(self) -> list[Batch]:
        with self.outbox.flush_lock():
            for entry in self.outbox.open_direct():
                self._settle_direct(entry)
            done = [b for b in map(self._settle_batch, self.outbox.open_batches()) if b]
            sealed = self.outbox.seal()
            if sealed is not None:
                done.append(self._anchor(sealed))
        return done

    def _where(
        self, sent: list[SentTx], carries: Callable[[TxReceipt, SentTx], bool]
    ) -> _Mined | TxState:
        """The mined transaction among ``sent`` that carries the record or batch; else PENDING
        if one of them may still be mined, else UNKNOWN (none is or will be on chain)."""
        pending = False
        for tx in sent:
            status = look_up(self.sender.session.w3, _hex(tx.tx_hash))
            if status.succeeded and status.receipt is not None and carries(status.receipt, tx):
                return _Mined(tx.tx_hash, status.confirmations)
            pending = pending or status.state is TxState.PENDING
        return TxState.PENDING if pending else TxState.UNKNOWN

    def _settle_direct(self, entry: OutboxEntry) -> None:
        sent = self.outbox.sent(request_id=entry.request_id)

        def carries(receipt: TxReceipt, tx: SentTx) -> bool:
            mined = TransactionReceipt.of(receipt, _hex(tx.tx_hash), tx.nonce, self.sender.address)
            return self.access_log.recorded(mined, entry.request_id) is not None

        where = self._where(sent, carries)
        if isinstance(where, _Mined):
            final = where.confirmations >= self.confirmations
            self.outbox.set_record_tx(entry.request_id, where.tx_hash, final=final)
        elif where is TxState.UNKNOWN and (
            entry.tx_hash is not None or entry.created <= time.time() - self.direct_grace
        ):
            logger.warning(
                "request 0x%s: its recordAccess is not on chain (lost or reorganised away); "
                "it goes into the next batch",
                entry.request_id.hex()[:12],
            )
            self.outbox.to_batch(entry.request_id)
            if sent:
                self.sender.resync_nonce()  # its nonce may be free again

    def _carries_batch(self, batch: Batch) -> Callable[[TxReceipt, SentTx], bool]:
        def carries(receipt: TxReceipt, _tx: SentTx) -> bool:
            event = self.access_log.events.BatchAnchored()
            return any(
                bytes(log["args"]["batchId"]) == batch.batch_id
                and log["args"]["gateway"] == self.sender.address
                and log["address"] == self.access_log.address
                for log in event.process_receipt(receipt, errors=DISCARD)
            )

        return carries

    def _settle_batch(self, batch: Batch) -> Batch | None:
        """Look a sealed batch up on chain, resending its anchor only if none can be mined."""
        sent = self.outbox.sent(batch_id=batch.batch_id)
        carries = self._carries_batch(batch)
        where = self._where(sent, carries)
        if where is TxState.UNKNOWN:
            where = self._find_event(batch, carries)
        if isinstance(where, _Mined):
            settled = self._settled(batch, where)
            changed = settled.final or settled.tx_hash != batch.tx_hash
            return settled if changed else None
        if where is TxState.PENDING:
            logger.info("batch 0x%s: its anchor is not mined yet", batch.batch_id.hex()[:12])
            return None
        self.outbox.set_batch_tx(batch.batch_id, None, final=False)
        if sent:
            logger.warning(
                "batch 0x%s: its anchor is not on chain (lost or reorganised away)",
                batch.batch_id.hex()[:12],
            )
            again = self._rebroadcast(batch, sent, carries)
            if again is not None:
                return again
            self.sender.resync_nonce()  # its nonce may be free again
        return self._anchor(batch)

    def _find_event(
        self, batch: Batch, carries: Callable[[TxReceipt, SentTx], bool]
    ) -> _Mined | TxState:
        found = self.access_log.find_anchor(batch.batch_id, self.sender.address, self._from_block)
        if found is None:
            return TxState.UNKNOWN
        return self._where([SentTx(found, 0, b"")], carries)

    def _rebroadcast(
        self, batch: Batch, sent: list[SentTx], carries: Callable[[TxReceipt, SentTx], bool]
    ) -> Batch | None:
        """Send the stored bytes again (newest first): only one can ever be mined."""
        for tx in sent:
            try:
                receipt = self.sender.rebroadcast(tx.raw)
            except TransactionRejectedError as exc:
                logger.warning(
                    "rebroadcasting %s refused (%s)", _hex(tx.tx_hash), type(exc).__name__
                )
                continue
            if receipt is not None:
                where = self._where([tx], carries)
                if isinstance(where, _Mined):
                    return self._settled(batch, where)
        return None

    def _settled(self, batch: Batch, mined: _Mined) -> Batch:
        final = mined.confirmations >= self.confirmations
        self.outbox.set_batch_tx(batch.batch_id, mined.tx_hash, final=final)
        logger.info(
            "batch 0x%s (%d records) anchored in %s, %d confirmation(s)%s",
            batch.batch_id.hex()[:12],
            batch.count,
            _hex(mined.tx_hash),
            mined.confirmations,
            ", final" if final else "",
        )
        return Batch(batch.batch_id, batch.root, batch.count, mined.tx_hash, final)

    def _anchor(self, batch: Batch) -> Batch:
        receipt = self.sender.transact(
            self.access_log.anchor_batch(batch.root, batch.count, batch.batch_id),
            on_signed=self._keep_sent(batch_id=batch.batch_id),
        )
        mined = self._where(
            [SentTx(bytes.fromhex(receipt.tx_hash[2:]), receipt.nonce, b"")],
            self._carries_batch(batch),
        )
        if not isinstance(mined, _Mined):  # reorganised away at once: the next flush resends
            return batch
        return self._settled(batch, mined)


class SyncRecorder(_Recorder):
    """One ``recordAccess`` per release, mined before any bytes are returned.

    Each record is in the outbox (``direct``) before its transaction is signed, and stays there
    until that transaction is final; if it is lost, the record goes into a batch. A refusal
    AccessLog has no event for is stored in the outbox and anchored at once by a flush.
    """

    mode = LogMode.SYNC

    def record_release(self, request: AccessRequest) -> str | None:
        record = self._record(request, permitted=True)
        self._add(record, direct=True)
        try:
            receipt, found = self._send_record_access(request)
        except ImagingConsentError as exc:
            self._send_failed(record, exc)
            raise
        if found is None:
            self._as_refusal(record, ReleaseError.__name__)
            raise ReleaseError(
                f"transaction {receipt.tx_hash} carries no access record for the request; "
                "nothing released"
            )
        if found.kind is RecordKind.DENIED:
            self._as_refusal(record, _DENIED)
            raise ConsentDeniedError(
                f"consent for study 0x{request.study_key.hex()} was withdrawn before the access "
                f"was recorded (AccessDenied in block {found.block_number}); nothing released",
                request_id=request.request_id,
            )
        if request.identified and not found.identified:
            self._as_refusal(record, _DENIED)
            raise ConsentDeniedError(
                f"consent for study 0x{request.study_key.hex()} was narrowed to de-identified "
                f"data before the access was recorded (block {found.block_number}); the "
                "identified images are not released",
                request_id=request.request_id,
            )
        return receipt.tx_hash

    def record_refusal(self, request: AccessRequest, reason: str) -> None:
        """Store the refusal in the outbox, then anchor it at once (with whatever else waits)."""
        super().record_refusal(request, reason)
        try:
            self.flush()
        except (ImagingConsentError, sqlite3.Error) as exc:
            logger.error(
                "could not anchor the refusal of request 0x%s now (%s); it waits in the outbox",
                request.request_id.hex()[:12],
                type(exc).__name__,
            )

    def record_denial(self, request: AccessRequest) -> None:
        record = self._record(request, permitted=False)
        self._add(record, reason=_DENIED, direct=True)
        try:
            receipt, found = self._send_record_access(request)
        except ImagingConsentError as exc:
            logger.error(
                "could not record the refusal of request 0x%s on chain (%s); it waits in the "
                "outbox",
                request.request_id.hex()[:12],
                type(exc).__name__,
            )
            self._send_failed(record, exc)
            return
        if found is not None and found.kind is RecordKind.GRANTED:
            # Consent was granted between the check and the record: the chain logs a grant for
            # a request the gateway refused. Refusing stays the safe side; nothing is released.
            logger.warning(
                "request 0x%s was refused at check time but recorded as granted in %s",
                request.request_id.hex()[:12],
                receipt.tx_hash,
            )


class BatchedRecorder(_Recorder):
    """Every record goes to the durable outbox before any bytes leave; ``flush`` anchors them."""

    mode = LogMode.BATCHED

    def record_release(self, request: AccessRequest) -> str | None:
        """Ask consent again (the chain does not re-check a batched record), then store it.

        Withdrawn since the gateway's check: the denial is stored; narrowed to de-identified
        data for an identified release: a refusal is stored; either way ConsentDeniedError. If
        the chain cannot answer, the refusal is stored and ChainUnavailableError raised.
        """
        try:
            now = self.access_log.check_access(
                request.site, request.study_key, request.requester, request.purpose
            )
        except ChainUnavailableError as exc:  # the study was read: the refusal is kept
            self.record_refusal(request, type(exc).__name__)
            raise
        if not now.permitted:
            self.record_denial(request)
            raise ConsentDeniedError(
                f"consent for study 0x{request.study_key.hex()} was withdrawn while the study "
                "was read; nothing released, the refusal is recorded",
                request_id=request.request_id,
            )
        if request.identified and not now.identified:
            self.record_refusal(request, "ConsentNarrowed")
            raise ConsentDeniedError(
                f"consent for study 0x{request.study_key.hex()} was narrowed to de-identified "
                "data while the study was read; the identified images are not released, the "
                "refusal is recorded",
                request_id=request.request_id,
            )
        self._add(self._record(request, permitted=True))
        return None

    def record_denial(self, request: AccessRequest) -> None:
        self._add(self._record(request, permitted=False), reason=_DENIED)


def make_recorder(
    mode: LogMode | str,
    access_log: AccessLog,
    sender: TransactionSender,
    *,
    outbox_path: Path | None,
    from_block: int,
    confirmations: int = 0,
    clock: Callable[[], float] = time.time,
) -> Recorder:
    """The recorder for ``mode``, with its outbox at ``outbox_path`` (required in both modes).

    ``confirmations``: blocks a ``recordAccess`` or an anchor must have on top of it before its
    record leaves the outbox's open set (0: once mined).

    Raises:
        ValueError: If ``mode`` is unknown, there is no outbox, or ``confirmations`` < 0.
    """
    chosen = LogMode(mode)
    if outbox_path is None:
        raise ValueError(
            "an outbox_path is required (in sync mode too): records wait there until they "
            "are final on chain"
        )
    kind = BatchedRecorder if chosen is LogMode.BATCHED else SyncRecorder
    return kind(
        access_log,
        sender,
        outbox_path=outbox_path,
        from_block=from_block,
        confirmations=confirmations,
        clock=clock,
    )
