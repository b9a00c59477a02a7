"""Reading DICOM files: the one opener, its integrity checks, and the instance record.

:func:`read_dicom` is the only place that hands a file to pydicom. It turns every pydicom and I/O
error into :class:`~imaging_consent.errors.DicomReadError` naming the file, and it refuses files
that pydicom would read silently although they are damaged:

- files without the Part 10 preamble and ``DICM`` prefix (``force`` is never used);
- a top-level element whose declared length runs past the end of the file, or whose value came back
  shorter than declared (truncation: ``MR_truncated.dcm``, ``rtplan_truncated.dcm``);
- native PixelData shorter than Rows x Columns x Samples x Bits Allocated x Frames needs, or image
  attributes that cannot be read as numbers (``badVR.dcm`` has NumberOfFrames ``1A``);
- encapsulated PixelData whose items do not parse, or that has no Sequence Delimitation Item.

Messages name the file and the kind of fault but never echo element values, which may be personal
data. The original exception is chained (``__cause__``) for operators.
"""

from __future__ import annotations

import io
import mmap
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from imaging_consent.dicom.walk import walk_dicom
from imaging_consent.errors import DicomError, DicomReadError, DicomTruncatedError

#: A DICOM source: a path, or a seekable binary file object positioned anywhere.
Source: TypeAlias = "str | os.PathLike[str] | BinaryIO"

PIXEL_DATA_TAG = 0x7FE00010
# Float Pixel Data and Double Float Pixel Data: images whose pixels are not PixelData.
_OTHER_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009})
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM_TAG = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER_TAG = (0xFFFE, 0xE0DD)

#: Values longer than this are left on disk when only metadata is needed (scans, hashing).
METADATA_DEFER_SIZE = 4096

# Everything pydicom or the file system raises for a bad file. Anything else is a bug and is
# left to propagate.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    InvalidDicomError,
    OSError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    OverflowError,
    struct.error,
    zlib.error,
    RecursionError,
    MemoryError,
)
# Exceptions whose text describes file structure only, never element values.
_SAFE_MESSAGE_ERRORS: tuple[type[BaseException], ...] = (InvalidDicomError, EOFError)


