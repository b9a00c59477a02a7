"""The image store interface the release gate is written against.

A store answers four questions: which studies it holds, which instances a study (or one of its
series) has, what it knows of one instance, and the instance's Part 10 bytes as a seekable
binary stream. Everything else, pixel hashing and de-identification included, happens in
:mod:`imaging_consent.dicom` on those bytes, so a folder, an Orthanc server (its REST API, one
instance in memory at a time) or anything else fits without changing the release code.

A store's metadata is an index, never evidence: the gate rehashes the bytes it is about to
release and checks the SOP Instance UID inside them (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol, runtime_checkable

from imaging_consent.dicom.read import InstanceRecord

__all__ = ["ImageStore", "InstanceRecord"]


@runtime_checkable
class ImageStore(Protocol):
    """A source of DICOM instances, addressed by their UIDs."""

    def studies(self) -> list[str]:
        """Return the Study Instance UIDs the store holds, sorted."""
        ...

    def instances(
        self, study_instance_uid: str, series_instance_uid: str | None = None
    ) -> list[InstanceRecord]:
        """Return a study's instances (or one series'), by series then instance number.

        Raises:
            UnknownStudyError: If the store has no such study, or the study no such series.
        """
        ...

    def instance(self, sop_instance_uid: str) -> InstanceRecord:
        """Return what the store knows of one instance.

        Raises:
            UnknownInstanceError: If the store has no such instance.
        """
        ...

    def open(self, sop_instance_uid: str) -> AbstractContextManager[BinaryIO]:
        """Open the instance's Part 10 bytes as a seekable binary stream (a context manager).

        Raises:
            UnknownInstanceError: If the store has no such instance.
            StoreError: If the bytes cannot be fetched.
        """
        ...
