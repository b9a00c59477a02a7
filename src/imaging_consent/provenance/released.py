"""What a release hands over: each instance with the proof that ties it to the chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydicom.dataset import Dataset

from imaging_consent.dicom import dataset_bytes
from imaging_consent.provenance.merkle import leaf_hash

__all__ = ["ReleasedInstance", "ReleasedStudy"]


@dataclass(frozen=True, slots=True)
class ReleasedInstance:
    """One released instance and what a receiver needs to verify it against the chain.

    The original SOP Instance UID of a de-identified instance is deliberately not included:
    ``instance_key`` (keyed with the site pepper) stands in for it in the proof.

    Attributes:
        sop_instance_uid: The SOP Instance UID as released (a pseudonym if de-identified).
        instance_key: The content-tree instance key (``keccak256(pepper ‖ original UID)``).
        pixel_hash: The pixelHash of the released bytes.
        proof: Merkle proof of ``leaf_hash(instance_key, pixel_hash)`` against the content root.
        dataset: The released dataset.
        raw: The exact released file bytes when the file is released unchanged (identified).
    """

    sop_instance_uid: str
    instance_key: bytes
    pixel_hash: bytes
    proof: tuple[bytes, ...]
    dataset: Dataset = field(repr=False, compare=False)
    raw: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def leaf(self) -> bytes:
        """The content-tree leaf this instance proves."""
        return leaf_hash(self.instance_key, self.pixel_hash)

    def to_bytes(self) -> bytes:
        """The released instance as a DICOM Part 10 file.

        Identified releases return the store's file bytes exactly as verified; de-identified
        ones encode the de-identified dataset (its PixelData bytes untouched).

        Raises:
            DeidentificationError: If the dataset cannot be encoded.
        """
        return self.raw if self.raw is not None else dataset_bytes(self.dataset)


class ReleasedStudy(Protocol):
    """What a receiver keeps of a release (``gateway.Release`` is one)."""

    @property
    def site(self) -> str: ...
    @property
    def study_key(self) -> bytes: ...
    @property
    def request_id(self) -> bytes: ...
    @property
    def identified(self) -> bool: ...
    @property
    def break_glass(self) -> bool: ...
    @property
    def instances(self) -> Sequence[ReleasedInstance]: ...
