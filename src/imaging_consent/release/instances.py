"""Reading a study's instances from a store: pixel hashes, and datasets for release.

Each instance is opened once. The bytes that are hashed are the bytes that are parsed (and,
for a release, the bytes that leave the gateway), so a file swapped on disk between hashing and
reading can never be mixed in. The SOP and Study Instance UIDs inside the file must match what
the store's index claims: the index is never evidence.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from imaging_consent.dicom import dataset_pixel_hash, pixel_hash, read_dicom
from imaging_consent.errors import IntegrityError
from imaging_consent.stores.base import ImageStore, StoredInstance


@dataclass(frozen=True, slots=True)
class LoadedInstance:
    """One instance as read from the store.

    Attributes:
        stored: The store's index record.
        pixel_hash: pixelHash of the bytes read (see docs/ARCHITECTURE.md).
        raw: The file's bytes, if loaded for release.
        dataset: The dataset parsed from exactly ``raw``, if loaded for release.
    """

    stored: StoredInstance
    pixel_hash: bytes
    raw: bytes | None = field(default=None, repr=False)
    dataset: Dataset | None = field(default=None, repr=False)


def _uid(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return str(value).strip(" \x00") if value is not None else ""


def _check_uids(ds: Dataset, stored: StoredInstance, position: str) -> None:
    if _uid(ds, "SOPInstanceUID") != stored.sop_instance_uid:
        raise IntegrityError(
            f"{position}: the file's SOP Instance UID differs from the store's index"
        )
    if _uid(ds, "StudyInstanceUID") != stored.study_instance_uid:
        raise IntegrityError(
            f"{position}: the file's Study Instance UID differs from the store's index"
        )


def load_instance(
    store: ImageStore, stored: StoredInstance, *, load: bool, position: str = "instance"
) -> LoadedInstance:
    """Open one instance once, hash its pixel data and check its UIDs.

    Args:
        store: The image store.
        stored: The instance's index record.
        load: Also keep the bytes and the full dataset (for release); otherwise the pixels are
            streamed through the hash and only the metadata is parsed.
        position: Names the instance in messages (never its UID).

    Raises:
        StoreError: If the store cannot provide the bytes.
        DicomReadError: If the bytes are not sound DICOM (truncated, malformed).
        IntegrityError: If the UIDs inside the file differ from the index.
    """
    with store.open(stored.sop_instance_uid) as fp:
        if not load:
            digest = pixel_hash(fp)
            fp.seek(0)
            meta = read_dicom(fp, stop_before_pixels=True)
            _check_uids(meta, stored, position)
            return LoadedInstance(stored, digest)
        raw = fp.read()
    buffer = io.BytesIO(raw)
    ds = read_dicom(buffer)
    _check_uids(ds, stored, position)
    # pixelHash is defined so that sha256 of the parsed PixelData equals it: hashing the value
    # that will be released is both the check and the hash, with one parse of the file.
    parsed_hash = dataset_pixel_hash(ds)
    if parsed_hash is None:  # no PixelData: the whole file is hashed
        buffer.seek(0)
        parsed_hash = pixel_hash(buffer)
    return LoadedInstance(stored, parsed_hash, raw, ds)
