"""The one exception tree of imaging-consent.

Every error the package raises derives from :class:`ImagingConsentError` and is grouped by
domain (chain, contracts, consent, DICOM, release). Where a built-in exception fits, the class
also inherits it, so ``except ValueError`` keeps working for callers that expect it.
Messages name what was wrong (a URL, a chain id, a file) but never personal data.
"""

from __future__ import annotations


class ImagingConsentError(Exception):
    """Root of every error raised by imaging-consent."""


# --- chain -------------------------------------------------------------------------------------


class ChainError(ImagingConsentError):
    """A problem reaching or talking to an EVM chain."""


# --- contracts ---------------------------------------------------------------------------------


class ContractError(ImagingConsentError):
    """A problem with deployed contracts, their manifest or a call to them."""


class ManifestError(ContractError, ValueError):
    """A deployment manifest is missing, malformed or of an unknown schema version."""


# --- consent -----------------------------------------------------------------------------------


class ConsentError(ImagingConsentError):
    """A problem with a consent grant, revocation or signature."""


# --- dicom -------------------------------------------------------------------------------------


class DicomError(ImagingConsentError, ValueError):
    """A DICOM file could not be read or processed."""


# --- release -----------------------------------------------------------------------------------


class ReleaseError(ImagingConsentError):
    """The gateway refused to release images, or could not prove it may."""
