"""A byte-level walk of a DICOM Part 10 file: its structure checked, its content hashed.

:func:`walk_dicom` reads the file's element headers (never its values through pydicom) and:

- refuses a data set whose tags are duplicated or out of ascending order, at any depth (a
  second PixelData after a decoy, a repeated attribute that pydicom would silently overwrite);
- refuses sequences nested deeper than :data:`MAX_SEQUENCE_DEPTH` (no ``RecursionError`` later);
- refuses an element or item that runs past the end of its file, item or sequence;
- locates the top-level PixelData, reads the SOP and Study Instance UIDs, and computes the three
  hashes of content protocol v2 (:class:`ContentDigest`): ``pixelHash``, ``viewHash`` and
  ``fileHash``. Each byte is hashed once.

The exact definitions (bytes in, hash out) are in docs/ARCHITECTURE.md, "Content protocol";
the test vectors in tests/client/test_content_protocol.py. In short:

- ``pixelHash`` is v1's: SHA-256 of the top-level PixelData value as stored (for encapsulated
  pixels every item with its header, up to the Sequence Delimitation Item); SHA-256 of the whole
  file when there is no PixelData.
- ``viewHash`` is SHA-256 of the canonical encoding of the top-level attributes in
  :data:`VIEW_TAGS` (what changes what a reader sees or measures). The encoding does not depend on
  how the file was written, so it survives de-identification: each element is
  ``u32be(tag) ‖ u32be(n) ‖ value`` with ``n`` the value's byte count; text values are split on
  ``\\``, each stripped of spaces and NULs, and rejoined; numbers are little-endian; a sequence's
  value is each item as ``u32be(n) ‖ elements``, where an item keeps every element except private
  ones, group lengths and the attributes of the Annex E table (which de-identification rewrites).
- ``fileHash`` is SHA-256 of the file with its PixelData value replaced by the 32-byte
  ``pixelHash`` (so byte-exact for the whole file, with the pixels hashed once), ``pixelHash``
  itself when there is no PixelData, and SHA-256 of the whole file for a deflated transfer syntax.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib
from dataclasses import dataclass
from typing import Final

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.uid import UID

from imaging_consent.dicom.annex_e import basic_profile_action
from imaging_consent.errors import DicomReadError, DicomTruncatedError

#: Sequences nested deeper than this are refused (real files stay well under 16).
MAX_SEQUENCE_DEPTH: Final = 32
#: A deflated data set inflating beyond this many bytes is refused (a decompression bomb).
MAX_INFLATED: Final = 1 << 30
PREAMBLE: Final = 128
PIXEL_DATA_TAG: Final = 0x7FE00010
_SOP_INSTANCE_UID: Final = 0x00080018
_STUDY_INSTANCE_UID: Final = 0x0020000D
_TRANSFER_SYNTAX_UID: Final = 0x00020010
_ITEM: Final = 0xFFFEE000
_ITEM_END: Final = 0xFFFEE00D
_SEQUENCE_END: Final = 0xFFFEE0DD
_UNDEFINED: Final = 0xFFFFFFFF
_LONG_VRS: Final = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_TEXT_VRS: Final = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI"}
    | {"UR", "UT"}
)
# Bytes per number, for the VRs whose value is little-endian on the canonical side.
_WORD: Final = {
    "US": 2, "SS": 2, "OW": 2, "AT": 2, "UL": 4, "SL": 4, "FL": 4, "OF": 4, "OL": 4,
    "FD": 8, "SV": 8, "UV": 8, "OD": 8, "OV": 8,
}  # fmt: skip

#: The attributes a viewer uses to show or measure the pixels, keyed by ``viewHash``. Grouped by
#: module: Image Pixel, multi-frame and cine timing, Image Plane and projection calibration,
#: ultrasound regions, Modality LUT, VOI LUT, Presentation LUT, laterality and orientation,
#: image type and compression, the annotation flags, and the multi-frame functional groups.
VIEW_KEYWORDS: Final = (
    "SOPClassUID", "ImageType", "Modality", "Laterality", "PatientOrientation", "ImageLaterality",
    "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod",
    "BurnedInAnnotation", "RecognizableVisualFeatures", "PresentationLUTShape",
    "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
    "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration", "PixelAspectRatio",
    "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue",
    "PixelPaddingRangeLimit", "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor", "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData", "SegmentedBluePaletteColorLookupTableData",
    "ICCProfile", "ColorSpace", "NumberOfFrames", "FrameIncrementPointer", "StereoPairsPresent",
    "FrameTime", "FrameTimeVector", "StartTrim", "StopTrim", "RecommendedDisplayFrameRate",
    "CineRate", "FrameDelay", "ActualFrameDuration", "PreferredPlaybackSequencing",
    "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "SliceThickness",
    "SpacingBetweenSlices", "SliceLocation", "ImagerPixelSpacing", "NominalScannedPixelSpacing",
    "PixelSpacingCalibrationType", "EstimatedRadiographicMagnificationFactor",
    "SequenceOfUltrasoundRegions", "RescaleIntercept", "RescaleSlope", "RescaleType",
    "ModalityLUTSequence", "WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence",
    "PresentationLUTSequence", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
)  # fmt: skip
VIEW_TAGS: Final = frozenset(int(tag_for_keyword(k) or 0) for k in VIEW_KEYWORDS)


@dataclass(frozen=True, slots=True)
class ContentDigest:
    """The three hashes of one instance under content protocol v2 (see the module doc)."""

    pixel_hash: bytes
    view_hash: bytes
    file_hash: bytes


@dataclass(frozen=True, slots=True)
class Walk:
    """What :func:`walk_dicom` found in one file.

    Attributes:
        transfer_syntax: The Transfer Syntax UID of the data set.
        pixel_offset: Where the top-level PixelData value starts (in the inflated data set
            for a deflated transfer syntax), or None if there is none.
        pixel_length: Its length in bytes (for encapsulated pixels, up to the delimiter).
        sop_instance_uid: The top-level SOP Instance UID ("" if absent).
        study_instance_uid: The top-level Study Instance UID ("" if absent).
        digest: The content protocol v2 hashes (None if not asked for).
    """

    transfer_syntax: UID
    pixel_offset: int | None
    pixel_length: int
    sop_instance_uid: str
    study_instance_uid: str
    digest: ContentDigest | None


_VRS: Final = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN "
    b"UR US UT UV".split()
)
_SPECIAL_TOP: Final = frozenset({PIXEL_DATA_TAG, _SOP_INSTANCE_UID, _STUDY_INSTANCE_UID})
_EXPLICIT = {True: struct.Struct("<HH2sH"), False: struct.Struct(">HH2sH")}
_IMPLICIT = {True: struct.Struct("<HHL"), False: struct.Struct(">HHL")}
_U32 = {True: struct.Struct("<L"), False: struct.Struct(">L")}


class _Walker:
    """One pass over one data set buffer, in one transfer syntax's encoding."""

    def __init__(self, data: memoryview, label: str, little: bool, implicit: bool) -> None:
        self.data = data
        self.label = label
        self.little = little
        self.implicit = implicit
        self._explicit = _EXPLICIT[little].unpack_from
        self._implicit = _IMPLICIT[little].unpack_from
        self._u32 = _U32[little].unpack_from
        self.pixel: tuple[int, int] | None = None
        self.uids: dict[int, str] = {}

    def _tag(self, pos: int, end: int) -> int:
        """The tag at ``pos`` of an item or delimiter header (always 8 bytes)."""
        if pos + 8 > end:
            raise DicomTruncatedError(f"{self.label}: an element header runs past its end")
        group, element, _ = self._implicit(self.data, pos)
        return int(group) << 16 | int(element)

    def _length(self, pos: int) -> int:
        return int(self._u32(self.data, pos + 4)[0])

    def _header(self, pos: int, end: int) -> tuple[int, bytes, int, int]:
        """Return (tag, VR, value length, value offset) of the element at ``pos``."""
        if pos + 8 > end:
            raise DicomTruncatedError(f"{self.label}: an element header runs past its end")
        if self.implicit:
            group, element, length = self._implicit(self.data, pos)
            tag = group << 16 | element
            return tag, _dictionary_vr(tag), length, pos + 8
        group, element, vr, length = self._explicit(self.data, pos)
        tag = group << 16 | element
        if vr in _LONG_VRS:
            if pos + 12 > end:
                raise DicomTruncatedError(f"{self.label}: an element header runs past its end")
            return tag, vr, self._u32(self.data, pos + 8)[0], pos + 12
        if vr not in _VRS:
            if group == 0xFFFE:
                return tag, b"", self._length(pos), pos + 8
            raise DicomReadError(f"{self.label}: element {_name(tag)} has no valid VR")
        return tag, vr, length, pos + 8

    def dataset(
        self, pos: int, end: int, depth: int, *, top: bool, item_end: bool, want: bool
    ) -> tuple[int, bytes]:
        """Walk a data set (the top level or one item) from ``pos``.

        Returns where it ends and the canonical encoding of the elements that count: at the
        top level those in :data:`VIEW_TAGS`; in an item (when ``want``) every kept element.
        ``end`` bounds it; with ``item_end`` it ends at an Item Delimitation Item.
        """
        previous = -1
        encoded: list[bytes] = []
        data, explicit, header = self.data, self._explicit, self._header
        while pos < end:
            if self.implicit or pos + 12 > end:
                tag, vr, length, at = header(pos, end)
            else:  # inlined _header, the hot path: explicit VR, short or long length
                group, element, vr, length = explicit(data, pos)
                tag = group << 16 | element
                at = pos + 8
                if vr in _LONG_VRS:
                    length, at = self._u32(data, at)[0], pos + 12
                elif vr not in _VRS:
                    tag, vr, length, at = header(pos, end)
            if tag >> 16 == 0xFFFE:
                if tag == _ITEM_END and item_end:
                    return pos + 8, b"".join(encoded)
                raise DicomReadError(f"{self.label}: unexpected delimiter {_name(tag)}")
            if tag <= previous:
                kind = "duplicated" if tag == previous else "out of order"
                raise DicomReadError(
                    f"{self.label}: tag {_name(tag)} is {kind} in its data set (readers would "
                    "disagree on its value)"
                )
            previous = tag
            counts = tag in VIEW_TAGS if top else want and _kept_in_item(tag)
            if (
                not counts
                and length != _UNDEFINED
                and vr != b"SQ"
                and not (top and tag in _SPECIAL_TOP)
            ):
                pos = at + length  # the common case: a value nobody needs, skipped
                if pos > end:
                    raise DicomTruncatedError(
                        f"{self.label}: element {_name(tag)} declares {length} bytes but its "
                        "file or item ends first"
                    )
                continue
            pos, value = self._element(tag, vr, length, at, end, depth, top=top, want=counts)
            if counts:
                encoded.append(struct.pack(">LL", tag, len(value)) + value)
        if item_end:
            raise DicomTruncatedError(f"{self.label}: an item ends before its delimiter")
        return pos, b"".join(encoded)

    def _element(
        self,
        tag: int,
        vr: bytes,
        length: int,
        at: int,
        end: int,
        depth: int,
        *,
        top: bool,
        want: bool,
    ) -> tuple[int, bytes]:
        """Walk one element's value; return where it ends and its canonical value if ``want``."""
        pixels = top and tag == PIXEL_DATA_TAG
        if length == _UNDEFINED:
            if pixels or vr in (b"OB", b"OW"):
                after = self._fragments(at, end)
                if pixels:
                    self.pixel = (at, after - 8 - at)
                return after, bytes(self.data[at : after - 8]) if want else b""
            if vr == b"UN" and not self.implicit:
                # PS3.5 6.2.2: an undefined-length UN is a sequence in Implicit VR Little Endian.
                inner = _Walker(self.data, self.label, True, True)
                return inner.sequence(at, end, depth + 1, defined=False, want=want)
            return self.sequence(at, end, depth + 1, defined=False, want=want)
        if at + length > end:
            raise DicomTruncatedError(
                f"{self.label}: element {_name(tag)} declares {length} bytes but its file or "
                "item ends first"
            )
        after = at + length
        if vr == b"SQ":
            return after, self.sequence(at, after, depth + 1, defined=True, want=want)[1]
        if pixels:
            self.pixel = (at, length)
        elif top and tag in (_SOP_INSTANCE_UID, _STUDY_INSTANCE_UID):
            self.uids[tag] = bytes(self.data[at:after]).decode("ascii", "replace").strip(" \x00")
        return after, self.canonical(tag, vr, at, length) if want else b""

    def _fragments(self, pos: int, end: int) -> int:
        """Skip encapsulated items up to and past the Sequence Delimitation Item."""
        while True:
            tag = self._tag(pos, end)
            length = self._length(pos)
            if tag == _SEQUENCE_END:
                return pos + 8
            if tag != _ITEM or length == _UNDEFINED:
                raise DicomReadError(f"{self.label}: encapsulated data has a malformed item")
            pos += 8 + length
            if pos > end:
                raise DicomTruncatedError(f"{self.label}: an encapsulated fragment runs past EOF")

    def sequence(
        self, pos: int, end: int, depth: int, *, defined: bool, want: bool
    ) -> tuple[int, bytes]:
        """Walk a sequence's items; return where it ends and its canonical value if ``want``."""
        if depth > MAX_SEQUENCE_DEPTH:
            raise DicomReadError(
                f"{self.label}: sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels"
            )
        items: list[bytes] = []
        while pos < end:
            tag = self._tag(pos, end)
            length = self._length(pos)
            pos += 8
            if tag == _SEQUENCE_END and not defined:
                return pos, b"".join(items)
            if tag != _ITEM:
                raise DicomReadError(f"{self.label}: a sequence holds something other than items")
            if length == _UNDEFINED:
                pos, body = self.dataset(pos, end, depth, top=False, item_end=True, want=want)
            else:
                if pos + length > end:
                    raise DicomTruncatedError(f"{self.label}: an item runs past its sequence")
                _, body = self.dataset(
                    pos, pos + length, depth, top=False, item_end=False, want=want
                )
                pos += length
            if want:
                items.append(struct.pack(">L", len(body)) + body)
        if not defined:
            raise DicomTruncatedError(f"{self.label}: a sequence ends before its delimiter")
        return pos, b"".join(items)

    def canonical(self, tag: int, vr: bytes, at: int, length: int) -> bytes:
        """The canonical bytes of one non-sequence value (see the module doc)."""
        raw = bytes(self.data[at : at + length])
        kind = _value_vr(tag, vr)
        if kind in _TEXT_VRS:
            return b"\\".join(part.strip(b" \x00") for part in raw.split(b"\\"))
        word = _WORD.get(kind)
        if word is None or self.little:
            return raw
        usable = len(raw) - len(raw) % word
        swapped = b"".join(raw[i : i + word][::-1] for i in range(0, usable, word))
        return swapped + raw[usable:]


