"""What a release hands over: each instance with the proof that ties it to the chain."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydicom.dataset import Dataset

from imaging_consent.dicom import read_dicom
from imaging_consent.dicom.walk import ContentDigest
from imaging_consent.provenance.content import ContentProtocol, content_leaf

__all__ = ["ReleasedInstance", "ReleasedStudy"]


@dataclass(frozen=True, slots=True)
class ReleasedInstance:
    """One released instance and what a receiver needs to verify it against the chain.

    The original SOP Instance UID of a de-identified instance is deliberately not included:
    ``instance_key`` (keyed with the site pepper) stands in for it in the proof.

    Attributes:
        sop_instance_uid: The SOP Instance UID as released (a pseudonym if de-identified).
        instance_key: The content-tree instance key (``keccak256(pepper ‖ original UID)``).
        protocol: The content protocol the study was registered with.
        digest: The instance's content digest as registered. A de-identified file has the same
            ``pixel_hash`` and ``view_hash``; its ``file_hash`` is the original file's.
        identified: True if the file is released byte for byte, False if de-identified.
        proof: Merkle proof of the instance's leaf against the content root.
        data: The released file's bytes, when the release is held in memory.
        path: Where the released file was written, when the release went to a folder.
    """

    sop_instance_uid: str
    instance_key: bytes
    protocol: ContentProtocol
    digest: ContentDigest
    identified: bool
    proof: tuple[bytes, ...]
    data: bytes | None = field(default=None, repr=False, compare=False)
    path: Path | None = None

    @property
    def pixel_hash(self) -> bytes:
        """The instance's pixelHash."""
        return self.digest.pixel_hash

    @property
    def leaf(self) -> bytes:
        """The content-tree leaf this instance proves."""
        return content_leaf(self.protocol, self.instance_key, self.digest)

    def to_bytes(self) -> bytes:
        """The released instance as a DICOM Part 10 file (from memory or from its file).

        Raises:
            OSError: If a released file cannot be read back.
        """
        if self.data is not None:
            return self.data
        if self.path is None:  # pragma: no cover - every release sets one of them
            raise ValueError("the instance holds neither bytes nor a path")
        return self.path.read_bytes()

    @property
    def dataset(self) -> Dataset:
        """The released instance parsed (read on each access).

        Raises:
            DicomReadError: If the released bytes are not sound DICOM.
        """
        return read_dicom(io.BytesIO(self.to_bytes()))


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
