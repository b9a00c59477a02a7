"""The typed binding of StudyRegistry: which patient and site a study belongs to, its content."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier

from imaging_consent.contracts.binding import AccessControlled

__all__ = ["StudyRecord", "StudyRegistry"]


@dataclass(frozen=True, slots=True)
class StudyRecord:
    """A registered study, as ``studyOf`` returns it (opaque keys only).

    Attributes:
        study_key: The study's key.
        patient: The patient who controls consent for it.
        site: The site that registered it.
        content_root: The Merkle root over its instances' leaves.
        instance_count: How many instances the root covers.
        registered_at: Unix time of registration.
    """

    study_key: bytes
    patient: ChecksumAddress
    site: ChecksumAddress
    content_root: bytes
    instance_count: int
    registered_at: int


class StudyRegistry(AccessControlled):
    """StudyRegistry at one address (see ``interfaces/IStudyRegistry.sol``)."""

    NAME = "StudyRegistry"

    def study(self, study_key: bytes, block: BlockIdentifier = "latest") -> StudyRecord:
        """The registered study.

        Raises:
            StudyNotRegisteredError: If the key is not registered.
            ChainUnavailableError: If the chain cannot be reached.
        """
        patient, site, root, count, at = self._read(self.functions.studyOf(study_key), block)
        return StudyRecord(
            study_key=bytes(study_key),
            patient=Web3.to_checksum_address(patient),
            site=Web3.to_checksum_address(site),
            content_root=bytes(root),
            instance_count=int(count),
            registered_at=int(at),
        )

    def content_version(self, study_key: bytes) -> int:
        """How many times the study's content was set (1 after registration).

        Raises:
            StudyNotRegisteredError: If the key is not registered.
        """
        return int(self._read(self.functions.contentVersionOf(study_key)))

    def verify_instance(self, study_key: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
        """True if ``leaf`` proves against the study's current content root.

        Raises:
            StudyNotRegisteredError: If the key is not registered.
            ChainUnavailableError: If the chain cannot be reached.
        """
        return bool(
            self._read(self.functions.verifyInstance(study_key, leaf, [bytes(p) for p in proof]))
        )

    def register_study(
        self, study_key: bytes, patient: ChecksumAddress, content_root: bytes, count: int
    ) -> ContractFunction:
        """A site's ``registerStudy`` transaction."""
        return self.functions.registerStudy(study_key, patient, content_root, count)

    def update_content(self, study_key: bytes, content_root: bytes, count: int) -> ContractFunction:
        """The registering site's ``updateContent`` transaction."""
        return self.functions.updateContent(study_key, content_root, count)