def _name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@functools.lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> bytes:
    """The data dictionary's VR of ``tag`` (``UN`` if unknown; ambiguous ones as ``US or SS``)."""
    try:
        return str(dictionary_VR(tag)).encode()
    except KeyError:
        return b"UN"


def _value_vr(tag: int, vr: bytes) -> str:
    """The VR that decides a value's canonical form: the dictionary's if it is unambiguous."""
    known = _dictionary_vr(tag)
    if known != b"UN" and b" " not in known:
        return known.decode()
    return vr.decode() if b" " not in vr else "OB"


@functools.lru_cache(maxsize=4096)
def _kept_in_item(tag: int) -> bool:
    if tag >> 16 & 1 or tag & 0xFFFF == 0:  # private, or a group length
        return False
    return basic_profile_action(tag) is None


_META_START: Final = PREAMBLE + 4


def _meta(data: memoryview, label: str) -> tuple[int, UID]:
    """Walk the File Meta Information; return where the data set starts and its syntax."""
    if len(data) < _META_START + 8 or bytes(data[PREAMBLE:_META_START]) != b"DICM":
        raise DicomReadError(f"{label}: not a DICOM Part 10 file (no 'DICM' after the preamble)")
    walker = _Walker(data, label, True, False)
    pos, previous, syntax = _META_START, -1, ""
    while pos + 8 <= len(data):
        tag = walker._tag(pos, len(data))
        if tag >> 16 != 0x0002:
            break
        if tag <= previous:
            raise DicomReadError(
                f"{label}: file meta tag {_name(tag)} is duplicated or out of order"
            )
        previous = tag
        _, _, length, at = walker._header(pos, len(data))
        if length == _UNDEFINED or at + length > len(data):
            raise DicomTruncatedError(f"{label}: the file meta information is cut short")
        if tag == _TRANSFER_SYNTAX_UID:
            syntax = bytes(data[at : at + length]).decode("ascii", "replace").strip(" \x00")
        pos = at + length
    if not syntax:
        raise DicomReadError(f"{label}: file meta has no Transfer Syntax UID")
    return pos, UID(syntax)


