"""pixelHash: SHA-256 of the PixelData value as stored, computed by streaming from the file.

Definition (shared with the contracts and outside verifiers; see docs/ARCHITECTURE.md):

- Native (uncompressed) PixelData, defined length ``L``: the ``L`` value bytes that follow the
  element header, exactly as in the file (so big-endian files hash their big-endian bytes, and any
  trailing padding byte or excess padding is included).
- Encapsulated (compressed) PixelData, undefined length: the bytes from just after the element
  header up to, **not including**, the Sequence Delimitation Item ``(FFFE,E0DD)`` and its
  zero length. That is every Item with its 8-byte header: the Basic Offset Table item, then each
  fragment item. This equals the ``bytes`` pydicom returns as ``ds.PixelData``.
- Deflated transfer syntax: the same value bytes, taken from the inflated data set.
- No top-level PixelData ``(7FE0,0010)``: SHA-256 of the whole file. (Float and Double Float
  Pixel Data are not PixelData, so such instances fall under this case.)

In every case ``pixel_hash(path) == hashlib.sha256(ds.PixelData).digest()`` for the dataset
pydicom reads from the same file, when PixelData is present; :func:`dataset_pixel_hash` computes
the hash that way from an in-memory dataset and must always agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from imaging_consent.dicom.read import (
    METADATA_DEFER_SIZE,
    PIXEL_DATA_TAG,
    Source,
    encapsulated_value_length,
    open_source,
    read_dicom,
    transfer_syntax,
)
from imaging_consent.errors import DicomReadError, DicomTruncatedError

#: Bytes read and hashed at a time.
CHUNK_SIZE = 1 << 20
_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class PixelDataLocation:
    """Where the PixelData value lies in a file.

    ``offset`` and ``length`` are byte positions in the file, except for a deflated transfer
    syntax (``deflated``), where they refer to the inflated data set.
    """

    offset: int
    length: int
    encapsulated: bool
    deflated: bool


def locate_pixel_data(source: Source) -> PixelDataLocation | None:
    """Return where the top-level PixelData value is, or None if the file has none.

    Reads the file's metadata with large values left on disk, so the pixels are never loaded.

    Raises:
        DicomReadError: If the file is not sound DICOM.
        DicomTruncatedError: If the pixel data is cut short.
    """
    with open_source(source) as (fp, label):
        ds = read_dicom(fp, defer_size=METADATA_DEFER_SIZE)
        return _location(ds, fp, label)


def _location(ds: Dataset, fp: BinaryIO, label: str) -> PixelDataLocation | None:
    raw = ds.get_item(PIXEL_DATA_TAG, keep_deferred=True)
    if raw is None:
        return None
    if not isinstance(raw, RawDataElement):  # pragma: no cover - freshly read, never converted
        raise DicomReadError(f"{label}: PixelData was converted before it could be located")
    ts = transfer_syntax(ds, label)
    if raw.length != _UNDEFINED_LENGTH:
        return PixelDataLocation(raw.value_tell, raw.length, False, ts.is_deflated)
    if raw.value is not None:
        length = len(raw.value)
    else:
        fp.seek(raw.value_tell)
        length = encapsulated_value_length(fp, raw.is_little_endian, label)
    return PixelDataLocation(raw.value_tell, length, True, ts.is_deflated)


def pixel_hash(source: Source, *, chunk_size: int = CHUNK_SIZE) -> bytes:
    """Return the 32-byte pixelHash of a DICOM file, streaming the value from disk.

    Memory use is bounded by ``chunk_size`` plus the metadata, whatever the size of the pixels,
    except for deflated files, whose pixel value is inflated into memory once.

    Args:
        source: A path or a seekable binary file.
        chunk_size: Bytes hashed per read.

    Raises:
        DicomReadError: If the file is not sound DICOM.
        DicomTruncatedError: If the file ends inside the pixel data.
    """
    with open_source(source) as (fp, label):
        ds = read_dicom(fp, defer_size=METADATA_DEFER_SIZE)
        location = _location(ds, fp, label)
        digest = hashlib.sha256()
        if location is None:
            fp.seek(0)
            _hash_stream(fp, digest.update, None, chunk_size, label)
        elif location.deflated:
            full = read_dicom(fp)
            digest.update(full.PixelData)
        else:
            fp.seek(location.offset)
            _hash_stream(fp, digest.update, location.length, chunk_size, label)
        return digest.digest()


def _hash_stream(
    stream: BinaryIO,
    update: Callable[[bytes], None],
    length: int | None,
    chunk_size: int,
    label: str,
) -> None:
    remaining = length
    while remaining is None or remaining > 0:
        want = chunk_size if remaining is None else min(chunk_size, remaining)
        try:
            chunk = stream.read(want)
        except OSError as exc:
            raise DicomReadError(f"{label}: read failed ({exc.strerror})") from exc
        if not chunk:
            if remaining is None:
                return
            raise DicomTruncatedError(f"{label}: file ends inside PixelData")
        update(chunk)
        if remaining is not None:
            remaining -= len(chunk)


def dataset_pixel_hash(ds: Dataset) -> bytes | None:
    """Return sha256 of an in-memory dataset's PixelData value, or None if it has none.

    For a dataset read whole from a file, this equals :func:`pixel_hash` of that file (the
    no-PixelData case needs the file bytes, hence None). The release gate can hash exactly the
    dataset it is about to release this way.
    """
    if "PixelData" not in ds:
        return None
    value = ds.PixelData
    if not isinstance(value, bytes):
        raise DicomReadError("PixelData value is not bytes")
    return hashlib.sha256(value).digest()
