"""The release gate: consent check, integrity check, de-identification and the access log.

- :mod:`.gate`: :class:`ImageGateway` (``release``, ``flush``), :class:`Release`,
  :class:`ReleasedInstance`, :class:`LogMode`.
- :mod:`.registration`: :func:`register_study` (a site puts a study's content root on chain).
- :mod:`.verify`: :func:`verify_released`, :func:`write_release`, :func:`read_proofs`,
  :func:`verify_files` (receivers check what they got, against the chain).
- :mod:`.outbox`: the durable outbox of batched access records.
"""

from imaging_consent.release.gate import ImageGateway, LogMode, Release, ReleasedInstance
from imaging_consent.release.outbox import Batch, Outbox
from imaging_consent.release.registration import (
    RegistrationAction,
    RegistrationResult,
    register_study,
)
from imaging_consent.release.verify import (
    InstanceProof,
    ReleaseProofs,
    read_proofs,
    verify_files,
    verify_released,
    write_release,
)

__all__ = [
    "Batch",
    "ImageGateway",
    "InstanceProof",
    "LogMode",
    "Outbox",
    "RegistrationAction",
    "RegistrationResult",
    "Release",
    "ReleaseProofs",
    "ReleasedInstance",
    "read_proofs",
    "register_study",
    "verify_files",
    "verify_released",
    "write_release",
]
