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


class ContractRevertError(ContractError):
    """A contract call reverted with a custom error, decoded from the suite's ABIs.

    Attributes:
        error_name: The Solidity error's name, e.g. ``ConsentRegistryExpiredSignature``.
        error_args: Its arguments by name.
    """

    def __init__(
        self, message: str, *, error_name: str = "", error_args: dict[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = dict(error_args or {})


class MissingRoleError(ContractRevertError, PermissionError):
    """The sending account lacks the contract role the call needs."""


class StudyNotRegisteredError(ContractRevertError, LookupError):
    """No study is registered on chain under that study key."""


class StudyExistsError(ContractRevertError, ValueError):
    """A study is already registered under that study key."""


class NotStudySiteError(ContractRevertError, PermissionError):
    """Only the site that registered a study may update its content."""


class NotEmergencyError(ContractRevertError, PermissionError):
    """Break-glass access was asked for by an account without the EMERGENCY role."""


class ManifestError(ContractError, ValueError):
    """A deployment manifest is missing, malformed or of an unknown schema version."""


# --- consent -----------------------------------------------------------------------------------


class ConsentError(ImagingConsentError):
    """A problem with a consent grant, revocation or signature."""


class InvalidGrantError(ContractRevertError, ConsentError, ValueError):
    """A grant's values are invalid: zero grantee, no or reserved purposes, or a bad window."""


class NotDelegateError(ContractRevertError, ConsentError, PermissionError):
    """The sender acted for a patient without being their delegate."""


class InvalidDelegateError(ContractRevertError, ConsentError, ValueError):
    """A patient named the zero address or themselves as delegate."""


class SignatureExpiredError(ContractRevertError, ConsentError, ValueError):
    """A signed consent was submitted after its deadline."""


class InvalidSignatureError(ContractRevertError, ConsentError, ValueError):
    """A signature was not made by the patient over this exact message (or was replayed)."""


class GrantNotFoundError(ContractRevertError, ConsentError, LookupError):
    """There is no grant to revoke for that patient, grantee and scope."""


# --- dicom -------------------------------------------------------------------------------------


class DicomError(ImagingConsentError, ValueError):
    """A DICOM file could not be read or processed."""


class DicomReadError(DicomError):
    """A file is not readable DICOM (not Part 10, malformed, or unreadable from disk)."""


class DicomTruncatedError(DicomReadError):
    """A DICOM file ends before the data it declares (for example short PixelData)."""


class DeidentificationError(DicomError):
    """The Basic Application Level Confidentiality Profile cannot be applied safely."""


class BurnedInAnnotationError(DeidentificationError):
    """The instance declares burned-in annotation, which de-identification cannot remove."""


# --- key material ------------------------------------------------------------------------------


class KeyMaterialError(ImagingConsentError, ValueError):
    """A secret (the site pepper) is missing, malformed or stored with unsafe permissions.

    Messages never contain the secret itself.
    """


class InsecureKeyFileError(KeyMaterialError):
    """A secret file can be read by its group or by others (its mode must be 0600 or stricter)."""


# --- stores ------------------------------------------------------------------------------------


class StoreError(ImagingConsentError):
    """A problem with an image store (its index, its files or a lookup)."""


class UnknownStudyError(StoreError, LookupError):
    """The store holds no study with the given Study Instance UID."""


class UnknownInstanceError(StoreError, LookupError):
    """The store holds no instance with the given SOP Instance UID."""


class StaleIndexError(StoreError):
    """A file changed or vanished since the store indexed it; refresh the index."""


# --- release -----------------------------------------------------------------------------------


class ReleaseError(ImagingConsentError):
    """The gateway refused to release images, or could not prove it may."""
