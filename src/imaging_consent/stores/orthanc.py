"""OrthancStore: the instances of an Orthanc server, read over its REST API.

The index is built from Orthanc's own answers, never from a local copy:

- ``GET /instances?expand`` lists every instance with its Orthanc id, the id (``FileUuid``) and
  size of its stored DICOM file;
- for each instance not seen before, or whose stored file changed, ``GET /instances/{id}/
  simplified-tags`` gives the identifiers from the instance's own data set (SOP, Series and
  Study Instance UID, SOP Class, Modality, Instance Number, whether PixelData is present) and
  ``GET /instances/{id}/metadata/TransferSyntax`` the transfer syntax Orthanc read from its file
  meta.

So a record means exactly what a :class:`~imaging_consent.stores.folder.FolderStore` record of
the same file means. :meth:`OrthancStore.refresh` re-reads only instances that are new or whose
stored file changed, and drops instances that are gone. An instance the index cannot place
(a required UID missing, or a SOP Instance UID that Orthanc holds under two studies, since its ids
hash the patient and study too) is a :class:`OrthancProblem`, never a store that will not open.
Both copies of a duplicated SOP Instance UID are left out: no order between them means anything.

:meth:`OrthancStore.open` downloads the exact stored bytes (``GET /instances/{id}/file``) into
memory, one instance at a time: no temporary file. It reads no more than the indexed size, and
refuses (:class:`~imaging_consent.errors.StaleIndexError`) an instance that is gone, or whose
stored file was replaced or resized since it was indexed (call :meth:`OrthancStore.refresh`).
None of this is evidence: the release gate rehashes every byte against the chain.

Plain ``http://`` is accepted only on loopback unless allowed (``allow_insecure_http``).
Credentials go in ``username`` and ``password`` (HTTP basic), never in the URL; no message or log
line names them. Each thread has its own HTTP session (the gate reads two instances at a time).
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, BinaryIO, TypeAlias
from urllib.parse import urlsplit

import requests

from imaging_consent.dicom.read import InstanceRecord
from imaging_consent.errors import (
    InsecureStoreEndpointError,
    StaleIndexError,
    StoreAuthError,
    StoreError,
    StoreUnavailableError,
    UnknownInstanceError,
    UnknownStudyError,
)
from imaging_consent.net import is_plain_http_to_remote, redact_url
from imaging_consent.stores.folder import ProblemKind, RefreshReport

__all__ = ["DEFAULT_TIMEOUT", "OrthancProblem", "OrthancProgress", "OrthancStore"]

logger = logging.getLogger(__name__)

#: Seconds to wait for Orthanc to answer any one request.
DEFAULT_TIMEOUT = 30.0

#: Progress callback for indexing: ``(instances_done, instances_total, orthanc_id)``.
OrthancProgress: TypeAlias = Callable[[int, int, str], None]

_REQUIRED_TAGS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "SOPClassUID")
_CHUNK = 1 << 20
# Orthanc names the stored file in the download's Content-Disposition: filename="<uuid>.dcm".
_FILE_NAME = re.compile(r'filename="?([0-9a-fA-F-]{36})\.dcm"?')


@dataclass(frozen=True, slots=True)
class OrthancProblem:
    """An Orthanc instance that could not be indexed, and why.

    Attributes:
        instance: Orthanc's id of the instance (a hash Orthanc computes; not a DICOM UID).
        kind: The reason.
        detail: What the index knows more: the missing UIDs' keywords, the HTTP status, or
            the other Orthanc instances holding the same SOP Instance UID. Never a UID or another
            element value.
    """

    instance: str
    kind: ProblemKind
    detail: str

    @property
    def error(self) -> str:
        """One line naming the instance, the reason and the detail."""
        return f"instance {self.instance}: {self.kind.value}" + (
            f" ({self.detail})" if self.detail else ""
        )


@dataclass(frozen=True, slots=True)
class _Stored:
    """One stored DICOM file as Orthanc lists it: the instance and its attachment."""

    orthanc_id: str
    file_uuid: str
    size: int


@dataclass(frozen=True, slots=True)
class _Entry:
    stored: _Stored
    record: InstanceRecord


@dataclass(frozen=True, slots=True)
class _Unusable:
    """Why one instance cannot be indexed."""

    kind: ProblemKind
    detail: str


#: What reading one instance gave: its record, or why it has none.
_Outcome: TypeAlias = "InstanceRecord | _Unusable"


@dataclass(frozen=True, slots=True)
class _Index:
    """One immutable snapshot of the index (replaced whole by :meth:`OrthancStore.refresh`)."""

    stored: Mapping[str, _Stored]  # every listed instance, by Orthanc id
    outcomes: Mapping[str, _Outcome]  # by Orthanc id
    by_sop: Mapping[str, _Entry]
    by_study: Mapping[str, tuple[InstanceRecord, ...]]
    problems: tuple[OrthancProblem, ...]


class OrthancStore:
    """An :class:`~imaging_consent.stores.base.ImageStore` over an Orthanc server's REST API.

    Args:
        url: The server's base URL (``http://127.0.0.1:8042``; a path prefix is kept).
        username: HTTP basic user name, if the server asks for one.
        password: Its password.
        timeout: Seconds to wait for any one request.
        allow_insecure_http: Accept plain ``http://`` to a server that is not on loopback.
        refresh: Index the server now (default True).
        progress: Called as ``(done, total, orthanc_id)`` while instances are read.

    Raises:
        StoreError: If the URL is not ``http://`` or ``https://``, or carries credentials.
        InsecureStoreEndpointError: If it is plain HTTP to a remote host, not allowed.
        StoreUnavailableError: If the server cannot be reached (when indexing now).
        StoreAuthError: If it refuses the credentials (when indexing now).
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        allow_insecure_http: bool = False,
        refresh: bool = True,
        progress: OrthancProgress | None = None,
    ) -> None:
        self.url = _checked_url(url, allow_insecure_http)
        self.shown = redact_url(self.url)
        self._auth = (username, password or "") if username else None
        self._timeout = timeout
        self._local = threading.local()
        self._index = _build([], {})
        if refresh:
            self.refresh(progress=progress)

    def __repr__(self) -> str:
        return f"OrthancStore({self.shown!r})"

    # --- HTTP ----------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self._auth
            session.trust_env = False  # no proxy or .netrc credentials picked up silently
            self._local.session = session
        return session

    def _get(self, path: str, what: str, *, stream: bool = False) -> requests.Response:
        """GET ``path`` (below the base URL); ``what`` names it in messages.

        Raises:
            StoreUnavailableError: If the server cannot be reached or times out.
            StoreAuthError: On HTTP 401 or 403.
            UnknownInstanceError: On HTTP 404 (the caller may turn it into something else).
            StoreError: On any other status that is not 2xx.
        """
        try:
            response = self._session().get(self.url + path, timeout=self._timeout, stream=stream)
        except requests.RequestException as exc:
            raise StoreUnavailableError(
                f"cannot reach Orthanc at {self.shown} ({type(exc).__name__})"
            ) from None
        if response.status_code in (401, 403):
            response.close()
            raise StoreAuthError(
                f"Orthanc at {self.shown} refused access to {what} (HTTP {response.status_code}): "
                "check the user name and password"
            )
        if response.status_code == 404:
            response.close()
            raise UnknownInstanceError(f"Orthanc at {self.shown} has no {what} (HTTP 404)")
        if not response.ok:
            response.close()
            raise StoreError(
                f"Orthanc at {self.shown} answered HTTP {response.status_code} to {what}"
            )
        return response

    def _json(self, path: str, what: str) -> Any:
        """GET ``path`` and decode its JSON answer.

        Raises:
            StoreUnavailableError: If the answer is not JSON (or as :meth:`_get`).
        """
        response = self._get(path, what)
        try:
            return response.json()
        except ValueError:
            raise StoreUnavailableError(
                f"Orthanc at {self.shown} did not answer JSON to {what}"
            ) from None

    # --- indexing ------------------------------------------------------------------------------

    def refresh(self, *, progress: OrthancProgress | None = None) -> RefreshReport:
        """Bring the index up to date with the server.

        New instances and instances whose stored file changed are read again; instances that
        are gone are dropped; instances that were problems are retried when they changed, and
        duplicates always (the other copy may be gone). The old index stays in use until the
        new one is complete.

        Raises:
            StoreUnavailableError: If the server cannot be reached or answers nonsense.
            StoreAuthError: If it refuses the credentials.
            StoreError: On another HTTP error.
        """
        known = self._index.stored
        listed = self._list_stored()
        todo = [s for s in listed if known.get(s.orthanc_id) != s]
        read = dict(self._index.outcomes)
        for done, stored in enumerate(todo, start=1):
            read[stored.orthanc_id] = self._read_record(stored.orthanc_id)
            if progress is not None:
                progress(done, len(todo), stored.orthanc_id)
        self._index = _build(listed, read)
        report = RefreshReport(
            added=sum(1 for s in listed if s.orthanc_id not in known),
            updated=sum(1 for s in listed if s.orthanc_id in known and known[s.orthanc_id] != s),
            removed=len(set(known) - {s.orthanc_id for s in listed}),
            unchanged=sum(1 for s in listed if known.get(s.orthanc_id) == s),
            problems=len(self._index.problems),
        )
        logger.info(
            "Orthanc index refreshed: %d added, %d updated, %d removed, %d problem instance(s)",
            report.added,
            report.updated,
            report.removed,
            report.problems,
        )
        return report

    def _list_stored(self) -> list[_Stored]:
        listed = self._json("/instances?expand", "the list of instances")
        try:
            return [
                _Stored(str(item["ID"]), str(item["FileUuid"]), int(item["FileSize"]))
                for item in listed
            ]
        except (TypeError, KeyError, ValueError):
            raise StoreUnavailableError(
                f"Orthanc at {self.shown} answered a malformed list of instances"
            ) from None

    def _read_record(self, orthanc_id: str) -> _Outcome:
        """Read one instance's identifiers, or the reason it cannot be indexed.

        Raises:
            StoreUnavailableError, StoreAuthError: As :meth:`_get` (the whole refresh fails).
        """
        base = f"/instances/{orthanc_id}"
        try:
            tags = self._json(f"{base}/simplified-tags", "an instance's tags")
            syntax = self._get(f"{base}/metadata/TransferSyntax", "an instance's metadata").text
        except UnknownInstanceError:  # deleted since it was listed
            return _Unusable(ProblemKind.CANNOT_OPEN, "deleted while indexing")
        except (StoreAuthError, StoreUnavailableError):
            raise
        except StoreError as exc:
            return _Unusable(ProblemKind.CANNOT_OPEN, str(exc))
        if not isinstance(tags, dict):
            return _Unusable(ProblemKind.UNREADABLE, "tags are not a JSON object")
        missing = [k for k in _REQUIRED_TAGS if not _text(tags.get(k))]
        if not syntax.strip():
            missing.append("TransferSyntaxUID")
        if missing:
            return _Unusable(ProblemKind.MISSING_UID, ", ".join(missing))
        return InstanceRecord(
            sop_instance_uid=_text(tags["SOPInstanceUID"]),
            series_instance_uid=_text(tags["SeriesInstanceUID"]),
            study_instance_uid=_text(tags["StudyInstanceUID"]),
            sop_class_uid=_text(tags["SOPClassUID"]),
            transfer_syntax_uid=syntax.strip(),
            modality=_text(tags.get("Modality")),
            instance_number=_number(tags.get("InstanceNumber")),
            has_pixel_data="PixelData" in tags,
        )

    # --- ImageStore ----------------------------------------------------------------------------

    def studies(self) -> list[str]:
        """Return the Study Instance UIDs in the index, sorted."""
        return sorted(self._index.by_study)

    def instances(
        self, study_instance_uid: str, series_instance_uid: str | None = None
    ) -> list[InstanceRecord]:
        """Return a study's (or one series') instances, by series then instance number.

        Raises:
            UnknownStudyError: If the index has no such study, or the study no such series.
        """
        found = list(self._index.by_study.get(study_instance_uid, ()))
        if series_instance_uid is not None:
            found = [r for r in found if r.series_instance_uid == series_instance_uid]
        if not found:
            what = "study" if series_instance_uid is None else "study or series"
            raise UnknownStudyError(f"no such {what} in Orthanc at {self.shown}")
        return found

    def instance(self, sop_instance_uid: str) -> InstanceRecord:
        """Return the index record of one instance.

        Raises:
            UnknownInstanceError: If the index has no such instance.
        """
        return self._entry(sop_instance_uid).record

    def _entry(self, sop_instance_uid: str) -> _Entry:
        entry = self._index.by_sop.get(sop_instance_uid)
        if entry is None:
            raise UnknownInstanceError(f"no such instance in Orthanc at {self.shown}")
        return entry

    @contextmanager
    def open(self, sop_instance_uid: str) -> Iterator[BinaryIO]:
        """Download one instance's stored DICOM file into memory, as a seekable stream.

        Raises:
            UnknownInstanceError: If the index has no such instance.
            StaleIndexError: If it is gone from the server, or its stored file was replaced or
                resized since it was indexed (call :meth:`refresh`).
            StoreUnavailableError: If the server cannot be reached or the download breaks off.
            StoreAuthError: If it refuses the credentials.
            StoreError: On another HTTP error.
        """
        stored = self._entry(sop_instance_uid).stored
        try:
            response = self._get(
                f"/instances/{stored.orthanc_id}/file", "an instance's file", stream=True
            )
        except UnknownInstanceError:
            raise StaleIndexError(
                f"an instance indexed from Orthanc at {self.shown} is gone; refresh the index"
            ) from None
        with response:
            served = _FILE_NAME.search(response.headers.get("Content-Disposition", ""))
            if served is not None and served.group(1) != stored.file_uuid:
                raise StaleIndexError(
                    f"an instance in Orthanc at {self.shown} was replaced since it was indexed; "
                    "refresh the index"
                )
            fp = self._download(response, stored.size)
        with fp:
            yield fp

    def _download(self, response: requests.Response, size: int) -> io.BytesIO:
        """Read the answer's body, at most one byte past the indexed ``size``.

        Raises:
            StaleIndexError: If the body is not ``size`` bytes.
            StoreUnavailableError: If the download breaks off.
        """
        fp = io.BytesIO()
        try:
            for chunk in response.iter_content(_CHUNK):
                fp.write(chunk)
                if fp.tell() > size:
                    break
        except requests.RequestException as exc:
            raise StoreUnavailableError(
                f"download from Orthanc at {self.shown} broke off ({type(exc).__name__})"
            ) from None
        if fp.tell() != size:
            raise StaleIndexError(
                f"an instance in Orthanc at {self.shown} changed size since it was indexed; "
                "refresh the index"
            )
        fp.seek(0)
        return fp

    # --- problems ------------------------------------------------------------------------------

    def problems(self) -> list[OrthancProblem]:
        """Return the instances that could not be indexed, with the reason, by Orthanc id."""
        return list(self._index.problems)


