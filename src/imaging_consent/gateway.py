"""The gateway: images leave only when the chain says so, and every decision is recorded.

:meth:`ImageGateway.release` checks consent (``checkAccess``, one ``eth_call``; yes at ``head``
and at ``head - confirmations``), loads the study once, checks it against its on-chain content
root (:mod:`imaging_consent.provenance`), de-identifies unless the grant allows identified data,
records the access (:mod:`imaging_consent.access_log`) and only then returns the images with
their proofs. Failure guarantees: docs/ARCHITECTURE.md, "The release gate".
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from imaging_consent.access_log.break_glass import (
    BreakGlass,
    authorize_break_glass,
    reason_commitment,
    sign_break_glass,
)
from imaging_consent.access_log.outbox import Batch, Outbox
from imaging_consent.access_log.recorder import AccessRequest, LogMode, Recorder, make_recorder
from imaging_consent.chain import TransactionSender
from imaging_consent.consent.purposes import Purpose
from imaging_consent.contracts.access_log import AccessDecision
from imaging_consent.contracts.deployment import Suite
from imaging_consent.dicom import SitePepper, release_secret, study_key
from imaging_consent.errors import (
    ChainUnavailableError,
    ConsentDeniedError,
    DicomError,
    IntegrityError,
    InvalidSignatureError,
    NotEmergencyError,
    NotGatewayError,
    SignatureExpiredError,
    StoreError,
)
from imaging_consent.provenance.content import ContentProtocol
from imaging_consent.provenance.instances import verified_instances
from imaging_consent.provenance.released import ReleasedInstance
from imaging_consent.provenance.verify import ReleaseFolder
from imaging_consent.stores.base import ImageStore

__all__ = ["ImageGateway", "LogMode", "Release", "ReleasedInstance"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Release:
    """The outcome of one release (a :class:`~imaging_consent.provenance.ReleasedStudy`).

    ``request_id`` is the id the access is recorded under; ``purpose`` is ETREAT for
    break-glass; ``protocol`` the content protocol the study verified under; ``log_tx`` the
    mined ``recordAccess`` / ``recordBreakGlass`` (else None); ``batch_request_logged`` is True
    when the record waits in the outbox for :meth:`flush`; ``files`` the paths written when the
    release went to a folder (the DICOM files, then ``proof.json``).
    """

    request_id: bytes
    site: ChecksumAddress
    study_key: bytes
    patient: ChecksumAddress
    requester: ChecksumAddress
    purpose: Purpose
    identified: bool
    break_glass: bool
    protocol: ContentProtocol
    instances: tuple[ReleasedInstance, ...]
    log_tx: str | None
    batch_request_logged: bool
    files: tuple[Path, ...] = ()


class ImageGateway:
    """Releases a site's studies to requesters, as consent on chain permits, and records it.

    Args:
        suite: The deployed contracts.
        sender: Sends as the gateway's account, which holds AccessLog's GATEWAY_ROLE.
        store: Where the site's images are.
        pepper: The site pepper (the one the studies were registered with).
        log_mode: :attr:`LogMode.SYNC` (default) or :attr:`LogMode.BATCHED`.
        outbox_path: The outbox database (required in both modes): every record is stored
            there before anything is sent or released, and stays until it is final on chain.
        release_secret: Optional master secret (>= 16 bytes): each release keys its UID
            pseudonyms with ``HMAC-SHA256(release_secret, request_id)``, so the site can re-link
            it; by default each release gets 32 random bytes and nobody can.
        confirmations: Consent must say yes both at ``head - confirmations`` and at ``head``
            (default 0: at ``head`` only); and a ``recordAccess`` or anchor counts as final
            once this many blocks are mined on top of it.
        clock: Unix time for batched records' timestamps (default ``time.time``).

    Raises:
        ValueError: On an inconsistent configuration (no outbox, a short release secret,
            negative confirmations).
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
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        if release_secret is not None and len(release_secret) < 16:
            raise ValueError("release_secret must be at least 16 bytes")
        self.suite = suite
        self.sender = sender
        self.store = store
        self.pepper = pepper
        self.confirmations = confirmations
        self._release_secret = release_secret
        self.recorder: Recorder = make_recorder(
            log_mode,
            suite.access_log,
            sender,
            outbox_path=outbox_path,
            from_block=suite.manifest.block_number,
            confirmations=confirmations,
            clock=clock,
        )
        self.log_mode = self.recorder.mode
        site = suite.access_log.site_of(sender.address)
        if site is None:
            raise NotGatewayError(
                f"{sender.address} is not a gateway of any site: the site appoints its "
                "gateways (imaging-consent site appoint)"
            )
        self.site: ChecksumAddress = site

    def close(self) -> None:
        """Close the outbox (records already added are on disk)."""
        self.recorder.close()

    def __enter__(self) -> ImageGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def outbox(self) -> Outbox:
        """The durable outbox."""
        return self.recorder.outbox

    @property
    def address(self) -> ChecksumAddress:
        """The gateway's account (the ``gateway`` of every record)."""
        return self.sender.address

    def release(
        self,
        study_uid: str,
        requester: str,
        purpose: Purpose | str,
        *,
        series_uid: str | None = None,
        break_glass: BreakGlass | None = None,
        destination: str | os.PathLike[str] | None = None,
    ) -> Release:
        """Release a study (or one series of it) to ``requester``, if consent permits.

        Args:
            study_uid: The study's Study Instance UID.
            requester: The requester's address (authenticated by the caller).
            purpose: Purpose of use (a :class:`Purpose` or its code, e.g. ``"TREAT"``).
            series_uid: Release only this series (the whole study is still verified).
            break_glass: An emergency access without consent: the requester's own signed
                request (:meth:`break_glass_request`). Always sync, always identified,
                recorded with purpose ETREAT; the reason stays at the site.
            destination: Stream the files into this folder (a :class:`ReleaseFolder`: staged
                privately, moved into place with ``proof.json`` only once the access is
                recorded), so memory does not grow with the study. Without it the files are
                held in memory (``ReleasedInstance.data``).

        Returns:
            The released instances with their proofs, and where the access is recorded.

        Raises (every refusal after the study is found on chain is recorded first):
            ValueError: If the requester is not an address.
            UnknownPurposeError: If ``purpose`` is not a known code.
            ConsentDeniedError: If consent does not permit it, or was withdrawn or narrowed to
                de-identified data while the study was read (checked again at record time).
            StudyNotRegisteredError: If this gateway's site has no such study.
            NotEmergencyError: If a break-glass requester is not the site's emergency clinician.
            InvalidSignatureError: If a break-glass request is not the requester's own for
                this study and site, or has expired, or its request id was used before.
            BreakGlassLimitError: If the clinician has used up the break-glass window.
            IntegrityError: If the images do not match the content root or cannot be read.
            StoreError: If the store does not have the study or series.
            DeidentificationError: If they cannot be de-identified safely (burned-in text that
                cannot be ruled out, recognizable visual features).
            ChainUnavailableError: If the chain cannot be reached or answers unclearly.
            TransactionError: If the access record cannot be mined (sync; nothing released).
            ReleaseError: If the outbox cannot store the record (batched; nothing released).
        """
        accessor = to_checksum_address(requester)
        chosen = Purpose.ETREAT if break_glass is not None else Purpose.parse(purpose)
        key = study_key(self.pepper, study_uid)
        if break_glass is not None:
            decision = self._emergency(key, accessor, break_glass)
            request_id = break_glass.request_id
        else:
            request_id = os.urandom(32)
            decision = self.suite.access_log.check_access_confirmed(
                self.site, key, accessor, chosen.value, self.confirmations
            )
        request = AccessRequest(
            request_id, key, decision.patient, accessor, chosen.value, break_glass is not None,
            decision.identified,
        )  # fmt: skip
        if not decision.permitted:
            self.recorder.record_denial(request)
            raise ConsentDeniedError(
                f"consent does not permit {accessor} to access study 0x{key.hex()} for "
                f"{chosen.name}; the refusal is recorded (request 0x{request_id.hex()})",
                request_id=request_id,
            )
        folder = ReleaseFolder(destination) if destination is not None else None
        try:
            protocol, instances = self._verified(request, study_uid, series_uid, decision, folder)
            log_tx = self._record(request, break_glass)
            release = Release(
                request_id=request_id,
                site=self.site,
                study_key=key,
                patient=decision.patient,
                requester=accessor,
                purpose=chosen,
                identified=decision.identified,
                break_glass=request.break_glass,
                protocol=protocol,
                instances=instances,
                log_tx=log_tx,
                batch_request_logged=log_tx is None,
            )
            if folder is not None:
                release = replace(release, files=tuple(folder.commit(release)))
        finally:
            if folder is not None:
                folder.abort()
        logger.info("released %d instance(s), request 0x%s", len(instances), request_id.hex()[:12])
        return release

    def break_glass_request(
        self, clinician: LocalAccount, study_uid: str, reason: str, *, lifetime: int = 600
    ) -> BreakGlass:
        """Sign a break-glass request with the clinician's own key, for this site's study.

        Only the reason's keyed commitment (HMAC with the site pepper) is signed and recorded.

        Raises:
            ValueError: If the reason is empty.
        """
        key = study_key(self.pepper, study_uid)
        commitment = reason_commitment(self.pepper, reason)
        return sign_break_glass(clinician, self.suite, self.site, key, commitment, lifetime)

    def flush(self) -> list[Batch]:
        """Anchor every record waiting in the outbox, exactly once, and settle the sync records
        (see the recorder). Safe to run from several processes on one outbox (a file lock).

        Returns:
            The batches this call saw mined or final (``Batch.final``).

        Raises:
            ChainUnavailableError: If the chain cannot be reached (records stay in the outbox).
            TransactionError: If an anchor transaction fails (records stay in the outbox).
        """
        return self.recorder.flush()

    # --- steps ---------------------------------------------------------------------------------

    def _emergency(
        self, key: bytes, accessor: ChecksumAddress, signed: BreakGlass
    ) -> AccessDecision:
        study = self.suite.studies.study(self.site, key)
        request = AccessRequest(
            signed.request_id, key, study.patient, accessor, Purpose.ETREAT.value, True, True
        )
        try:
            authorize_break_glass(self.suite, self.site, key, accessor, signed)
        except (InvalidSignatureError, SignatureExpiredError, NotEmergencyError) as exc:
            self.recorder.record_refusal(request, type(exc).__name__)
            raise
        return AccessDecision(study.patient, study.content_root, True, True)

    def _record(self, request: AccessRequest, break_glass: BreakGlass | None) -> str | None:
        """Record the release; consent as it stands now decides, not as it stood at the check.

        Sync: the chain checks consent again in ``recordAccess`` (the recorder refuses if it was
        withdrawn or narrowed). Batched: consent is asked again here, right before the record
        goes to the outbox and the files are returned; if the chain cannot answer, the refusal
        goes to the outbox instead (as a sync record whose transaction cannot be sent does).
        """
        if break_glass is not None:
            return self.recorder.record_break_glass(request, break_glass)
        if self.recorder.mode is LogMode.BATCHED:
            try:
                now = self.suite.access_log.check_access(
                    self.site, request.study_key, request.requester, request.purpose
                )
            except ChainUnavailableError as exc:  # the study was read: the refusal is kept
                self.recorder.record_refusal(request, type(exc).__name__)
                raise
            if not now.permitted:
                self.recorder.record_denial(request)
                raise ConsentDeniedError(
                    f"consent for study 0x{request.study_key.hex()} was withdrawn while the study "
                    "was read; nothing released, the refusal is recorded",
                    request_id=request.request_id,
                )
            if request.identified and not now.identified:
                self.recorder.record_refusal(request, "ConsentNarrowed")
                raise ConsentDeniedError(
                    f"consent for study 0x{request.study_key.hex()} was narrowed to de-identified "
                    "data while the study was read; the identified images are not released, the "
                    "refusal is recorded",
                    request_id=request.request_id,
                )
        return self.recorder.record_release(request)

    def _verified(
        self,
        request: AccessRequest,
        study_uid: str,
        series_uid: str | None,
        decision: AccessDecision,
        folder: ReleaseFolder | None,
    ) -> tuple[ContentProtocol, tuple[ReleasedInstance, ...]]:
        master, rid = self._release_secret, request.request_id
        secret = None if decision.identified else release_secret(master, rid)
        stage = folder.stage if folder is not None else None
        try:
            return verified_instances(
                self.store, self.pepper, study_uid, series_uid, decision.content_root, secret, stage
            )
        except (StoreError, DicomError, IntegrityError) as exc:
            self.recorder.record_refusal(request, type(exc).__name__)
            if isinstance(exc, IntegrityError) and exc.request_id is None:
                exc.request_id = request.request_id
            raise