def _encoding(syntax: UID) -> tuple[bool, bool, bool]:
    """(little endian, implicit VR, deflated) of a transfer syntax; unknown ones as pydicom."""
    if not syntax.is_transfer_syntax:
        return True, False, False
    return syntax.is_little_endian, syntax.is_implicit_VR, syntax.is_deflated


def walk_dicom(data: bytes | memoryview, label: str = "<stream>", *, hashes: bool = True) -> Walk:
    """Walk a whole DICOM Part 10 file held in memory (or memory-mapped).

    Args:
        data: The file's bytes.
        label: Names the file in messages (never an element value).
        hashes: Compute the hashes; without, only the structure is checked (``digest`` is None).

    Returns:
        Where its PixelData is, its UIDs and its content protocol v2 hashes.

    Raises:
        DicomReadError: If it is not Part 10, a tag is duplicated or out of order at any depth,
            sequences nest deeper than :data:`MAX_SEQUENCE_DEPTH`, or an element is malformed.
        DicomTruncatedError: If an element, item or sequence runs past its end.
    """
    whole = memoryview(data).cast("B")
    start, syntax = _meta(whole, label)
    little, implicit, deflated = _encoding(syntax)
    body = whole
    if deflated:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            inflated = inflater.decompress(whole[start:], MAX_INFLATED)
        except zlib.error as exc:
            raise DicomReadError(f"{label}: the deflated data set does not inflate") from exc
        if inflater.unconsumed_tail:
            raise DicomReadError(
                f"{label}: the deflated data set inflates beyond {MAX_INFLATED} bytes"
            )
        body = memoryview(inflated)
        start = 0
    if start + 6 <= len(body) and not implicit and little:
        # pydicom reads a data set whose first element has no VR as implicit, whatever the
        # file meta says (SC_rgb_jpeg.dcm); the walk follows it so both see the same elements.
        implicit = not (bytes(body[start + 4 : start + 6]).isalpha())
    walker = _Walker(body, label, little, implicit)
    _, view = walker.dataset(start, len(body), 0, top=True, item_end=False, want=hashes)
    offset, length = walker.pixel if walker.pixel is not None else (None, 0)
    return Walk(
        transfer_syntax=syntax,
        pixel_offset=offset,
        pixel_length=length,
        sop_instance_uid=walker.uids.get(_SOP_INSTANCE_UID, ""),
        study_instance_uid=walker.uids.get(_STUDY_INSTANCE_UID, ""),
        digest=_digest(whole, body, walker.pixel, view, deflated) if hashes else None,
    )


def _digest(
    whole: memoryview, body: memoryview, pixel: tuple[int, int] | None, view: bytes, deflated: bool
) -> ContentDigest:
    if pixel is None:
        pixel_hash = hashlib.sha256(whole).digest()
        file_hash = pixel_hash
    else:
        offset, length = pixel
        pixel_hash = hashlib.sha256(body[offset : offset + length]).digest()
        if deflated:
            file_hash = hashlib.sha256(whole).digest()
        else:
            outside = hashlib.sha256(whole[:offset])
            outside.update(pixel_hash)
            outside.update(whole[offset + length :])
            file_hash = outside.digest()
    return ContentDigest(pixel_hash, hashlib.sha256(view).digest(), file_hash)
