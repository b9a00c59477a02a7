"""Reading a study's instances from a store, hashed and checked against the content root.

Each instance is read once, into memory, and walked once (:func:`~imaging_consent.dicom.walk.
walk_dicom`): the bytes that are hashed are the bytes that leave the gateway, so a file swapped
on disk between hashing and reading can never be mixed in, and each byte is hashed once. The SOP
and Study Instance UIDs inside the file must match what the store's index claims: the index is
never evidence. Two instances are read at a time (hashing releases the GIL), so memory grows with
the largest instance, never with the study, when the release goes to a folder.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from imaging_consent.dicom import (
    SitePepper,
    dataset_bytes,
    deidentify,
    instance_key,
    read_dicom,
    study_key,
)
from imaging_consent.dicom.walk import ContentDigest, Walk, walk_dicom
from imaging_consent.errors import DicomReadError, IntegrityError, UnknownInstanceError
from imaging_consent.provenance.content import ContentProtocol, content_leaf
from imaging_consent.provenance.merkle import MerkleTree
from imaging_consent.provenance.released import ReleasedInstance
from imaging_consent.stores.base import ImageStore, InstanceRecord

__all__ = ["Stage", "instance_digest", "verified_instances"]

#: Puts a released file somewhere before the release is committed: ``(SOP Instance UID as
#: released, bytes) -> final path``. Without one, a release is held in memory.
Stage: TypeAlias = Callable[[str, bytes], Path]

#: Instances read and hashed at a time.
WORKERS = 2


def _walk(stored: InstanceRecord, raw: bytes, where: str) -> Walk:
    try:
        walk = walk_dicom(raw, where)
    except DicomReadError as exc:
        raise IntegrityError(f"{where} cannot be read ({exc}); nothing released") from exc
    if walk.sop_instance_uid != stored.sop_instance_uid:
        raise IntegrityError(f"{where}: the file's SOP Instance UID differs from the store's index")
    if walk.study_instance_uid != stored.study_instance_uid:
        raise IntegrityError(
            f"{where}: the file's Study Instance UID differs from the store's index"
        )
    return walk


def _read(store: ImageStore, stored: InstanceRecord) -> bytes:
    with store.open(stored.sop_instance_uid) as fp:
        return fp.read()


def instance_digest(store: ImageStore, stored: InstanceRecord, where: str) -> ContentDigest:
    """Read one instance, check it is sound DICOM whose UIDs match the index, and hash it.

    Raises:
        StoreError: If the store cannot provide the bytes.
        DicomReadError: If the bytes are not sound DICOM (checked by the full reader too).
        IntegrityError: If the UIDs inside the file differ from the index.
    """
    raw = _read(store, stored)
    read_dicom(io.BytesIO(raw))  # every soundness check of the one opener
    digest = _walk(stored, raw, where).digest
    assert digest is not None
    return digest


def _deidentified(raw: bytes, walk: Walk, secret: bytes, where: str) -> tuple[str, bytes]:
    clean = dataset_bytes(deidentify(read_dicom(io.BytesIO(raw)), secret))
    after = walk_dicom(clean, where)
    assert walk.digest is not None and after.digest is not None
    if walk.pixel_offset is not None and after.digest.pixel_hash != walk.digest.pixel_hash:
        raise IntegrityError(f"{where}: de-identification changed PixelData; nothing released")
    if after.digest.view_hash != walk.digest.view_hash:
        raise IntegrityError(
            f"{where}: de-identification changed a display attribute; nothing released"
        )
    return after.sop_instance_uid, clean


@dataclass(frozen=True, slots=True)
class _Read:
    key: bytes
    digest: ContentDigest
    released_uid: str | None = None
    data: bytes | None = None
    path: Path | None = None


def verified_instances(
    store: ImageStore,
    pepper: SitePepper,
    study_uid: str,
    series_uid: str | None,
    content_root: bytes,
    deid_secret: bytes | None,
    stage: Stage | None = None,
    sop_instance_uid: str | None = None,
) -> tuple[ContentProtocol, tuple[ReleasedInstance, ...]]:
    """Read a study's instances, check them against ``content_root``, de-identify if asked.

    The whole study is read and its content tree rebuilt from the bytes read, even when only
    one series is wanted: a single altered, missing or extra instance fails the check. The
    study verifies under protocol v2, or, if it was registered before v2, under v1 (a set of
    files cannot match a root under the protocol it was not built with).

    Args:
        store: The image store.
        pepper: The site pepper (keys the instance keys).
        study_uid: The study's Study Instance UID.
        series_uid: Return only this series' instances.
        content_root: The study's content root on chain.
        deid_secret: De-identify with this secret (Annex E Basic Profile); None releases the
            files byte for byte.
        stage: Where each released file goes as soon as it is ready (else held in memory).
        sop_instance_uid: Return only this instance (of the study, or of ``series_uid``).

    Returns:
        The content protocol the study verified under, and the instances to release.

    Raises:
        StoreError: If the store does not have the study, series or instance.
        IntegrityError: If a file is not sound DICOM, or the instances do not match
            ``content_root``.
        DeidentificationError: If an instance cannot be de-identified safely.
    """
    every = store.instances(study_uid)
    wanted = _wanted(store, study_uid, series_uid, sop_instance_uid, every)
    total = len(every)

    def read_one(position: int) -> _Read:
        stored = every[position]
        where = f"instance {position + 1} of {total}"
        try:
            raw = _read(store, stored)
        except MemoryError:
            raise IntegrityError(f"{where} is too large to read; nothing released") from None
        walk = _walk(stored, raw, where)
        assert walk.digest is not None
        key = instance_key(pepper, stored.sop_instance_uid)
        if stored.sop_instance_uid not in wanted:
            return _Read(key, walk.digest)
        uid, data = stored.sop_instance_uid, raw
        if deid_secret is not None:
            uid, data = _deidentified(raw, walk, deid_secret, where)
        if stage is None:
            return _Read(key, walk.digest, uid, data)
        return _Read(key, walk.digest, uid, path=stage(uid, data))

    reads = list(_in_order(read_one, total))
    matched = _matching_protocol(reads, content_root)
    if matched is None:
        raise IntegrityError(
            f"the {total} instance(s) of study 0x{study_key(pepper, study_uid).hex()} in the "
            "store do not match its content root on chain (altered, missing or extra instances, "
            "or changed attributes); nothing released, the refusal is recorded"
        )
    protocol, leaves, tree = matched
    return protocol, tuple(
        ReleasedInstance(
            r.released_uid,
            r.key,
            protocol,
            r.digest,
            deid_secret is None,
            tuple(tree.proof(leaf)),
            r.data,
            r.path,
        )
        for r, leaf in zip(reads, leaves, strict=True)
        if r.released_uid is not None
    )


def _wanted(
    store: ImageStore,
    study_uid: str,
    series_uid: str | None,
    sop_instance_uid: str | None,
    every: list[InstanceRecord],
) -> set[str]:
    """The SOP Instance UIDs to release: the study's, one series', or one instance.

    Raises:
        StoreError: If the store does not have the series, or the selection that instance.
    """
    chosen = store.instances(study_uid, series_uid) if series_uid is not None else every
    uids = {s.sop_instance_uid for s in chosen}
    if sop_instance_uid is None:
        return uids
    if sop_instance_uid not in uids:
        raise UnknownInstanceError("the study (or series) has no such instance")
    return {sop_instance_uid}


def _in_order(read_one: Callable[[int], _Read], total: int) -> Iterator[_Read]:
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="release-read") as pool:
        futures = [pool.submit(read_one, position) for position in range(total)]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _matching_protocol(
    reads: list[_Read], content_root: bytes
) -> tuple[ContentProtocol, list[bytes], MerkleTree] | None:
    for protocol in (ContentProtocol.V2, ContentProtocol.V1):
        leaves = [content_leaf(protocol, r.key, r.digest) for r in reads]
        try:
            tree = MerkleTree.of(leaves)
        except ValueError:
            return None
        if tree.root == content_root:
            return protocol, leaves, tree
    return None
