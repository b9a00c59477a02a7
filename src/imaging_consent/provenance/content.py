"""A study's content: instance keys, content digests, leaves, the Merkle root and proofs.

Two content protocols exist (docs/ARCHITECTURE.md, "Content protocol"). Version 2, which every
registration now uses, commits each instance's pixels, the attributes that change what a reader
sees or measures, and the whole file byte for byte. Version 1 committed the pixels only; studies
registered under it keep verifying under it until their site registers them again. The tree
itself is :mod:`imaging_consent.provenance.merkle` (shared with StudyRegistry).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import MappingProxyType

from imaging_consent.dicom import SitePepper, instance_key, study_key
from imaging_consent.dicom.walk import ContentDigest
from imaging_consent.errors import DicomError
from imaging_consent.provenance.merkle import MerkleTree, leaf_hash, leaf_hash_v2


class ContentProtocol(enum.IntEnum):
    """Which content-tree leaf a study was registered with."""

    V1 = 1
    """``leaf(instanceKey, pixelHash)``: the pixels only."""
    V2 = 2
    """``leaf(instanceKey, pixelHash, viewHash, fileHash)``: pixels, display attributes, file."""


#: What a registration writes today.
CURRENT_PROTOCOL = ContentProtocol.V2


def content_leaf(protocol: ContentProtocol, key: bytes, digest: ContentDigest) -> bytes:
    """The leaf of one instance under ``protocol``."""
    if protocol is ContentProtocol.V1:
        return leaf_hash(key, digest.pixel_hash)
    return leaf_hash_v2(key, digest.pixel_hash, digest.view_hash, digest.file_hash)


@dataclass(frozen=True, slots=True)
class InstanceContent:
    """One instance's place in the content tree."""

    sop_instance_uid: str
    instance_key: bytes
    digest: ContentDigest
    leaf: bytes


@dataclass(frozen=True, slots=True)
class StudyContent:
    """The content tree of one study: what a site registers, and the proofs it hands out."""

    study_key: bytes
    protocol: ContentProtocol
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
    digests: Iterable[tuple[str, ContentDigest]],
    protocol: ContentProtocol = CURRENT_PROTOCOL,
) -> StudyContent:
    """Build a study's content from ``(SOP Instance UID, ContentDigest)`` pairs.

    Args:
        pepper: The site pepper.
        study_instance_uid: The study's UID (only its key leaves this function).
        digests: Each instance's SOP Instance UID and content digest.
        protocol: The leaf format (default: the current one).

    Raises:
        DicomError: If there are no instances or an SOP Instance UID repeats.
        ValueError: If a hash is not 32 bytes.
    """
    records: list[InstanceContent] = []
    seen: set[str] = set()
    for sop_uid, digest in digests:
        if sop_uid in seen:
            raise DicomError("duplicate SOP Instance UID in study content")
        seen.add(sop_uid)
        key = instance_key(pepper, sop_uid)
        records.append(InstanceContent(sop_uid, key, digest, content_leaf(protocol, key, digest)))
    if not records:
        raise DicomError("a study's content needs at least one instance")
    records.sort(key=lambda r: r.sop_instance_uid)
    tree = MerkleTree.of([r.leaf for r in records])
    return StudyContent(
        study_key=study_key(pepper, study_instance_uid),
        protocol=protocol,
        root=tree.root,
        instance_count=len(records),
        instances=tuple(records),
        tree=tree,
        _by_uid=MappingProxyType({r.sop_instance_uid: r for r in records}),
    )
