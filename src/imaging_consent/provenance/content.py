"""A study's content: instance keys, pixel hashes, leaves, the Merkle root and proofs.

The tree itself is :mod:`imaging_consent.provenance.merkle` (the protocol shared with
StudyRegistry).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from types import MappingProxyType

from imaging_consent.dicom import SitePepper, instance_key, study_key
from imaging_consent.errors import DicomError
from imaging_consent.provenance.merkle import MerkleTree, leaf_hash


@dataclass(frozen=True, slots=True)
class InstanceContent:
    """One instance's place in the content tree."""

    sop_instance_uid: str
    instance_key: bytes
    pixel_hash: bytes
    leaf: bytes


@dataclass(frozen=True, slots=True)
class StudyContent:
    """The content tree of one study: what a site registers, and the proofs it hands out."""

    study_key: bytes
    root: bytes
    instance_count: int
    instances: tuple[InstanceContent, ...]
    tree: MerkleTree = field(repr=False)
    _by_uid: MappingProxyType[str, InstanceContent] = field(repr=False)

    def instance(self, sop_instance_uid: str) -> InstanceContent:
        """Return the content record of one instance.

        Raises:
            KeyError: If the instance is not part of this study's content.
        """
        try:
            return self._by_uid[sop_instance_uid]
        except KeyError:
            raise KeyError("instance is not part of this study's content") from None

    def proof(self, sop_instance_uid: str) -> list[bytes]:
        """Return the Merkle proof of one instance's leaf against :attr:`root`.

        Raises:
            KeyError: If the instance is not part of this study's content.
        """
        return self.tree.proof(self.instance(sop_instance_uid).leaf)


def build_study_content(
    pepper: SitePepper,
    study_instance_uid: str,
    pixel_hashes: Iterable[tuple[str, bytes]],
) -> StudyContent:
    """Build a study's content from ``(SOP Instance UID, pixelHash)`` pairs.

    Args:
        pepper: The site pepper.
        study_instance_uid: The study's UID (only its key leaves this function).
        pixel_hashes: Each instance's SOP Instance UID and 32-byte pixel hash.

    Raises:
        DicomError: If there are no instances or an SOP Instance UID repeats.
        ValueError: If a pixel hash is not 32 bytes.
    """
    records: list[InstanceContent] = []
    seen: set[str] = set()
    for sop_uid, digest in pixel_hashes:
        if sop_uid in seen:
            raise DicomError("duplicate SOP Instance UID in study content")
        seen.add(sop_uid)
        key = instance_key(pepper, sop_uid)
        records.append(InstanceContent(sop_uid, key, digest, leaf_hash(key, digest)))
    if not records:
        raise DicomError("a study's content needs at least one instance")
    records.sort(key=lambda r: r.sop_instance_uid)
    tree = MerkleTree.of([r.leaf for r in records])
    return StudyContent(
        study_key=study_key(pepper, study_instance_uid),
        root=tree.root,
        instance_count=len(records),
        instances=tuple(records),
        tree=tree,
        _by_uid=MappingProxyType({r.sop_instance_uid: r for r in records}),
    )