def _checked_url(url: str, allow_insecure_http: bool) -> str:
    """The base URL without a final slash, checked against the transport policy.

    Raises:
        StoreError: If it is not HTTP(S), has no host, or carries credentials.
        InsecureStoreEndpointError: If it is plain HTTP to a remote host, not allowed.
    """
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StoreError(f"unsupported Orthanc URL {shown}: expected http:// or https://HOST")
    if parts.username is not None or parts.password is not None:
        raise StoreError(
            f"the Orthanc URL {shown} carries credentials: give them separately (they would "
            "otherwise show in process lists and logs)"
        )
    if parts.query or parts.fragment:
        raise StoreError(f"the Orthanc URL {shown} has a query or fragment; give the base URL")
    if not allow_insecure_http and is_plain_http_to_remote(url):
        raise InsecureStoreEndpointError(
            f"refusing plain-HTTP Orthanc URL {shown}: a server that is not on this machine "
            "must be reached over https://, or the images cross the network in the clear and "
            "can be substituted; to accept it anyway, allow it explicitly "
            "(allow_insecure_http=True)"
        )
    return url.rstrip("/")


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _number(value: object) -> int | None:
    """An Instance Number as the folder index reads it: an integer, or None."""
    try:
        return int(str(value).strip()) if _text(value) else None
    except ValueError:
        return None


