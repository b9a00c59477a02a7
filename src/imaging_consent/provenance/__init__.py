"""Provenance: the integrity check that ties every released image to its study's chain record.

- :mod:`.merkle`: the sorted-pair Merkle tree shared with StudyRegistry.
- :mod:`.content`: a study's content tree (content protocols v1 and v2, leaves, root, proofs).
- :mod:`.registration`: :func:`register_study` puts a study's content root on chain.
- :mod:`.instances`: :func:`verified_instances` loads a study and checks it against its root.
- :mod:`.released`: :class:`ReleasedInstance`, what a release hands over.
- :mod:`.verify`: receivers check what they got, against the chain.
"""

from imaging_consent.provenance.content import (
    ContentProtocol,
    InstanceContent,
    StudyContent,
    build_study_content,
)
from imaging_consent.provenance.instances import verified_instances
from imaging_consent.provenance.registration import (
    RegistrationAction,
    RegistrationResult,
    register_study,
)
from imaging_consent.provenance.released import ReleasedInstance, ReleasedStudy
from imaging_consent.provenance.verify import (
    PROOF_FILE,
    FileCheck,
    FileStatus,
    InstanceProof,
    ReleaseCheck,
    ReleaseFolder,
    ReleaseProofs,
    read_proofs,
    verify_files,
    verify_release,
    verify_released,
    write_release,
)

__all__ = [
    "PROOF_FILE",
    "ContentProtocol",
    "FileCheck",
    "FileStatus",
    "InstanceContent",
    "InstanceProof",
    "RegistrationAction",
    "RegistrationResult",
    "ReleaseCheck",
    "ReleaseFolder",
    "ReleaseProofs",
    "ReleasedInstance",
    "ReleasedStudy",
    "StudyContent",
    "build_study_content",
    "read_proofs",
    "register_study",
    "verified_instances",
    "verify_files",
    "verify_release",
    "verify_released",
    "write_release",
]
