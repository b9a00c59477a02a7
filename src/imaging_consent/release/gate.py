"""The release gate: images leave the gateway only when the chain says so, and every release and
refusal is recorded.

:meth:`ImageGateway.release` runs, in this order (the failure guarantees are in
docs/ARCHITECTURE.md, "The release gate"):

1. **Consent.** ``AccessLog.checkAccess(studyKey, requester, purpose)``: the study's patient,
   its content root and ``ConsentRegistry.isPermitted`` in one ``eth_call``. With
   ``confirmations > 0`` the answer must be yes both at ``head - confirmations`` and at ``head``.
   A refusal is recorded (``recordAccess`` in sync mode, the outbox in batched mode) and raises
   :class:`ConsentDeniedError`.
2. **Load** every instance of the study from the store, each file opened once.
3. **Integrity.** The content tree rebuilt from the bytes read must have the on-chain root;
   otherwise nothing is released (:class:`IntegrityError`).
4. **De-identify** (Annex E Basic Profile, one secret per release) unless the grant allows
   identified data.
5. **Record** the access: ``recordAccess`` mined (sync; an ``AccessDenied`` in the receipt,
   i.e. a revocation that won the race, refuses), or the record durably in the outbox (batched).
6. **Return** the datasets, each with its instance key and Merkle proof.

Refusals that ``AccessLog`` cannot express as an event (integrity, store and de-identification
failures after consent said yes, break-glass by a non-emergency account) are recorded as access
records with ``permitted = false``: into the outbox if the gateway has one (anchored at the next
:meth:`ImageGateway.flush`), otherwise anchored at once as a one-record batch.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from eth_hash.auto import keccak
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from pydicom.dataset import Dataset
from web3 import Web3
from web3.logs import DISCARD

from imaging_consent.access_record import AccessRecord
from imaging_consent.chain import TransactionReceipt, TransactionSender
from imaging_consent.consent.purposes import Purpose
from imaging_consent.contracts.calls import block_number, call
from imaging_consent.contracts.deployment import Suite, role_id
from imaging_consent.dicom import (
    SitePepper,
    dataset_bytes,
    dataset_pixel_hash,
    deidentify,
    instance_key,
    study_key,
)
from imaging_consent.errors import (
    ChainUnavailableError,
    ConsentDeniedError,
    DicomError,
    DicomReadError,
    ImagingConsentError,
    IntegrityError,
    NotEmergencyError,
    ReleaseError,
    StoreError,
    StudyNotRegisteredError,
)
from imaging_consent.merkle import MerkleTree, leaf_hash
from imaging_consent.release.instances import LoadedInstance, load_instance
from imaging_consent.release.outbox import Batch, Outbox, flush
from imaging_consent.stores.base import ImageStore

__all__ = ["ImageGateway", "LogMode", "Release", "ReleasedInstance"]

logger = logging.getLogger(__name__)

_EMERGENCY_ROLE = role_id("EMERGENCY_ROLE")
_BATCH_ANCHORED_TOPIC = HexBytes(Web3.keccak(text="BatchAnchored(bytes32,uint32,bytes32,address)"))
#: Blocks per ``eth_getLogs`` page when looking for an anchor after a restart.
LOG_PAGE_BLOCKS = 10_000


class LogMode(enum.Enum):
    """How the gateway records accesses."""

    SYNC = "sync"
    """One ``recordAccess`` transaction per release, mined before any bytes are returned."""
    BATCHED = "batched"
    """Records go to the durable outbox first, and are anchored in batches by ``flush()``."""


@dataclass(frozen=True, slots=True)
class ReleasedInstance:
    """One released instance and what a receiver needs to verify it against the chain.

    The original SOP Instance UID of a de-identified instance is deliberately not included:
    ``instance_key`` (keyed with the site pepper) stands in for it in the proof.

    Attributes:
        sop_instance_uid: The SOP Instance UID as released (a pseudonym if de-identified).
        instance_key: The content-tree instance key (``keccak256(pepper ‖ original UID)``).
        pixel_hash: The pixelHash of the released bytes.
        proof: Merkle proof of ``leaf_hash(instance_key, pixel_hash)`` against the content root.
        dataset: The released dataset.
        raw: The exact released file bytes when the file is released unchanged (identified).
    """

    sop_instance_uid: str
    instance_key: bytes
    pixel_hash: bytes
    proof: tuple[bytes, ...]
    dataset: Dataset = field(repr=False, compare=False)
    raw: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def leaf(self) -> bytes:
        """The content-tree leaf this instance proves."""
        return leaf_hash(self.instance_key, self.pixel_hash)

    def to_bytes(self) -> bytes:
        """The released instance as a DICOM Part 10 file.

        Identified releases return the store's file bytes exactly as verified; de-identified
        ones encode the de-identified dataset (its PixelData bytes untouched).

        Raises:
            DeidentificationError: If the dataset cannot be encoded.
        """
        return self.raw if self.raw is not None else dataset_bytes(self.dataset)


@dataclass(frozen=True, slots=True)
class Release:
    """The outcome of one release.

    Attributes:
        request_id: The unique 32-byte id under which the access is recorded.
        study_key: The study's opaque key.
        patient: The study's patient (from StudyRegistry).
        requester: Who received the images.
        purpose: The purpose of use (ETREAT for break-glass).
        identified: True if identified data were released, False if de-identified.
        break_glass: True for an emergency access without consent.
        instances: The released instances.
        log_tx: The mined ``recordAccess`` / ``recordBreakGlass`` transaction (sync), else None.
        batch_request_logged: True if the record went to the outbox (batched), to be anchored
            by :meth:`ImageGateway.flush`.
    """

    request_id: bytes
    study_key: bytes
    patient: ChecksumAddress
    requester: ChecksumAddress
    purpose: Purpose
    identified: bool
    break_glass: bool
    instances: tuple[ReleasedInstance, ...]
    log_tx: str | None
    batch_request_logged: bool


@dataclass(frozen=True, slots=True)
class _Decision:
    patient: ChecksumAddress
    content_root: bytes
    permitted: bool
    identified: bool


@dataclass(frozen=True, slots=True)
class _Request:
    request_id: bytes
    study_key: bytes
    patient: ChecksumAddress
    requester: ChecksumAddress
    purpose: Purpose
    break_glass: bool


def record_json(record: AccessRecord) -> str:
    """The outbox's JSON form of an access record (hex for bytes; no personal data)."""
    return json.dumps(
        {
            "studyKey": "0x" + record.study_key.hex(),
            "patient": record.patient,
            "accessor": record.accessor,
            "purpose": record.purpose,
            "permitted": record.permitted,
            "breakGlass": record.break_glass,
            "requestId": "0x" + record.request_id.hex(),
            "gateway": record.gateway,
            "timestamp": record.timestamp,
        },
        sort_keys=True,
    )