def describe(source: Source) -> str:
    """Return a short label naming ``source`` in messages (its path, or ``<stream>``)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or 'I/O error'}"
    if isinstance(exc, _SAFE_MESSAGE_ERRORS):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


@contextmanager
def open_source(source: Source) -> Iterator[tuple[BinaryIO, str]]:
    """Yield a seekable binary file for ``source`` and its label, closing it if we opened it.

    Raises:
        DicomReadError: If the path cannot be opened or is not a regular file.
    """
    label = describe(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            fp = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise DicomReadError(f"{label}: cannot open ({_reason(exc)})") from exc
        with fp:
            yield fp, label
    else:
        yield source, label


@contextmanager
def file_buffer(fp: BinaryIO) -> Iterator[memoryview]:
    """Yield the whole file as a read-only buffer: memory-mapped if it is a file on disk.

    Raises:
        DicomReadError: If the file is empty.
    """
    if isinstance(fp, io.BytesIO):
        yield memoryview(fp.getvalue())  # shares the bytes a BytesIO was made from: no copy
        return
    try:
        fd = fp.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fp.seek(0)
        yield memoryview(fp.read())
        return
    if os.fstat(fd).st_size == 0:
        raise DicomReadError(f"{describe(fp)}: the file is empty")
    # Not closed explicitly: a traceback may still reference views of it. It is unmapped when
    # the last reference goes.
    yield memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_READ))


def _file_size(fp: BinaryIO) -> int:
    here = fp.tell()
    size = fp.seek(0, os.SEEK_END)
    fp.seek(here)
    return size


def read_dicom(
    source: Source,
    *,
    stop_before_pixels: bool = False,
    specific_tags: Sequence[int] | None = None,
    defer_size: int | None = None,
) -> Dataset:
    """Read a DICOM Part 10 file with pydicom, checking it is complete.

    This is the one function that opens DICOM files. Every pydicom and I/O error becomes a
    :class:`DicomReadError` that names the file.

    Args:
        source: A path, or a seekable binary file (read from its start; its position is left
            undefined afterwards).
        stop_before_pixels: Stop before the top-level PixelData (metadata only).
        specific_tags: Read only these tags (plus what pydicom always needs).
        defer_size: Leave values longer than this many bytes on disk (see pydicom's
            ``dcmread``); they are then read on access. Used for scans that must not load pixels.

    Returns:
        The dataset, with ``file_meta``.

    Raises:
        DicomReadError: If the file cannot be opened, is not DICOM Part 10, or is malformed.
        DicomTruncatedError: If the file ends before data it declares.
    """
    with open_source(source) as (fp, label):
        try:
            fp.seek(0)
            size = _file_size(fp)
            with file_buffer(fp) as data:
                walk_dicom(data, label, hashes=False)
            fp.seek(0)
            ds = pydicom.dcmread(
                fp,
                force=False,
                stop_before_pixels=stop_before_pixels,
                specific_tags=list(specific_tags) if specific_tags is not None else None,
                defer_size=defer_size,
            )
            check_complete(
                ds, fp, size, label, whole=not stop_before_pixels and specific_tags is None
            )
        except DicomError:
            raise
        except _READ_ERRORS as exc:
            raise DicomReadError(f"{label}: not readable as DICOM ({_reason(exc)})") from exc
    return ds


def transfer_syntax(ds: Dataset, label: str) -> UID:
    """Return the dataset's Transfer Syntax UID from its file meta.

    Raises:
        DicomReadError: If the file meta has no Transfer Syntax UID.
    """
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if not ts:
        raise DicomReadError(f"{label}: file meta has no Transfer Syntax UID")
    return UID(str(ts))


def check_complete(ds: Dataset, fp: BinaryIO, size: int, label: str, *, whole: bool = True) -> None:
    """Check that no top-level element of ``ds`` was cut short, and that PixelData is whole.

    Args:
        ds: A dataset just read from ``fp`` (its raw elements not yet converted).
        fp: The file it was read from, to walk encapsulated PixelData items.
        size: The file's size in bytes.
        label: Names the file in messages.
        whole: The whole data set was read (not ``stop_before_pixels`` or ``specific_tags``),
            so an empty data set, or image attributes without PixelData, mean truncation.

    Raises:
        DicomTruncatedError: If an element or the pixel data ends past the end of the file.
        DicomReadError: If the pixel data or the attributes describing it are malformed.
    """
    ts = transfer_syntax(ds, label)
    # One pass over pydicom's own element store: the raw elements as read, not converted.
    # (`ds.get_item(tag)` per tag costs as much again as the parse itself.)
    for tag, elem in ds._dict.items():
        if not isinstance(elem, RawDataElement) or elem.length in (0, _UNDEFINED_LENGTH):
            continue
        if elem.value is None:
            # Left on disk (deferred). Its place in the file is known unless the dataset is
            # deflated, in which case positions refer to the inflated stream.
            if not ts.is_deflated and elem.value_tell + elem.length > size:
                raise DicomTruncatedError(
                    f"{label}: element ({tag.group:04X},{tag.element:04X}) declares "
                    f"{elem.length} bytes but the file ends first"
                )
        elif len(elem.value) != elem.length:
            raise DicomTruncatedError(
                f"{label}: element ({tag.group:04X},{tag.element:04X}) declares {elem.length} "
                f"bytes but only {len(elem.value)} are present"
            )
    pixel = ds.get_item(PIXEL_DATA_TAG, keep_deferred=True)
    if whole and len(ds) == 0:
        # pydicom drops the whole data set when it meets the end of the file inside an
        # undefined-length value.
        raise DicomTruncatedError(f"{label}: no data set elements (file truncated or empty)")
    if pixel is None:
        if whole and _expects_pixels(ds):
            raise DicomTruncatedError(f"{label}: an image without PixelData (truncated?)")
        return
    if not isinstance(pixel, RawDataElement):  # pragma: no cover - we never convert before this
        return
    if pixel.length == _UNDEFINED_LENGTH:
        if not ts.is_encapsulated:
            raise DicomReadError(f"{label}: undefined-length PixelData in a native transfer syntax")
        if not ts.is_deflated:
            # Walk the items in the file itself: this also checks the delimiter is complete.
            fp.seek(pixel.value_tell)
            length = encapsulated_value_length(fp, pixel.is_little_endian, label)
            if pixel.value is not None and len(pixel.value) != length:
                raise DicomReadError(f"{label}: encapsulated PixelData does not parse as items")
        elif pixel.value is not None:
            _check_encapsulated_value(pixel.value, pixel.is_little_endian, label)
        return
    if ts.is_encapsulated:
        raise DicomReadError(
            f"{label}: defined-length PixelData in an encapsulated transfer syntax"
        )
    expected = expected_native_length(ds, label)
    if pixel.length < expected:
        raise DicomTruncatedError(
            f"{label}: PixelData holds {pixel.length} bytes but the image attributes need "
            f"{expected}"
        )


def _expects_pixels(ds: Dataset) -> bool:
    """Return True if ``ds`` is an image (by SOP Class or attributes) yet has no pixel data."""
    if _OTHER_PIXEL_TAGS & set(ds.keys()):
        return False
    if "Rows" in ds and "Columns" in ds:
        return True
    sop_class = ds.get("SOPClassUID")
    name = UID(str(sop_class)).name if sop_class else ""
    return "Image Storage" in name


def _int_attribute(ds: Dataset, keyword: str, label: str, default: int | None = None) -> int:
    if keyword not in ds:
        if default is None:
            raise DicomReadError(f"{label}: PixelData present but {keyword} is missing")
        return default
    value = ds[keyword].value
    try:
        number = int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise DicomReadError(f"{label}: {keyword} is not a valid number") from None
    if number is None or number < 0:
        raise DicomReadError(f"{label}: {keyword} is not a valid number")
    return number


def expected_native_length(ds: Dataset, label: str) -> int:
    """Return the bytes native PixelData needs, from the Image Pixel attributes.

    Raises:
        DicomReadError: If an attribute it needs is missing or is not a number.
    """
    rows = _int_attribute(ds, "Rows", label)
    columns = _int_attribute(ds, "Columns", label)
    samples = _int_attribute(ds, "SamplesPerPixel", label, default=1)
    bits = _int_attribute(ds, "BitsAllocated", label)
    frames = _int_attribute(ds, "NumberOfFrames", label, default=1) or 1
    bits_total = rows * columns * samples * bits * frames
    if str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
        # Native YBR_FULL_422 stores two chroma samples per two pixels (PS3.3 C.7.6.3.1.2).
        bits_total = bits_total * 2 // 3
    return (bits_total + 7) // 8


def _read_exact(fp: BinaryIO, n: int, label: str) -> bytes:
    data = fp.read(n)
    if len(data) != n:
        raise DicomTruncatedError(f"{label}: encapsulated PixelData ends before its delimiter")
    return data


def encapsulated_value_length(fp: BinaryIO, little_endian: bool, label: str) -> int:
    """Walk encapsulated PixelData items from ``fp``'s position; return the value's length.

    The value is every Item (the Basic Offset Table and the fragments, each with its 8-byte item
    header) up to, but not including, the Sequence Delimitation Item ``(FFFE,E0DD)``. On return
    ``fp`` is just after the delimiter. Fragments are skipped with seeks, never read.

    Raises:
        DicomTruncatedError: If the file ends before the delimiter.
        DicomReadError: If something other than an Item or the delimiter appears.
    """
    fmt = "<HHL" if little_endian else ">HHL"
    start = fp.tell()
    size = _file_size(fp)
    while True:
        header_at = fp.tell()
        group, element, length = struct.unpack(fmt, _read_exact(fp, 8, label))
        if (group, element) == _SEQUENCE_DELIMITER_TAG:
            return header_at - start
        if (group, element) != _ITEM_TAG or length == _UNDEFINED_LENGTH:
            raise DicomReadError(
                f"{label}: encapsulated PixelData has a malformed item at offset {header_at}"
            )
        if fp.tell() + length > size:
            raise DicomTruncatedError(f"{label}: encapsulated PixelData fragment runs past EOF")
        fp.seek(length, os.SEEK_CUR)


def _check_encapsulated_value(value: bytes, little_endian: bool, label: str) -> None:
    delimiter = struct.pack("<HHL" if little_endian else ">HHL", *_SEQUENCE_DELIMITER_TAG, 0)
    if encapsulated_value_length(io.BytesIO(value + delimiter), little_endian, label) != len(value):
        raise DicomReadError(f"{label}: encapsulated PixelData does not parse as items")


# --- the instance record ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """The identifiers that place one DICOM instance in a study (no personal attributes).

    The one instance record of the package: :func:`read_instance` returns it and every image
    store indexes it.
    """

    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    modality: str
    instance_number: int | None
    has_pixel_data: bool


def _uid(ds: Dataset, keyword: str, label: str) -> str:
    value = ds.get(keyword)
    text = str(value).strip() if value is not None else ""
    if not text:
        raise DicomReadError(f"{label}: {keyword} is missing or empty")
    return text


def instance_record(ds: Dataset, label: str) -> InstanceRecord:
    """Build the :class:`InstanceRecord` of a dataset (``label`` names it in errors).

    Raises:
        DicomReadError: If a required UID is missing.
    """
    number = ds.get("InstanceNumber")
    try:
        instance_number = int(number) if number not in (None, "") else None
    except (TypeError, ValueError):
        instance_number = None
    return InstanceRecord(
        sop_instance_uid=_uid(ds, "SOPInstanceUID", label),
        series_instance_uid=_uid(ds, "SeriesInstanceUID", label),
        study_instance_uid=_uid(ds, "StudyInstanceUID", label),
        sop_class_uid=_uid(ds, "SOPClassUID", label),
        transfer_syntax_uid=str(transfer_syntax(ds, label)),
        modality=str(ds.get("Modality") or ""),
        instance_number=instance_number,
        has_pixel_data=PIXEL_DATA_TAG in ds,
    )


def read_instance(path: str | os.PathLike[str]) -> InstanceRecord:
    """Read the identifiers of the DICOM file at ``path``, checking the whole file is sound.

    Large values (the pixels) stay on disk: they are located and checked, never loaded.

    Raises:
        DicomReadError: If the file is not sound DICOM or lacks a required UID.
    """
    ds = read_dicom(path, defer_size=METADATA_DEFER_SIZE)
    return instance_record(ds, os.fspath(path))
