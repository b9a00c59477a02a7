"""What the DICOMweb routes do: searches gated by consent, and retrievals through the gate.

Searches (QIDO-RS) list only what the caller may see for the purpose: each study of the store
is checked with one ``checkAccess`` call, a study not registered or not permitted is simply
absent, and a de-identified caller sees pseudonymous UIDs (:mod:`.pseudonyms`) and no dates.
Searches are not recorded on chain: they release no image. Retrievals (WADO-RS) call
:meth:`ImageGateway.release`, which verifies the whole study, records the access and streams
the files into a private folder; they are sent from there instance by instance, then removed.
Each request's ``proof.json`` is kept for its requester (:meth:`Service.proof`).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress

from imaging_consent.consent.purposes import Purpose
from imaging_consent.dicom import read_dicom, study_key
from imaging_consent.errors import (
    BadRequestError,
    NotAcceptableError,
    StudyNotRegisteredError,
    UnknownStudyError,
)
from imaging_consent.gateway import ImageGateway, Release
from imaging_consent.provenance import PROOF_FILE
from imaging_consent.server import break_glass
from imaging_consent.server.auth import Principal
from imaging_consent.server.media import check_uid
from imaging_consent.server.pseudonyms import Pseudonyms
from imaging_consent.stores.base import InstanceRecord

__all__ = ["Retrieval", "Service", "StudyQuery"]

_DATE = re.compile(r"^(\d{8})?(-)?(\d{8})?$")
#: Query keys by keyword and tag; PatientID and every other key are refused.
_STUDY_KEYS = {
    "StudyInstanceUID": "0020000D",
    "ModalitiesInStudy": "00080061",
    "StudyDate": "00080020",
}
_SERIES_KEYS = {"SeriesInstanceUID": "0020000E", "Modality": "00080060"}
_INSTANCE_KEYS = {"SOPInstanceUID": "00080018", "Modality": "00080060"}
_PAGING = ("limit", "offset", "includefield", "fuzzymatching")
_PATIENT_KEYS = {"PatientID", "00100020", "PatientName", "00100010", "PatientBirthDate"}


def _attr(tag: str, vr: str, *values: Any) -> dict[str, Any]:
    return {tag: {"vr": vr, "Value": list(values)}} if values else {tag: {"vr": vr}}


@dataclass(frozen=True, slots=True)
class StudyQuery:
    """A QIDO-RS study search: filters and paging."""

    uids: frozenset[str] = frozenset()
    modalities: frozenset[str] = frozenset()
    date_range: tuple[str, str] | None = None
    limit: int | None = None
    offset: int = 0

    @classmethod
    def parse(cls, params: Mapping[str, str], keys: Mapping[str, str] = _STUDY_KEYS) -> StudyQuery:
        """Read the query keys of a search (keywords or tags).

        Raises:
            BadRequestError: On PatientID or any patient key, an unsupported key, a malformed
                UID, date range, limit or offset.
        """
        by_tag = {tag: name for name, tag in keys.items()}
        values: dict[str, str] = {}
        for raw, value in params.items():
            if raw in _PATIENT_KEYS:
                raise BadRequestError(f"{raw} is never accepted from an app")
            name = by_tag.get(raw.upper(), raw)
            if name not in (*keys, *_PAGING):
                raise BadRequestError(f"unsupported query key {raw!r}")
            values[name] = value
        uid_key, modality_key = list(keys)[:2]
        uids = frozenset(
            check_uid(u.strip(), uid_key) for u in values.get(uid_key, "").split(",") if u.strip()
        )
        modalities = frozenset(
            m.strip().upper() for m in values.get(modality_key, "").split(",") if m.strip()
        )
        return cls(
            uids, modalities, _date_range(values.get("StudyDate")),
            _count(values.get("limit"), "limit"), _count(values.get("offset"), "offset") or 0,
        )  # fmt: skip

    def page(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The requested page of ``results``."""
        end = None if self.limit is None else self.offset + self.limit
        return results[self.offset : end]


