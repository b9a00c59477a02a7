"""pixelHash of a DICOM file: SHA-256 of its top-level PixelData value as stored.

The definition (shared with the contracts and outside verifiers) is content protocol v2's
``pixelHash`` (:mod:`imaging_consent.dicom.walk`, docs/ARCHITECTURE.md): the value bytes exactly as
in the file (every encapsulated item with its header, up to the Sequence Delimitation Item; from
the inflated data set if deflated), or the whole file when there is no PixelData. It always equals
``hashlib.sha256(pydicom.dcmread(f).PixelData).digest()`` when PixelData is present.
"""

from __future__ import annotations

from imaging_consent.dicom.read import Source, file_buffer, open_source
from imaging_consent.dicom.walk import walk_dicom

__all__ = ["pixel_hash"]


def pixel_hash(source: Source) -> bytes:
    """Return the 32-byte pixelHash of a DICOM file (memory-mapped, never read whole).

    Raises:
        DicomReadError: If the file is not sound DICOM.
        DicomTruncatedError: If the file ends inside the pixel data.
    """
    with open_source(source) as (fp, label), file_buffer(fp) as data:
        digest = walk_dicom(data, label).digest
    assert digest is not None
    return digest.pixel_hash
