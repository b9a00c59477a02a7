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

It refuses (typed errors, nothing released) when it cannot be safe. Header rules cannot clean
pixels, so it fails closed on what the pixels may show (the instance's own declaration decides;
``NO``, ``YES`` and anything else are compared after trimming, case-insensitively):

- :class:`BurnedInAnnotationError`: Burned In Annotation (0028,0301) is YES or not a valid YES/NO,
  for every class; and, for the classes below that commonly carry text burned into the pixels (or
  the document), anything but an explicit NO, absent and empty included. With
  ``require_no_burned_in_annotation`` every class needs the explicit NO.
- :class:`RecognizableVisualFeaturesError`: Recognizable Visual Features (0028,0302) is YES or not
  a valid YES/NO, for every class (a face in a photograph, a 3D surface rendering); and, for
  photographs, photographic video and 3D surface models, anything but an explicit NO, absent and
  empty included (external photographs show faces, and a surface mesh of a head is a face).
- :class:`DeidentificationError`: a non-empty sequence needs a dummy value (D on Content Sequence
  of a structured report, for instance), a U attribute does not hold UIDs, or the secret is short.

An instance is in a listed group when its SOP Class UID (in the data set or in the file meta) is in
the group's frozen set of UIDs, or its Modality is in the group's frozen set of modalities; an
instance that names no SOP Class UID at all is in every group, since nothing can be ruled out.
The sets are written out below, selected by the names in pydicom's UID registry (a test checks
them against the registry):