def _date_range(value: str | None) -> tuple[str, str] | None:
    if value is None or not value.strip():
        return None
    match = _DATE.match(value.strip())
    if not match or not (match.group(1) or match.group(3)):
        raise BadRequestError("StudyDate must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    start, dash, end = match.groups()
    if dash is None:
        return start, start
    return start or "00000000", end or "99999999"


def _count(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 9:
        raise BadRequestError(f"{what} must be a non-negative integer")
    return int(value)


@dataclass(frozen=True, slots=True)
class Retrieval:
    """A recorded release in a private folder, ready to be sent, and then removed."""

    release: Release
    folder: Path

    @property
    def files(self) -> list[Path]:
        """The released DICOM files, in release order."""
        return [p for p in self.release.files if p.name != PROOF_FILE]

    def remove(self) -> None:
        """Remove the folder (the proofs are kept elsewhere)."""
        shutil.rmtree(self.folder, ignore_errors=True)


class Service:
    """The DICOMweb service's work, on one gateway.

    Args:
        gateway: The release gate.
        work_dir: Private working folder: ``releases/`` (removed when sent) and ``proofs/``.
    """

    def __init__(self, gateway: ImageGateway, work_dir: Path) -> None:
        self.gateway = gateway
        self.pseudonyms = Pseudonyms(gateway.pepper, gateway.store)
        self._releases = work_dir / "releases"
        self._proofs = work_dir / "proofs"
        for folder in (self._releases, self._proofs):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def clean(self) -> None:
        """Remove releases left behind (a crash or a client that went away)."""
        shutil.rmtree(self._releases, ignore_errors=True)
        self._releases.mkdir(mode=0o700, parents=True, exist_ok=True)

    # --- searches ------------------------------------------------------------------------------

    def _visible(self, caller: ChecksumAddress, purpose: Purpose, uid: str) -> bool | None:
        """None if ``caller`` may not see the study; else whether identified.

        Raises:
            ChainUnavailableError: If the chain cannot answer.
        """
        gate = self.gateway
        try:
            decision = gate.suite.access_log.check_access_confirmed(
                gate.site, study_key(gate.pepper, uid), caller, purpose.value, gate.confirmations
            )
        except StudyNotRegisteredError:
            return None
        return decision.identified if decision.permitted else None

    def search_studies(
        self, principal: Principal, purpose: Purpose, query: StudyQuery
    ) -> list[dict[str, Any]]:
        """The studies ``principal`` may see for ``purpose`` that match ``query``.

        Raises:
            ChainUnavailableError: If the chain cannot answer (nothing is listed).
            StoreError: If the store cannot answer.
        """
        caller = principal.address
        results = []
        for uid in self.gateway.store.studies():
            if not self._named(query, caller, uid):
                continue
            identified = self._visible(caller, purpose, uid)
            if identified is None:
                continue
            named = uid if identified else self.pseudonyms.of(caller, uid)
            records = self.gateway.store.instances(uid)
            modalities = sorted({r.modality for r in records if r.modality})
            if query.modalities and not query.modalities & set(modalities):
                continue
            result = _attr("0020000D", "UI", named) | _attr("00080061", "CS", *modalities)
            result |= _attr("00201206", "IS", len({r.series_instance_uid for r in records}))
            result |= _attr("00201208", "IS", len(records))
            if identified:
                date = self._study_date(records[0])
                if query.date_range is not None and not _in_range(date, query.date_range):
                    continue
                result |= _attr("00080020", "DA", *([date] if date else []))
            elif query.date_range is not None:
                continue  # a de-identified caller learns no dates, not even through a filter
            results.append(result)
        return query.page(results)

    def _named(self, query: StudyQuery, caller: ChecksumAddress, uid: str) -> bool:
        if not query.uids:
            return True
        return uid in query.uids or self.pseudonyms.of(caller, uid) in query.uids

    def _study_date(self, record: InstanceRecord) -> str:
        with self.gateway.store.open(record.sop_instance_uid) as fp:
            ds = read_dicom(fp, stop_before_pixels=True)
        return str(ds.get("StudyDate", "") or "")

    def search_within(
        self,
        principal: Principal,
        purpose: Purpose,
        study: str,
        series: str | None,
        params: Mapping[str, str],
    ) -> list[dict[str, Any]]:
        """The series of a study (or the instances of a series) ``principal`` may see.

        A study the caller may not see is answered as unknown (404), like a missing one.

        Raises:
            BadRequestError: On a malformed UID or an unsupported query key.
            UnknownStudyError: If there is no such study or series the caller may see.
            ChainUnavailableError: If the chain cannot answer.
        """
        caller = principal.address
        query = StudyQuery.parse(params, _SERIES_KEYS if series is None else _INSTANCE_KEYS)
        real = self.resolve_study(caller, study)
        identified = self._visible(caller, purpose, real) if real is not None else None
        if real is None or identified is None:
            raise UnknownStudyError("no such study")
        records = self.gateway.store.instances(real)
        if series is not None:
            real_series = self._resolve_within(caller, series, records)
            records = [r for r in records if r.series_instance_uid == real_series]
            if not records:
                raise UnknownStudyError("no such series")

        def name(uid: str) -> str:
            return uid if identified else self.pseudonyms.of(caller, uid)

        results = (
            _series_results(records, name) if series is None else _instance_results(records, name)
        )
        return query.page([r for r in results if _matches(r, query)])

    # --- retrievals ----------------------------------------------------------------------------

    def resolve_study(self, caller: ChecksumAddress, uid: str) -> str | None:
        """The store's study named ``uid`` (its UID, or the caller's pseudonym of it), or None."""
        if uid in self.gateway.store.studies():
            return uid
        return self.pseudonyms.study(caller, uid)

    def _resolve_within(
        self, caller: ChecksumAddress, uid: str, records: list[InstanceRecord]
    ) -> str:
        if any(uid in (r.series_instance_uid, r.sop_instance_uid) for r in records):
            return uid
        return self.pseudonyms.within(caller, uid, records) or uid

    def retrieve(
        self,
        principal: Principal,
        purpose: Purpose,
        selection: tuple[str, str | None, str | None],
        transfer_syntax: str | None,
        break_glass_headers: tuple[str | None, str | None],
    ) -> Retrieval:
        """Release a study, series or instance to ``principal`` through the gate.

        Args:
            principal: The signed-in requester.
            purpose: The purpose of use (ignored for break-glass: ETREAT).
            selection: Study, series and SOP Instance UIDs as given (or pseudonyms).
            transfer_syntax: The transfer syntax asked for (None or ``*``: as stored).
            break_glass_headers: ``X-Break-Glass`` and ``X-Break-Glass-Reason``, if sent.

        Raises:
            BadRequestError: If the break-glass headers are malformed.
            NotAcceptableError: If a transfer syntax other than the stored one is asked for.
            ImagingConsentError: Whatever :meth:`ImageGateway.release` raises.
        """
        caller = principal.address
        study, series, instance = selection
        real = self.resolve_study(caller, study) or study
        records = self._records(real)
        if records:
            series = None if series is None else self._resolve_within(caller, series, records)
            instance = None if instance is None else self._resolve_within(caller, instance, records)
        _check_transfer_syntax(transfer_syntax, records, series, instance)
        signed = None
        header, reason = break_glass_headers
        if header is not None:
            key = study_key(self.gateway.pepper, real)
            signed = break_glass.parse_headers(header, reason, caller, self.gateway, key)
        folder = self._releases / secrets.token_hex(16)
        try:
            release = self.gateway.release(
                real, caller, purpose, series_uid=series, sop_instance_uid=instance,
                break_glass=signed, destination=folder,
            )  # fmt: skip
            self._keep_proof(caller, release, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return Retrieval(release, folder)

    def _records(self, study: str) -> list[InstanceRecord]:
        try:
            return self.gateway.store.instances(study)
        except UnknownStudyError:
            return []  # the gate decides (and records) what a missing study means

    def _keep_proof(self, caller: ChecksumAddress, release: Release, folder: Path) -> None:
        document = {
            "requester": caller,
            "proof": json.loads((folder / PROOF_FILE).read_text()),
        }
        path = self._proofs / f"{release.request_id.hex()}.json"
        path.write_text(json.dumps(document))
        path.chmod(0o600)

    def proof(self, principal: Principal, request_id: str) -> dict[str, Any]:
        """The ``proof.json`` of one of ``principal``'s releases.

        Raises:
            BadRequestError: If ``request_id`` is not 0x and 64 hex digits.
            UnknownStudyError: If there is no such release of this requester (another
                requester's looks the same as none).
        """
        digits = request_id.removeprefix("0x").lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digits):
            raise BadRequestError("a request id is 0x and 64 hex digits")
        path = self._proofs / f"{digits}.json"
        try:
            document = json.loads(path.read_text())
        except OSError:
            document = None
        if not isinstance(document, dict) or document.get("requester") != principal.address:
            raise UnknownStudyError("no such release of this requester")
        proof: dict[str, Any] = document["proof"]
        return proof


def _in_range(date: str, bounds: tuple[str, str]) -> bool:
    return bool(date) and bounds[0] <= date <= bounds[1]


def _check_transfer_syntax(
    wanted: str | None, records: list[InstanceRecord], series: str | None, instance: str | None
) -> None:
    if wanted in (None, "*"):
        return
    chosen = [
        r
        for r in records
        if (series is None or r.series_instance_uid == series)
        and (instance is None or r.sop_instance_uid == instance)
    ]
    if any(r.transfer_syntax_uid != wanted for r in chosen):
        raise NotAcceptableError(
            "instances are sent in their stored transfer syntax (no transcoding): ask for "
            "transfer-syntax=* or none"
        )


def _series_results(records: list[InstanceRecord], name: Any) -> list[dict[str, Any]]:
    by_series: dict[str, list[InstanceRecord]] = {}
    for record in records:
        by_series.setdefault(record.series_instance_uid, []).append(record)
    return [
        _attr("0020000E", "UI", name(uid))
        | _attr("00080060", "CS", *sorted({r.modality for r in group if r.modality}))
        | _attr("00201209", "IS", len(group))
        for uid, group in by_series.items()
    ]


def _instance_results(records: list[InstanceRecord], name: Any) -> list[dict[str, Any]]:
    return [
        _attr("00080018", "UI", name(r.sop_instance_uid))
        | _attr("00080016", "UI", r.sop_class_uid)
        | _attr("0020000E", "UI", name(r.series_instance_uid))
        | _attr("00080060", "CS", *([r.modality] if r.modality else []))
        | _attr("00200013", "IS", *([r.instance_number] if r.instance_number is not None else []))
        for r in records
    ]


def _matches(result: dict[str, Any], query: StudyQuery) -> bool:
    uid = next(iter(result.values()))["Value"][0]
    if query.uids and uid not in query.uids:
        return False
    modality = result.get("00080060", {}).get("Value", [])
    return not query.modalities or bool(query.modalities & set(modality))


def stream_multipart(retrieval: Retrieval, boundary: str) -> Iterator[bytes]:
    """The multipart/related body, one instance at a time; the folder is removed at the end."""
    try:
        for path in retrieval.files:
            size = path.stat().st_size
            yield (
                f"--{boundary}\r\nContent-Type: application/dicom\r\nContent-Length: {size}\r\n\r\n"
            ).encode()
            with path.open("rb") as fp:
                while chunk := fp.read(1 << 20):
                    yield chunk
            yield b"\r\n"
            path.unlink()
        yield f"--{boundary}--\r\n".encode()
    finally:
        retrieval.remove()


def metadata(retrieval: Retrieval) -> list[dict[str, Any]]:
    """The released instances' attributes as DICOM JSON (without pixel data); folder removed.

    Raises:
        DicomReadError: If a released file cannot be read back.
    """
    try:
        return [
            read_dicom(path, stop_before_pixels=True).to_json_dict() for path in retrieval.files
        ]
    finally:
        retrieval.remove()
