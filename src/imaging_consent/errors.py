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


class ChainUnavailableError(ChainError, ConnectionError):
    """The JSON-RPC endpoint could not be reached or did not answer JSON-RPC."""


class InvalidRpcUrlError(ChainUnavailableError, ValueError):
    """A JSON-RPC URL is malformed or not ``http://`` / ``https://`` (nothing was sent)."""


class InsecureEndpointError(ChainError, ValueError):
    """A remote JSON-RPC endpoint was given over plain ``http://`` without allowing it.

    Anyone on the path could forge its answers (consent state, roles, content roots).
    Loopback addresses are always allowed.
    """


class WrongChainError(ChainError, ValueError):
    """The endpoint serves a different chain id than the one expected."""


class LocalChainError(ChainError, RuntimeError):
    """A local development chain (Ganache or Anvil) could not be started."""


class ChainBinaryNotFoundError(LocalChainError, FileNotFoundError):
    """The ``ganache`` or ``anvil`` executable is not installed (run ``npm ci``)."""


class LogQueryError(ChainError):
    """Event logs could not be fetched, even one block at a time."""


class TransactionError(ChainError):
    """A transaction could not be sent or was not mined.

    Attributes:
        tx_hash: Hash of the signed transaction, or None if none was signed.
    """

    def __init__(self, message: str, *, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class TransactionRejectedError(TransactionError):
    """The node refused the transaction (insufficient funds, fee too low, bad nonce...)."""


class TransactionTimeoutError(TransactionError, TimeoutError):
    """The transaction was sent but no receipt (or not enough confirmations) came in time."""


# --- contracts ---------------------------------------------------------------------------------


class ContractError(ImagingConsentError):
    """A problem with deployed contracts, their manifest or a call to them."""


class ContractRevertedError(ContractError):
    """A contract call or transaction reverted.

    Typed errors decoded from a contract's custom errors subclass this one. Raw revert bytes
    stay available for logging and for decoders.

    Attributes:
        revert_data: The raw revert data (selector and ABI-encoded arguments), maybe empty.
        tx_hash: Hash of the mined transaction that reverted, or None when the revert was
            found before sending (gas estimation or a call), in which case nothing was sent.
        error_name: The decoded Solidity error's name, e.g. ``ConsentRegistryExpiredSignature``.
        error_args: Its arguments by name.
    """

    def __init__(
        self,
        message: str,
        *,
        revert_data: bytes = b"",
        tx_hash: str | None = None,
        error_name: str = "",
        error_args: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.revert_data = revert_data
        self.tx_hash = tx_hash
        self.error_name = error_name
        self.error_args = dict(error_args or {})


class TransactionRevertedError(ContractRevertedError):
    """A transaction reverted: in gas estimation (nothing sent) or when mined (``tx_hash``)."""


class MissingRoleError(ContractRevertedError, PermissionError):
    """The sending account lacks the contract role the call needs."""


class StudyNotRegisteredError(ContractRevertedError, LookupError):
    """No study is registered on chain under that study key."""


class StudyExistsError(ContractRevertedError, ValueError):
    """A study is already registered under that study key."""


class NotGatewayError(ContractRevertedError, PermissionError):
    """The account is not a gateway of the site it acts for."""


class BreakGlassLimitError(ContractRevertedError, PermissionError):
    """An emergency clinician reached the break-glass limit of a site's window."""


class NotEmergencyError(ContractRevertedError, PermissionError):
    """Break-glass access was asked for by an account without the EMERGENCY role."""


class ManifestError(ContractError, ValueError):
    """A deployment manifest is missing, malformed or of an unknown schema version."""


class ManifestExistsError(ManifestError, FileExistsError):
    """A deployment manifest is already there, and replacing it was not asked for.

    Overwriting it would strand every study, consent and log kept by the contracts it names.
    """


# --- keys --------------------------------------------------------------------------------------


class SignerError(ImagingConsentError):
    """A signing key could not be loaded or used. Messages never contain key material."""


class KeystoreError(SignerError, ValueError):
    """A keystore file is missing, malformed, or its password is wrong or missing."""


class PrivateKeyError(SignerError, ValueError):
    """A private key from the environment is missing or malformed."""


# --- consent -----------------------------------------------------------------------------------


class ConsentError(ImagingConsentError):
    """A problem with a consent grant, revocation or signature."""


class UnknownPurposeError(ConsentError, ValueError):
    """A purpose name is not one of the HL7 v3 PurposeOfUse codes the registry knows."""


class InvalidAddressError(ConsentError, ValueError):
    """A value given as an account address is not a valid address."""


class InvalidTimestampError(ConsentError, ValueError):
    """A grant time is naive (no timezone), negative or beyond uint48."""


class ClockMismatchError(ConsentError):
    """This machine's clock and the chain's latest block time disagree too much to turn a
    duration into a point in time (one of the two clocks is wrong)."""


class ReadOnlyClientError(ConsentError, RuntimeError):
    """A consent client made without a transaction sender was asked to send a transaction."""


class InvalidGrantError(ContractRevertedError, ConsentError, ValueError):
    """A grant's values are invalid: zero grantee, no or reserved purposes, or a bad window."""


class NotDelegateError(ContractRevertedError, ConsentError, PermissionError):
    """The sender acted for a patient without being their delegate."""


class InvalidDelegateError(ContractRevertedError, ConsentError, ValueError):
    """A patient named the zero address or themselves as delegate."""


class SignatureExpiredError(ContractRevertedError, ConsentError, ValueError):
    """A signed consent was submitted after its deadline."""


class InvalidSignatureError(ContractRevertedError, ConsentError, ValueError):
    """A signature was not made by the patient over this exact message (or was replayed)."""


class SupersededSignatureError(ContractRevertedError, ConsentError, ValueError):
    """A signed consent is older than the grant's current state, used, or cancelled."""


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
    """The pixels may carry burned-in identifying text, which de-identification cannot remove.

    Either the instance declares BurnedInAnnotation YES (or an invalid value), or it is of a
    class or modality that commonly carries such text and does not declare an explicit NO.
    """


class RecognizableVisualFeaturesError(DeidentificationError):
    """The pixels may show a face or another recognizable feature (a photograph, a 3D surface).

    Either the instance declares RecognizableVisualFeatures YES (or an invalid value), or it is a
    photograph or surface model and does not declare an explicit NO.
    """


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


class StoreUnavailableError(StoreError, ConnectionError):
    """A store server (Orthanc) could not be reached, timed out, or answered with nonsense.

    The message names the server's URL without credentials.
    """


class StoreAuthError(StoreError, PermissionError):
    """A store server refused the credentials (HTTP 401) or the access (HTTP 403)."""


class InsecureStoreEndpointError(StoreError, ValueError):
    """A store server that is not on this machine was given over plain ``http://``.

    Whoever is on the path could read the images and substitute others (which the content
    root would catch, but only after the images had crossed the network in the clear).
    Loopback addresses are always allowed.
    """


# --- release -----------------------------------------------------------------------------------


class ReleaseError(ImagingConsentError):
    """The gateway refused to release images, or could not prove it may."""


class ConsentDeniedError(ReleaseError, PermissionError):
    """Consent does not permit the release: no grant for that purpose, expired or revoked.

    The refusal is recorded (on chain in sync mode, in the outbox in batched mode).

    Attributes:
        request_id: The gateway's id of the refused request (as recorded), or None.
    """

    def __init__(self, message: str, *, request_id: bytes | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class IntegrityError(ReleaseError):
    """The images in the store do not match the study's content root on chain.

    Nothing is released. The refusal is recorded as an access record with ``permitted=false``.

    Attributes:
        request_id: The gateway's id of the refused request, or None.
    """

    def __init__(self, message: str, *, request_id: bytes | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class StudyPatientMismatchError(ReleaseError, ValueError):
    """A site tried to register a study that is already registered for another patient."""


class ReleaseProofError(ReleaseError, ValueError):
    """A proof file (``proof.json``) of a release is missing, malformed or of another version."""


# --- DICOMweb service --------------------------------------------------------------------------


class ServiceError(ImagingConsentError):
    """The DICOMweb service refused a request before it reached the release gate."""


class AuthenticationError(ServiceError, PermissionError):
    """A request's sign-in or token is missing, expired, forged, replayed or for another server."""


class BadRequestError(ServiceError, ValueError):
    """A request names a malformed UID or an unsupported query key or header value."""


class NotAcceptableError(ServiceError, ValueError):
    """A request accepts no media type (or transfer syntax) the service can answer with."""


# --- Audit index -------------------------------------------------------------------------------


class AuditIndexError(ImagingConsentError):
    """The audit index cannot be opened or used: a corrupt or foreign database, or a bad URL."""


class IndexMismatchError(AuditIndexError, ValueError):
    """The audit index belongs to another chain or deployment than the one it is used with."""


class WebhookError(ImagingConsentError):
    """A notification webhook is misconfigured (its URL), or its endpoint refused a delivery."""
