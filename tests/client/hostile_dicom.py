"""Hostile files for the image store: deeply nested sequences, and helpers around them."""

from __future__ import annotations

import struct
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage


def nested_sequences(
    dest: Path, depth: int = 3000, uid_root: str = "1.2.826.0.1.3680043.10.99"
) -> Path:
    """Write a Part 10 file whose last element nests ``depth`` undefined-length sequences.

    Every level is ReferencedSeriesSequence > Item > ReferencedSeriesSequence..., closed by
    ``depth`` item and sequence delimiters: about 16 bytes per level, and a reader that recurses
    per level runs out of stack.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = _SOP_CLASS
    meta.MediaStorageSOPInstanceUID = f"{uid_root}.3"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = _SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = f"{uid_root}.1"
    ds.SeriesInstanceUID = f"{uid_root}.2"
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    opening = struct.pack("<HH2sHL", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF) + struct.pack(
        "<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF
    )
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    with dest.open("ab") as out:
        out.write(opening * depth + closing * depth)
    return dest