def _build(listed: list[_Stored], read: Mapping[str, _Outcome]) -> _Index:
    """The index of the ``listed`` instances, from what reading each gave.

    A SOP Instance UID held by more than one instance is a problem of each of them.
    """
    outcomes = {s.orthanc_id: read[s.orthanc_id] for s in listed}
    problems: list[OrthancProblem] = []
    owners: dict[str, list[_Entry]] = {}
    for stored in listed:
        got = outcomes[stored.orthanc_id]
        if isinstance(got, _Unusable):
            problems.append(OrthancProblem(stored.orthanc_id, got.kind, got.detail))
        else:
            owners.setdefault(got.sop_instance_uid, []).append(_Entry(stored, got))
    by_sop: dict[str, _Entry] = {}
    for sop_uid, same in owners.items():
        if len(same) == 1:
            by_sop[sop_uid] = same[0]
            continue
        for entry in same:
            others = ", ".join(e.stored.orthanc_id for e in same if e is not entry)
            problems.append(
                OrthancProblem(entry.stored.orthanc_id, ProblemKind.DUPLICATE, f"also in {others}")
            )
    by_study: dict[str, list[InstanceRecord]] = {}
    for entry in by_sop.values():
        by_study.setdefault(entry.record.study_instance_uid, []).append(entry.record)
    return _Index(
        stored=MappingProxyType({s.orthanc_id: s for s in listed}),
        outcomes=MappingProxyType(outcomes),
        by_sop=MappingProxyType(by_sop),
        by_study=MappingProxyType(
            {uid: tuple(sorted(records, key=_order)) for uid, records in by_study.items()}
        ),
        problems=tuple(sorted(problems, key=lambda p: p.instance)),
    )


def _order(record: InstanceRecord) -> tuple[str, bool, int, str]:
    """The folder index's order: series, numbered instances first by number, then SOP UID."""
    number = record.instance_number
    return (
        record.series_instance_uid,
        number is None,
        number if number is not None else 0,
        record.sop_instance_uid,
    )
