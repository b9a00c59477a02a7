"""Compiled artifacts, deployment and typed errors of the contract suite."""

from imaging_consent.contracts.artifacts import SUITE, Artifact, load_artifact
from imaging_consent.contracts.revert import decode_revert

__all__ = ["SUITE", "Artifact", "decode_revert", "load_artifact"]
