"""De-identification under DICOM PS3.15 Annex E: the Basic Application Confidentiality Profile.

:func:`deidentify` returns a new dataset and never changes its argument. It:

- applies the action of :mod:`imaging_consent.dicom.annex_e` (Table E.1-1, Basic Profile column) to
  every listed attribute, in the main data set and inside every sequence item;
- removes every private element (no Retain Safe Private option) and every group length;
- replaces UIDs marked U with ``2.25.<decimal of HMAC-SHA256(release_secret, uid)[:16]>``, so the
  same UID maps to the same pseudonym throughout one release (one secret), and to unrelated
  pseudonyms in another release;
- builds fresh file meta (Media Storage SOP Instance UID mapped like the SOP Instance UID, no AE
  titles or private meta), and a zero preamble;
- sets Patient Identity Removed = YES, De-identification Method, the Method Code Sequence
  (113100, DCM, "Basic Application Confidentiality Profile") and Longitudinal Temporal
  Information Modified = REMOVED;
- never touches PixelData: the very same ``bytes`` object is carried over, so the instance still
  verifies against the content root.

Where the table leaves a choice, the choice is fixed so that Type 1 and 2 attributes stay present:
Z/D, X/D and X/Z/D become D (a dummy), X/Z becomes Z (empty); a sequence under one of these
combinations is removed; X/Z/U* keeps the sequence and cleans its items (their UIDs are replaced).
C is applied as D: a dummy carries no meaning, hence nothing identifying.

It refuses (typed errors, nothing released) when it cannot be safe: BurnedInAnnotation is YES
(or, in strict mode, anything but NO), a non-empty sequence needs a dummy value (D on Content
Sequence of a structured report, for instance), or a U attribute does not hold UIDs.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
from typing import Any, Final

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from imaging_consent.dicom.annex_e import Action, basic_profile_action
from imaging_consent.errors import BurnedInAnnotationError, DeidentificationError

PIXEL_DATA_TAG: Final = 0x7FE00010
MIN_RELEASE_SECRET_BYTES: Final = 16
#: De-identification Method (0012,0063); LO, at most 64 characters.
DEIDENTIFICATION_METHOD: Final = "DICOM PS3.15 E.1 Basic Profile (imaging-consent)"
#: The code for the profile, from CID 7050 "De-identification Method".
BASIC_PROFILE_CODE: Final = ("113100", "DCM", "Basic Application Confidentiality Profile")

_TEXT_DUMMY: Final = "ANONYMOUS"
_DUMMIES: Final[dict[str, Any]] = {
    "AE": _TEXT_DUMMY,
    "AS": "000Y",
    "CS": _TEXT_DUMMY,
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "LO": _TEXT_DUMMY,
    "LT": _TEXT_DUMMY,
    "PN": _TEXT_DUMMY,
    "SH": _TEXT_DUMMY,
    "ST": _TEXT_DUMMY,
    "UC": _TEXT_DUMMY,
    "UR": _TEXT_DUMMY,
    "UT": _TEXT_DUMMY,
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
    "AT": 0,
}
_BYTES_VRS: Final = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# How each combination resolves for a plain (non-sequence) attribute.
_PLAIN: Final = {
    Action.D: Action.D,
    Action.C: Action.D,
    Action.Z: Action.Z,
    Action.Z_D: Action.D,
    Action.X_Z: Action.Z,
    Action.X_D: Action.D,
    Action.X_Z_D: Action.D,
    Action.X_Z_U: Action.Z,
}


def pseudonymous_uid(release_secret: bytes, uid: str) -> str:
    """Return the release's pseudonym for ``uid``: ``2.25.`` and a 128-bit keyed hash in decimal.

    Deterministic for one (secret, uid); unlinkable to ``uid`` without the secret. At most 44
    characters, a valid UID (PS3.5 9.1, and B.2 for the ``2.25`` root).
    """
    digest = hmac.new(release_secret, uid.encode("utf-8"), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


class _Cleaner:
    def __init__(self, release_secret: bytes) -> None:
        self._secret = release_secret

    def uid(self, value: str) -> str:
        return pseudonymous_uid(self._secret, str(value).strip(" \x00"))

    def map_uids(self, value: Any) -> Any:
        if value is None or value == "":
            return value
        if isinstance(value, (MultiValue, list, tuple)):
            return [self.uid(v) if v else v for v in value]
        return self.uid(value)

    def dataset(self, src: Dataset, where: str) -> Dataset:
        out = Dataset()
        for elem in src:
            tag = elem.tag
            if tag.is_private or tag.element == 0x0000 or tag.group == 0x0002:
                continue  # private elements, group lengths, stray file meta
            copied = self.element(elem, where)
            if copied is not None:
                out.add(copied)
        return out

    def sequence(self, elem: DataElement, where: str) -> Sequence:
        name = f"{where}{elem.keyword or elem.tag}>"
        return Sequence([self.dataset(item, name) for item in elem.value])

    def element(self, elem: DataElement, where: str) -> DataElement | None:
        tag, vr = elem.tag, elem.VR
        if tag == PIXEL_DATA_TAG:
            return _new(elem, elem.value)  # the very same bytes object
        action = basic_profile_action(int(tag))
        name = f"{where}{elem.keyword or tag}"
        if action is None or action is Action.K:
            return _new(elem, self.sequence(elem, where) if vr == "SQ" else _copy(elem.value))
        if action is Action.X:
            return None
        if action is Action.U:
            if vr == "SQ" or (vr != "UI" and not elem.is_empty):
                raise DeidentificationError(f"{name}: marked U but does not hold UIDs")
            return _new(elem, self.map_uids(elem.value))
        if vr == "SQ":
            return self._sequence_action(elem, action, where, name)
        if vr == "UI" and _PLAIN[action] is Action.D:
            return _new(elem, self.map_uids(elem.value) or self.uid(name))
        if _PLAIN[action] is Action.Z:
            return _new(elem, _empty(vr))
        return _new(elem, _dummy(vr))

    def _sequence_action(
        self, elem: DataElement, action: Action, where: str, name: str
    ) -> DataElement | None:
        if action is Action.X_Z_U:
            return _new(elem, self.sequence(elem, where))
        if action in (Action.X_Z, Action.X_D, Action.X_Z_D):
            return None
        if action is Action.Z or not elem.value:
            return _new(elem, Sequence())
        raise DeidentificationError(
            f"{name}: a non-empty sequence would need a dummy value; refusing to de-identify"
        )


def _new(elem: DataElement, value: Any) -> DataElement:
    return DataElement(
        elem.tag,
        elem.VR,
        value,
        is_undefined_length=elem.is_undefined_length,
    )


def _copy(value: Any) -> Any:
    if isinstance(value, MultiValue):
        return list(value)
    return value


def _empty(vr: str) -> Any:
    if vr in _BYTES_VRS:
        return b""
    return None if vr in _DUMMIES and not isinstance(_DUMMIES[vr], str) else ""


def _dummy(vr: str) -> Any:
    if vr in _BYTES_VRS:
        return b"\x00\x00"
    if vr not in _DUMMIES:
        raise DeidentificationError(f"no dummy value for VR {vr}")
    return _DUMMIES[vr]


def _check_burned_in(ds: Dataset, strict: bool) -> None:
    value = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if value == "YES":
        raise BurnedInAnnotationError(
            "instance declares BurnedInAnnotation YES; its pixels may identify the patient"
        )
    if strict and value != "NO":
        raise BurnedInAnnotationError(
            "instance does not declare BurnedInAnnotation NO (strict mode)"
        )


def release_secret(master: bytes | None, request_id: bytes) -> bytes:
    """The de-identification secret of one release.

    ``HMAC-SHA256(master, request_id)`` when the site keeps a master secret (so it can re-link
    a release later), otherwise 32 fresh random bytes that nobody keeps.
    """
    if master is None:
        return os.urandom(32)
    return hmac.new(master, request_id, hashlib.sha256).digest()


def deidentify(
    ds: Dataset,
    release_secret: bytes,
    *,
    require_no_burned_in_annotation: bool = False,
) -> Dataset:
    """Return a de-identified copy of ``ds`` under the Basic Profile (the input is not changed).

    Args:
        ds: A dataset read whole (with its pixels), e.g. by ``read_dicom``.
        release_secret: At least 16 random bytes, one per release; keys the UID pseudonyms.
        require_no_burned_in_annotation: Refuse unless BurnedInAnnotation is present and NO.

    Returns:
        A new dataset with fresh file meta, ready for :func:`dataset_bytes`.

    Raises:
        BurnedInAnnotationError: If the pixels may carry burned-in identifying text.
        DeidentificationError: If the profile cannot be applied safely, or the secret is short.
    """
    if not isinstance(release_secret, bytes) or len(release_secret) < MIN_RELEASE_SECRET_BYTES:
        raise DeidentificationError(
            f"release secret must be at least {MIN_RELEASE_SECRET_BYTES} bytes"
        )
    _check_burned_in(ds, require_no_burned_in_annotation)
    cleaner = _Cleaner(release_secret)
    out = cleaner.dataset(ds, "")

    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = DEIDENTIFICATION_METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
    out.DeidentificationMethodCodeSequence = Sequence([code])
    out.LongitudinalTemporalInformationModified = "REMOVED"

    src_meta = getattr(ds, "file_meta", None)
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    sop_class = ds.get("SOPClassUID")
    if not sop_class and src_meta is not None:
        sop_class = src_meta.get("MediaStorageSOPClassUID")
    if sop_class:
        meta.MediaStorageSOPClassUID = UID(str(sop_class))
    sop_instance = out.get("SOPInstanceUID")
    if not sop_instance and src_meta is not None and src_meta.get("MediaStorageSOPInstanceUID"):
        sop_instance = cleaner.uid(str(src_meta.MediaStorageSOPInstanceUID))
    if sop_instance:
        meta.MediaStorageSOPInstanceUID = UID(str(sop_instance))
    if src_meta is not None and src_meta.get("TransferSyntaxUID"):
        meta.TransferSyntaxUID = UID(str(src_meta.TransferSyntaxUID))
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out.file_meta = meta
    out.preamble = b"\x00" * 128
    return out


def dataset_bytes(ds: Dataset) -> bytes:
    """Encode ``ds`` as a DICOM Part 10 file in its file meta's transfer syntax.

    Raises:
        DeidentificationError: If the dataset cannot be encoded.
    """
    buffer = io.BytesIO()
    try:
        dcmwrite(buffer, ds, enforce_file_format=True)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise DeidentificationError(f"cannot encode dataset ({type(exc).__name__})") from exc
    return buffer.getvalue()