- :data:`BURNED_IN_TEXT_SOP_CLASSES`: Ultrasound (single and multi-frame, both retired ones,
  Enhanced US Volume, Photoacoustic), every Secondary Capture class (screenshots, scanned paper,
  film digitizers: the text is the content), X-Ray Angiographic (incl. Enhanced, Bi-Plane
  (retired) and 3D), X-Ray Radiofluoroscopic (incl. Enhanced: the same acquisition systems),
  Intravascular OCT, every VL class (Endoscopic, Microscopic, Slide-Coordinates, Whole Slide
  (its label image is the slide's label), Photographic, Dermoscopic, Confocal, Ophthalmic and
  Wide Field Ophthalmic Photography, both retired trial classes), the Video Endoscopic,
  Microscopic and Photographic classes (storage and real-time), and the encapsulated documents
  PDF, CDA, STL, OBJ and MTL (a document's text is not pixels the header profile can clean).
- :data:`BURNED_IN_TEXT_MODALITIES`: US, IVUS, XA, RF, ES, XC, GM, SM, OP, DMS, IVOCT, DOC, SC, OT
  (the same equipment and captures, whatever class they are stored under).
- :data:`RECOGNIZABLE_FEATURES_SOP_CLASSES`: VL Photographic, Video Photographic (storage and
  real-time) and the surface models Encapsulated STL and OBJ;
  :data:`RECOGNIZABLE_FEATURES_MODALITIES`: XC (external-camera photography). Endoscopic,
  microscopic, ophthalmic and dermoscopic images are not in this group: they rarely show a face,
  so only a declared YES (or an invalid value) refuses them.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
from dataclasses import dataclass
from typing import Any, Final

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from imaging_consent.dicom.annex_e import Action, basic_profile_action
from imaging_consent.errors import (
    BurnedInAnnotationError,
    DeidentificationError,
    RecognizableVisualFeaturesError,
)

PIXEL_DATA_TAG: Final = 0x7FE00010
MIN_RELEASE_SECRET_BYTES: Final = 16
#: De-identification Method (0012,0063); LO, at most 64 characters.
DEIDENTIFICATION_METHOD: Final = "DICOM PS3.15 E.1 Basic Profile (imaging-consent)"
#: The code for the profile, from CID 7050 "De-identification Method".
BASIC_PROFILE_CODE: Final = ("113100", "DCM", "Basic Application Confidentiality Profile")

#: SOP classes whose pixels or documents commonly carry identifying text: Burned In Annotation
#: must be present and NO. Selected by name from pydicom's UID registry (see the module docstring).
BURNED_IN_TEXT_SOP_CLASSES: Final = frozenset(
    {
        # Ultrasound: the scanner writes the patient's name, id and date into the image.
        "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (Retired)
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
        "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (Retired)
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume Storage
        "1.2.840.10008.5.1.4.1.1.6.3",  # Photoacoustic Image Storage
        # Secondary Capture: screenshots, scanned paper and digitized film.
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture Image Storage
        # X-ray angiography and fluoroscopy: acquisition consoles annotate the frames.
        "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image Storage
        "1.2.840.10008.5.1.4.1.1.12.1.1",  # Enhanced XA Image Storage
        "1.2.840.10008.5.1.4.1.1.12.3",  # X-Ray Angiographic Bi-Plane Image Storage (Retired)
        "1.2.840.10008.5.1.4.1.1.13.1.1",  # X-Ray 3D Angiographic Image Storage
        "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.12.2.1",  # Enhanced XRF Image Storage
        # Intravascular OCT: catheter lab consoles, like intravascular ultrasound.
        "1.2.840.10008.5.1.4.1.1.14.1",  # Intravascular OCT Image Storage - For Presentation
        "1.2.840.10008.5.1.4.1.1.14.2",  # Intravascular OCT Image Storage - For Processing
        # Visible light: cameras, endoscopes and microscopes overlay text; slide labels.
        "1.2.840.10008.5.1.4.1.1.77.1",  # VL Image Storage - Trial (Retired)
        "1.2.840.10008.5.1.4.1.1.77.2",  # VL Multi-frame Image Storage - Trial (Retired)
        "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL Endoscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.2",  # VL Microscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.3",  # VL Slide-Coordinates Microscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # Ophthalmic Photography 8 Bit Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.5.2",  # Ophthalmic Photography 16 Bit Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.5.5",  # Wide Field Ophthalmic Photography Stereographic...
        "1.2.840.10008.5.1.4.1.1.77.1.5.6",  # Wide Field Ophthalmic Photography 3D Coordinates...
        "1.2.840.10008.5.1.4.1.1.77.1.6",  # VL Whole Slide Microscopy Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.7",  # Dermoscopic Photography Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.8",  # Confocal Microscopy Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.9",  # Confocal Microscopy Tiled Pyramidal Image Storage
        # Video.
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image Storage
        "1.2.840.10008.10.1",  # Video Endoscopic Image Real-Time Communication
        "1.2.840.10008.10.2",  # Video Photographic Image Real-Time Communication
        # Encapsulated documents: their text is not pixels the header profile cleans.
        "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF Storage
        "1.2.840.10008.5.1.4.1.1.104.2",  # Encapsulated CDA Storage
        "1.2.840.10008.5.1.4.1.1.104.3",  # Encapsulated STL Storage
        "1.2.840.10008.5.1.4.1.1.104.4",  # Encapsulated OBJ Storage
        "1.2.840.10008.5.1.4.1.1.104.5",  # Encapsulated MTL Storage
    }
)
#: Modalities (0008,0060) of the same equipment and captures, whatever class stores them.
BURNED_IN_TEXT_MODALITIES: Final = frozenset(
    {"US", "IVUS", "XA", "RF", "ES", "XC", "GM", "SM", "OP", "DMS", "IVOCT", "DOC", "SC", "OT"}
)
#: SOP classes that commonly show a face: Recognizable Visual Features must be present and NO.
RECOGNIZABLE_FEATURES_SOP_CLASSES: Final = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image Storage
        "1.2.840.10008.10.2",  # Video Photographic Image Real-Time Communication
        "1.2.840.10008.5.1.4.1.1.104.3",  # Encapsulated STL Storage (a surface model)
        "1.2.840.10008.5.1.4.1.1.104.4",  # Encapsulated OBJ Storage (a surface model)
    }
)
#: External-camera photography.
RECOGNIZABLE_FEATURES_MODALITIES: Final = frozenset({"XC"})

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


