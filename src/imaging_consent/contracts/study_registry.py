"""The typed binding of StudyRegistry: each site's studies, their patients and content roots."""

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
        site: The site that registered it (its namespace).
        study_key: The study's key.
        patient: The patient who controls consent for it.
        content_root: The Merkle root over its instances' leaves.
        instance_count: How many instances the root covers.
        registered_at: Unix time of registration.
    """

    site: ChecksumAddress
    study_key: bytes
    patient: ChecksumAddress
    content_root: bytes
    instance_count: int
    registered_at: int


class StudyRegistry(AccessControlled):
    """StudyRegistry at one address (see ``interfaces/IStudyRegistry.sol``)."""

    NAME = "StudyRegistry"

    def study(
        self, site: ChecksumAddress, study_key: bytes, block: BlockIdentifier = "latest"
    ) -> StudyRecord:
        """The study registered under ``study_key`` in ``site``'s namespace.

        Raises:
            StudyNotRegisteredError: If the site has no such study.
            ChainUnavailableError: If the chain cannot be reached.
        """
        patient, root, count, at = self._read(self.functions.studyOf(site, study_key), block)
        return StudyRecord(
            site=Web3.to_checksum_address(site),
            study_key=bytes(study_key),
            patient=Web3.to_checksum_address(patient),
            content_root=bytes(root),
            instance_count=int(count),
            registered_at=int(at),
        )

    def content_version(self, site: ChecksumAddress, study_key: bytes) -> int:
        """How many times the study's content was set (1 after registration).

        Raises:
            StudyNotRegisteredError: If the site has no such study.
        """
        return int(self._read(self.functions.contentVersionOf(site, study_key)))

    def verify_instance(
        self, site: ChecksumAddress, study_key: bytes, leaf: bytes, proof: Sequence[bytes]
    ) -> bool:
        """True if ``leaf`` proves against the study's current content root.

        Raises:
            StudyNotRegisteredError: If the site has no such study.
            ChainUnavailableError: If the chain cannot be reached.
        """
        proof_list = [bytes(p) for p in proof]
        return bool(self._read(self.functions.verifyInstance(site, study_key, leaf, proof_list)))

    def register_study(
        self, study_key: bytes, patient: ChecksumAddress, content_root: bytes, count: int
    ) -> ContractFunction:
        """A site's ``registerStudy`` transaction."""
        return self.functions.registerStudy(study_key, patient, content_root, count)

    def update_content(self, study_key: bytes, content_root: bytes, count: int) -> ContractFunction:
        """The registering site's ``updateContent`` transaction (its own namespace)."""
        return self.functions.updateContent(study_key, content_root, count)

    def correct_patient(
        self, site: ChecksumAddress, study_key: bytes, patient: ChecksumAddress
    ) -> ContractFunction:
        """The admin's ``correctPatient`` transaction (a wrongly registered patient)."""
        return self.functions.correctPatient(site, study_key, patient)

    def retire_study(self, site: ChecksumAddress, study_key: bytes) -> ContractFunction:
        """The admin's ``retireStudy`` transaction (a wrongly registered study)."""
        return self.functions.retireStudy(site, study_key)
