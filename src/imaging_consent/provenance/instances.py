"""Reading a study's instances from a store, hashed and checked against the content root.

Each instance is opened once. The bytes that are hashed are the bytes that are parsed (and,
for a release, the bytes that leave the gateway), so a file swapped on disk between hashing and
reading can never be mixed in. The SOP and Study Instance UIDs inside the file must match what
the store's index claims: the index is never evidence.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from imaging_consent.dicom import (
    SitePepper,
    dataset_pixel_hash,
    deidentify,
    instance_key,
    pixel_hash,
    read_dicom,
    study_key,
)
from imaging_consent.errors import DicomReadError, IntegrityError
from imaging_consent.provenance.merkle import MerkleTree, leaf_hash
from imaging_consent.provenance.released import ReleasedInstance
from imaging_consent.stores.base import ImageStore, InstanceRecord


@dataclass(frozen=True, slots=True)
class LoadedInstance:
    """One instance as read from the store.

    Attributes:
        stored: The store's index record.
        pixel_hash: pixelHash of the bytes read (see docs/ARCHITECTURE.md).
        raw: The file's bytes, if loaded for release.
        dataset: The dataset parsed from exactly ``raw``, if loaded for release.
    """

    stored: InstanceRecord
    pixel_hash: bytes
    raw: bytes | None = field(default=None, repr=False)
    dataset: Dataset | None = field(default=None, repr=False)


def _uid(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return str(value).strip(" \x00") if value is not None else ""


def _check_uids(ds: Dataset, stored: InstanceRecord, position: str) -> None:
    if _uid(ds, "SOPInstanceUID") != stored.sop_instance_uid:
        raise IntegrityError(
            f"{position}: the file's SOP Instance UID differs from the store's index"
        )
    if _uid(ds, "StudyInstanceUID") != stored.study_instance_uid:
        raise IntegrityError(
            f"{position}: the file's Study Instance UID differs from the store's index"
        )


def load_instance(
    store: ImageStore, stored: InstanceRecord, *, load: bool, position: str = "instance"
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


def verified_instances(
    store: ImageStore,
    pepper: SitePepper,
    study_uid: str,
    series_uid: str | None,
    content_root: bytes,
    deid_secret: bytes | None,
) -> tuple[ReleasedInstance, ...]:
    """Load a study's instances, check them against ``content_root``, de-identify if asked.

    The whole study is read and its content tree rebuilt from the bytes read, even when only
    one series is wanted: a single altered, missing or extra instance fails the check.

    Args:
        store: The image store.
        pepper: The site pepper (keys the instance keys).
        study_uid: The study's Study Instance UID.
        series_uid: Return only this series' instances.
        content_root: The study's content root on chain.
        deid_secret: De-identify with this secret (Annex E Basic Profile); None releases the
            files unchanged.

    Raises:
        StoreError: If the store does not have the study or series.
        IntegrityError: If a file is not sound DICOM, or the instances do not match
            ``content_root``.
        DeidentificationError: If an instance cannot be de-identified safely.
    """
    every = store.instances(study_uid)
    wanted = (
        [s.sop_instance_uid for s in store.instances(study_uid, series_uid)]
        if series_uid is not None
        else [s.sop_instance_uid for s in every]
    )
    chosen = set(wanted)
    loaded: dict[str, LoadedInstance] = {}
    leaves: dict[str, bytes] = {}
    keys: dict[str, bytes] = {}
    for position, stored in enumerate(every, start=1):
        uid = stored.sop_instance_uid
        where = f"instance {position} of {len(every)}"
        try:
            item = load_instance(store, stored, load=uid in chosen, position=where)
        except DicomReadError as exc:
            raise IntegrityError(
                f"{where} of study 0x{study_key(pepper, study_uid).hex()} cannot be read "
                f"({exc}); nothing released, the refusal is recorded"
            ) from exc
        loaded[uid] = item
        keys[uid] = instance_key(pepper, uid)
        leaves[uid] = leaf_hash(keys[uid], item.pixel_hash)
    try:
        tree = MerkleTree.of(list(leaves.values()))
    except ValueError as exc:
        raise IntegrityError(f"the study's instances do not form a content tree ({exc})") from exc
    if tree.root != content_root:
        raise IntegrityError(
            f"the {len(every)} instance(s) of study 0x{study_key(pepper, study_uid).hex()} in "
            "the store do not match its content root on chain (altered, missing or extra "
            "instances); nothing released, the refusal is recorded"
        )
    released: list[ReleasedInstance] = []
    for uid in wanted:
        item = loaded[uid]
        assert item.dataset is not None  # loaded with load=True above
        proof = tuple(tree.proof(leaves[uid]))
        key = keys[uid]
        if deid_secret is None:
            released.append(
                ReleasedInstance(uid, key, item.pixel_hash, proof, item.dataset, item.raw)
            )
            continue
        clean = deidentify(item.dataset, deid_secret)
        if item.stored.has_pixel_data and dataset_pixel_hash(clean) != item.pixel_hash:
            raise IntegrityError("de-identification changed PixelData; nothing released")
        released.append(
            ReleasedInstance(
                str(clean.get("SOPInstanceUID", "")), key, item.pixel_hash, proof, clean
            )
        )
    return tuple(released)