def record_from_json(text: str) -> AccessRecord:
    """Parse :func:`record_json` back into an :class:`AccessRecord`.

    Raises:
        ValueError: If ``text`` is not such a record.
    """
    data = json.loads(text)
    return AccessRecord(
        study_key=bytes.fromhex(data["studyKey"][2:]),
        patient=data["patient"],
        accessor=data["accessor"],
        purpose=int(data["purpose"]),
        permitted=bool(data["permitted"]),
        break_glass=bool(data["breakGlass"]),
        request_id=bytes.fromhex(data["requestId"][2:]),
        gateway=data["gateway"],
        timestamp=int(data["timestamp"]),
    )


class ImageGateway:
    """Releases a site's studies to requesters, as consent on chain permits, and records it.

    Args:
        suite: The deployed contracts.
        sender: Sends as the gateway's account, which holds AccessLog's GATEWAY_ROLE.
        store: Where the site's images are.
        pepper: The site pepper (the one the studies were registered with).
        log_mode: :attr:`LogMode.SYNC` (default) or :attr:`LogMode.BATCHED`.
        outbox_path: The outbox database. Required in batched mode; optional in sync mode,
            where it holds the refusals the contract has no event for (else they are anchored
            at once, one transaction each).
        release_secret: Optional master secret (>= 16 bytes) for de-identification. Each
            release keys its UID pseudonyms with ``HMAC-SHA256(release_secret, request_id)``,
            so the site can re-link a release later; by default each release gets 32 fresh
            random bytes and nobody can.
        confirmations: Consent must say yes both at ``head - confirmations`` and at ``head``
            (default 0: at ``head`` only).
        clock: Unix time for batched records' timestamps (default ``time.time``).

    Raises:
        ValueError: On an inconsistent configuration (batched without an outbox, a short
            release secret, negative confirmations).
    """

    def __init__(
        self,
        suite: Suite,
        sender: TransactionSender,
        store: ImageStore,
        pepper: SitePepper,
        *,
        log_mode: LogMode | str = LogMode.SYNC,
        outbox_path: Path | None = None,
        release_secret: bytes | None = None,
        confirmations: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.suite = suite
        self.sender = sender
        self.store = store
        self.pepper = pepper
        self.log_mode = LogMode(log_mode)
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        if release_secret is not None and len(release_secret) < 16:
            raise ValueError("release_secret must be at least 16 bytes")
        if self.log_mode is LogMode.BATCHED and outbox_path is None:
            raise ValueError("batched logging needs an outbox_path")
        self.confirmations = confirmations
        self._release_secret = release_secret
        self._clock = clock
        self._outbox = Outbox(Path(outbox_path)) if outbox_path is not None else None

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the outbox (records already added are on disk)."""
        if self._outbox is not None:
            self._outbox.close()

    def __enter__(self) -> ImageGateway:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def outbox(self) -> Outbox | None:
        """The durable outbox, if the gateway has one."""
        return self._outbox

    @property
    def address(self) -> ChecksumAddress:
        """The gateway's account (the ``gateway`` of every record)."""
        return self.sender.address

    # --- release -------------------------------------------------------------------------------

    def release(
        self,
        study_uid: str,
        requester: str,
        purpose: Purpose | str,
        *,
        series_uid: str | None = None,
        break_glass_reason: str | None = None,
    ) -> Release:
        """Release a study (or one series of it) to ``requester``, if consent permits.

        Args:
            study_uid: The study's Study Instance UID.
            requester: The requester's address (authenticated by the caller).
            purpose: Purpose of use (a :class:`Purpose` or its code, e.g. ``"TREAT"``).
            series_uid: Release only this series (the whole study is still verified).
            break_glass_reason: Emergency access without consent, for an EMERGENCY_ROLE
                requester; the text stays off chain, its keccak256 is recorded. Always sync,
                always identified, recorded with purpose ETREAT.

        Returns:
            The released instances with their proofs, and where the access is recorded.

        Raises:
            ValueError: If the requester is not an address or the reason is empty.
            UnknownPurposeError: If ``purpose`` is not a known code.
            ConsentDeniedError: If consent does not permit it (the refusal is recorded).
            StudyNotRegisteredError: If the study is not registered on chain.
            NotEmergencyError: If break-glass is asked for by an account without
                EMERGENCY_ROLE (the attempt is recorded as a refusal).
            IntegrityError: If the store's images do not match the on-chain content root,
                or a file cannot be read (recorded as a refusal).
            StoreError: If the store does not have the study or series (recorded as a
                refusal).
            DeidentificationError: If the instances cannot be de-identified safely, e.g.
                burned-in annotation (recorded as a refusal).
            ChainUnavailableError: If the chain cannot be reached or answers unclearly.
            TransactionError: If the access record cannot be mined (sync; nothing released).
            ReleaseError: If the outbox cannot store the record (batched; nothing released).
        """
        accessor = to_checksum_address(requester)
        chosen = Purpose.parse(purpose)
        key = study_key(self.pepper, study_uid)
        request_id = os.urandom(32)
        if break_glass_reason is not None:
            return self._break_glass(
                study_uid, series_uid, key, accessor, request_id, break_glass_reason
            )

        decision = self._check(key, accessor, chosen)
        request = _Request(request_id, key, decision.patient, accessor, chosen, False)
        if not decision.permitted:
            self._record_denial(request)
            raise ConsentDeniedError(
                f"consent does not permit {accessor} to access study 0x{key.hex()} for "
                f"{chosen.name}; the refusal is recorded (request 0x{request_id.hex()})",
                request_id=request_id,
            )
        instances = self._verified_instances(
            request, study_uid, series_uid, decision.content_root, identified=decision.identified
        )
        log_tx: str | None = None
        if self.log_mode is LogMode.SYNC:
            log_tx = self._record_access_sync(request)
        else:
            self._add_to_outbox(self._record(request, permitted=True))
        logger.info(
            "released %d instance(s) of study 0x%s to %s for %s (%s, %s, request 0x%s)",
            len(instances),
            key.hex()[:12],
            accessor,
            chosen.name,
            "identified" if decision.identified else "de-identified",
            self.log_mode.value,
            request_id.hex()[:12],
        )
        return Release(
            request_id=request_id,
            study_key=key,
            patient=decision.patient,
            requester=accessor,
            purpose=chosen,
            identified=decision.identified,
            break_glass=False,
            instances=instances,
            log_tx=log_tx,
            batch_request_logged=self.log_mode is LogMode.BATCHED,
        )

    def _break_glass(
        self,
        study_uid: str,
        series_uid: str | None,
        key: bytes,
        accessor: ChecksumAddress,
        request_id: bytes,
        reason: str,
    ) -> Release:
        if not reason.strip():
            raise ValueError("a break-glass access needs a reason")
        session = self.suite.session
        patient, _site, root, _count, _at = call(session, self.suite.studies.functions.studyOf(key))
        patient = to_checksum_address(patient)
        request = _Request(request_id, key, patient, accessor, Purpose.ETREAT, True)
        is_emergency = call(
            session, self.suite.access_log.functions.hasRole(_EMERGENCY_ROLE, accessor)
        )
        if not is_emergency:
            logger.warning(
                "break-glass refused: %s lacks EMERGENCY_ROLE (study 0x%s, request 0x%s)",
                accessor,
                key.hex()[:12],
                request_id.hex()[:12],
            )
            self._record_refusal(request)
            raise NotEmergencyError(
                f"{accessor} does not hold the EMERGENCY role needed to break glass; nothing "
                f"released, the attempt is recorded (request 0x{request_id.hex()})",
                error_name="AccessLogNotEmergency",
                error_args={"accessor": accessor},
            )
        instances = self._verified_instances(
            request, study_uid, series_uid, bytes(root), identified=True
        )
        reason_hash = bytes(keccak(reason.encode("utf-8")))
        receipt = self.sender.transact(
            self.suite.access_log.functions.recordBreakGlass(key, accessor, request_id, reason_hash)
        )
        if not self._events(receipt, "BreakGlassAccess", request_id):
            raise ReleaseError(
                f"transaction {receipt.tx_hash} carries no BreakGlassAccess record for the "
                "request; nothing released"
            )
        logger.warning(
            "break-glass release of study 0x%s to %s (request 0x%s, tx %s)",
            key.hex()[:12],
            accessor,
            request_id.hex()[:12],
            receipt.tx_hash,
        )
        return Release(
            request_id=request_id,
            study_key=key,
            patient=patient,
            requester=accessor,
            purpose=Purpose.ETREAT,
            identified=True,
            break_glass=True,
            instances=instances,
            log_tx=receipt.tx_hash,
            batch_request_logged=False,
        )

    # --- step 1: consent -----------------------------------------------------------------------

    def _check(self, key: bytes, accessor: ChecksumAddress, purpose: Purpose) -> _Decision:
        session = self.suite.session
        check = self.suite.access_log.functions.checkAccess(key, accessor, purpose.value)
        if self.confirmations == 0:
            patient, root, permitted, identified = call(session, check)
        else:
            head = block_number(session)
            patient, root, permitted, identified = call(session, check, head)
            try:
                _p, _r, deep_permitted, deep_identified = call(
                    session, check, max(head - self.confirmations, 0)
                )
            except StudyNotRegisteredError:
                # Registered less than `confirmations` blocks ago: not yet deep enough.
                deep_permitted = deep_identified = False
            permitted = permitted and deep_permitted
            identified = identified and deep_identified
        return _Decision(
            to_checksum_address(patient), bytes(root), bool(permitted), bool(identified)
        )

    # --- steps 2-4: load, verify, de-identify ---------------------------------------------------

    def _verified_instances(
        self,
        request: _Request,
        study_uid: str,
        series_uid: str | None,
        content_root: bytes,
        *,
        identified: bool,
    ) -> tuple[ReleasedInstance, ...]:
        try:
            return self._load_and_prepare(study_uid, series_uid, content_root, identified, request)
        except (StoreError, DicomError, IntegrityError) as exc:
            logger.warning(
                "refused study 0x%s to %s: %s (request 0x%s)",
                request.study_key.hex()[:12],
                request.requester,
                type(exc).__name__,
                request.request_id.hex()[:12],
            )
            self._record_refusal(request)
            if isinstance(exc, DicomReadError):
                raise IntegrityError(
                    f"an instance of study 0x{request.study_key.hex()} cannot be read ({exc}); "
                    f"nothing released, the refusal is recorded "
                    f"(request 0x{request.request_id.hex()})",
                    request_id=request.request_id,
                ) from exc
            if isinstance(exc, IntegrityError) and exc.request_id is None:
                exc.request_id = request.request_id
            raise

    def _load_and_prepare(
        self,
        study_uid: str,
        series_uid: str | None,
        content_root: bytes,
        identified: bool,
        request: _Request,
    ) -> tuple[ReleasedInstance, ...]:
        every = self.store.instances(study_uid)
        wanted = (
            [s.sop_instance_uid for s in self.store.instances(study_uid, series_uid)]
            if series_uid is not None
            else [s.sop_instance_uid for s in every]
        )
        chosen = set(wanted)
        loaded: dict[str, LoadedInstance] = {}
        leaves: dict[str, bytes] = {}
        for position, stored in enumerate(every, start=1):
            uid = stored.sop_instance_uid
            item = load_instance(
                self.store,
                stored,
                load=uid in chosen,
                position=f"instance {position} of {len(every)}",
            )
            loaded[uid] = item
            leaves[uid] = leaf_hash(instance_key(self.pepper, uid), item.pixel_hash)
        try:
            tree = MerkleTree.of(list(leaves.values()))
        except ValueError as exc:
            raise IntegrityError(
                f"the study's instances do not form a content tree ({exc})"
            ) from exc
        if tree.root != content_root:
            raise IntegrityError(
                f"the {len(every)} instance(s) of study 0x{request.study_key.hex()} in the store "
                "do not match its content root on chain (altered, missing or extra instances); "
                f"nothing released, the refusal is recorded (request 0x{request.request_id.hex()})"
            )
        secret = None if identified else self._secret_for(request.request_id)
        released: list[ReleasedInstance] = []
        for uid in wanted:
            item = loaded[uid]
            assert item.dataset is not None  # loaded with load=True above
            proof = tuple(tree.proof(leaves[uid]))
            key = instance_key(self.pepper, uid)
            if secret is None:
                released.append(
                    ReleasedInstance(uid, key, item.pixel_hash, proof, item.dataset, item.raw)
                )
                continue
            clean = deidentify(item.dataset, secret)
            if item.stored.has_pixel_data and dataset_pixel_hash(clean) != item.pixel_hash:
                raise IntegrityError("de-identification changed PixelData; nothing released")
            released.append(
                ReleasedInstance(
                    str(clean.get("SOPInstanceUID", "")), key, item.pixel_hash, proof, clean
                )
            )
        return tuple(released)

    def _secret_for(self, request_id: bytes) -> bytes:
        if self._release_secret is None:
            return os.urandom(32)
        return hmac.new(self._release_secret, request_id, hashlib.sha256).digest()

    # --- step 5: recording ---------------------------------------------------------------------

    def _record(self, request: _Request, *, permitted: bool) -> AccessRecord:
        return AccessRecord(
            study_key=request.study_key,
            patient=request.patient,
            accessor=request.requester,
            purpose=request.purpose.value,
            permitted=permitted,
            break_glass=request.break_glass,
            request_id=request.request_id,
            gateway=self.address,
            timestamp=int(self._clock()),
        )

    def _add_to_outbox(self, record: AccessRecord) -> None:
        assert self._outbox is not None
        try:
            self._outbox.add(record.request_id, record.leaf(), record_json(record))
        except sqlite3.Error as exc:
            raise ReleaseError(
                f"cannot store the access record in the outbox ({type(exc).__name__}); "
                "nothing released"
            ) from exc

    def _events(self, receipt: TransactionReceipt, name: str, request_id: bytes) -> list[object]:
        event = getattr(self.suite.access_log.events, name)()
        return [
            log
            for log in event.process_receipt(receipt.raw, errors=DISCARD)
            if bytes(log["args"]["requestId"]) == request_id
            and to_checksum_address(log["address"]) == self.suite.access_log.address
        ]

    def _send_record_access(self, request: _Request) -> tuple[TransactionReceipt, bool | None]:
        receipt = self.sender.transact(
            self.suite.access_log.functions.recordAccess(
                request.study_key, request.requester, request.purpose.value, request.request_id
            )
        )
        if self._events(receipt, "AccessGranted", request.request_id):
            return receipt, True
        if self._events(receipt, "AccessDenied", request.request_id):
            return receipt, False
        return receipt, None

    def _record_access_sync(self, request: _Request) -> str:
        receipt, granted = self._send_record_access(request)
        if granted is None:
            raise ReleaseError(
                f"transaction {receipt.tx_hash} carries no access record for the request; "
                "nothing released"
            )
        if not granted:
            raise ConsentDeniedError(
                f"consent for study 0x{request.study_key.hex()} was withdrawn before the access "
                f"was recorded (AccessDenied in block {receipt.block_number}); nothing released",
                request_id=request.request_id,
            )
        return receipt.tx_hash

    def _record_denial(self, request: _Request) -> None:
        if self.log_mode is LogMode.BATCHED:
            self._add_to_outbox(self._record(request, permitted=False))
            return
        try:
            receipt, granted = self._send_record_access(request)
        except ImagingConsentError as exc:
            logger.error(
                "could not record the refusal of request 0x%s on chain: %s",
                request.request_id.hex()[:12],
                type(exc).__name__,
            )
            if self._outbox is None:
                raise ConsentDeniedError(
                    f"consent does not permit the access, and the refusal could not be recorded "
                    f"({type(exc).__name__})",
                    request_id=request.request_id,
                ) from exc
            self._add_to_outbox(self._record(request, permitted=False))
            return
        if granted:
            # Consent was granted between the check and the record: the chain logs a grant for
            # a request the gateway refused. Refusing stays the safe side; nothing is released.
            logger.warning(
                "request 0x%s was refused at check time but recorded as granted in %s",
                request.request_id.hex()[:12],
                receipt.tx_hash,
            )

    def _record_refusal(self, request: _Request) -> None:
        """Record a refusal the contract has no event for, without masking the caller's error."""
        record = self._record(request, permitted=False)
        try:
            if self._outbox is not None:
                self._add_to_outbox(record)
                return
            receipt = self.sender.transact(
                self.suite.access_log.functions.anchorBatch(record.leaf(), 1, record.request_id)
            )
            logger.warning(
                "refusal anchored as a one-record batch in %s: %s",
                receipt.tx_hash,
                record_json(record),
            )
        except ImagingConsentError as exc:
            logger.error(
                "could not record refusal %s (%s)", record_json(record), type(exc).__name__
            )

    # --- batched mode --------------------------------------------------------------------------

    def flush(self) -> list[Batch]:
        """Anchor every record waiting in the outbox, exactly once, and return the batches.

        Batches sealed before a crash are first looked up on chain (``BatchAnchored`` by
        ``batchId`` and this gateway) and only sent if absent.

        Raises:
            ChainUnavailableError: If the chain cannot be reached (records stay in the outbox).
            TransactionError: If an anchor transaction fails (records stay in the outbox).
        """
        if self._outbox is None:
            return []
        return flush(self._outbox, self._anchor, self._find_anchor)

    def batch_proof(self, request_id: bytes) -> tuple[Batch, list[bytes]] | None:
        """The sealed batch holding a batched record, and the record's proof, if sealed."""
        return self._outbox.batch_of(request_id) if self._outbox is not None else None

    def _anchor(self, batch: Batch) -> bytes:
        receipt = self.sender.transact(
            self.suite.access_log.functions.anchorBatch(batch.root, batch.count, batch.batch_id)
        )
        logger.info(
            "anchored batch 0x%s (%d records) in %s",
            batch.batch_id.hex()[:12],
            batch.count,
            receipt.tx_hash,
        )
        return bytes.fromhex(receipt.tx_hash.removeprefix("0x"))

    def _find_anchor(self, batch_id: bytes) -> bytes | None:
        w3 = self.suite.session.w3
        head = block_number(self.suite.session)
        start = self.suite.manifest.block_number
        gateway_topic = HexBytes(bytes(12) + bytes.fromhex(self.address[2:]))
        while start <= head:
            end = min(start + LOG_PAGE_BLOCKS - 1, head)
            try:
                logs = w3.eth.get_logs(
                    {
                        "address": self.suite.access_log.address,
                        "fromBlock": start,
                        "toBlock": end,
                        "topics": [_BATCH_ANCHORED_TOPIC, None, HexBytes(batch_id), gateway_topic],
                    }
                )
            except Exception as exc:  # any failure here must stop the flush, typed
                raise ChainUnavailableError(
                    f"cannot look up batch anchors ({type(exc).__name__})"
                ) from exc
            for log in logs:
                return bytes(log["transactionHash"])
            start = end + 1
        return None