@dataclass(frozen=True)
class _Kind:
    """What an instance says it is: its SOP Class UIDs (data set and file meta) and Modality."""

    sop_classes: frozenset[str]
    modalities: frozenset[str]

    @classmethod
    def of(cls, ds: Dataset) -> _Kind:
        meta = getattr(ds, "file_meta", None)
        media = meta.get("MediaStorageSOPClassUID") if meta is not None else None
        classes = _values(ds.get("SOPClassUID")) | _values(media)
        return cls(classes, frozenset(m.upper() for m in _values(ds.get("Modality"))))

    def among(self, sop_classes: frozenset[str], modalities: frozenset[str]) -> bool:
        """Whether the instance is in a group (always, when it names no SOP class)."""
        return (
            not self.sop_classes
            or not self.sop_classes.isdisjoint(sop_classes)
            or not self.modalities.isdisjoint(modalities)
        )

    def __str__(self) -> str:
        if not self.sop_classes:
            return "an instance without SOP Class UID"
        names = ", ".join(sorted(_class_name(uid) for uid in self.sop_classes))
        # Only listed modalities are named: a listed term is never free text.
        shown = sorted(
            self.modalities & (BURNED_IN_TEXT_MODALITIES | RECOGNIZABLE_FEATURES_MODALITIES)
        )
        return f"{names}, Modality {'/'.join(shown)}" if shown else names


def _values(value: Any) -> frozenset[str]:
    """The non-empty, trimmed strings of a single or multiple value."""
    items = value if isinstance(value, (MultiValue, list, tuple)) else [value]
    return frozenset(str(v or "").strip(" \x00") for v in items) - {""}


def _class_name(uid: str) -> str:
    known = UID(uid)
    if known.name == uid:
        return "an unregistered SOP class"
    return f"{known.name} (Retired)" if known.is_retired else known.name


def _declared(ds: Dataset, keyword: str) -> str:
    """``YES``, ``NO``, ``absent``, ``empty`` or ``not YES or NO`` (no free text echoed)."""
    if keyword not in ds:
        return "absent"
    value = ds[keyword].value
    text = "" if value is None else str(value).strip(" \x00").upper()
    if not text:
        return "empty"
    return text if text in ("YES", "NO") else "not YES or NO"


def _require_no(
    ds: Dataset,
    keyword: str,
    error: type[DeidentificationError],
    kind: _Kind,
    must_say_no: str | None,
    hazard: str,
) -> None:
    """Refuse unless ``keyword`` is NO (or absent/empty, when ``must_say_no`` gives no reason)."""
    state = _declared(ds, keyword)
    if state == "NO":
        return
    if state in ("absent", "empty"):
        if must_say_no is None:
            return
        raise error(f"{keyword} is {state} for {kind}, which must declare NO: {must_say_no}")
    raise error(f"{keyword} is {state} for {kind}: {hazard}; refusing to de-identify")


def _check_pixels(ds: Dataset, strict: bool) -> None:
    kind = _Kind.of(ds)
    text_reason = None
    if kind.among(BURNED_IN_TEXT_SOP_CLASSES, BURNED_IN_TEXT_MODALITIES):
        text_reason = "it commonly carries burned-in text"
    elif strict:
        text_reason = "strict mode"
    _require_no(
        ds,
        "BurnedInAnnotation",
        BurnedInAnnotationError,
        kind,
        text_reason,
        "burned-in text may identify the patient",
    )
    _require_no(
        ds,
        "RecognizableVisualFeatures",
        RecognizableVisualFeaturesError,
        kind,
        "it commonly shows a face"
        if kind.among(RECOGNIZABLE_FEATURES_SOP_CLASSES, RECOGNIZABLE_FEATURES_MODALITIES)
        else None,
        "a face or other recognizable feature may identify the patient",
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
        require_no_burned_in_annotation: Refuse unless BurnedInAnnotation is present and NO,
            for every class (the listed classes and modalities always need it).

    Returns:
        A new dataset with fresh file meta, ready for :func:`dataset_bytes`.

    Raises:
        BurnedInAnnotationError: If the pixels may carry burned-in identifying text: the
            instance declares it, or it is of a listed class or modality and does not declare NO.
        RecognizableVisualFeaturesError: If the pixels may show a face or another recognizable
            feature: the instance declares it, or it is a photograph or surface model and does
            not declare NO.
        DeidentificationError: If the profile cannot be applied safely, or the secret is short.
    """
    if not isinstance(release_secret, bytes) or len(release_secret) < MIN_RELEASE_SECRET_BYTES:
        raise DeidentificationError(
            f"release secret must be at least {MIN_RELEASE_SECRET_BYTES} bytes"
        )
    _check_pixels(ds, require_no_burned_in_annotation)
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
