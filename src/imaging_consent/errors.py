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


class WrongChainError(ChainError, ValueError):
    """The endpoint serves a different chain id than the one expected."""


class LocalChainError(ChainError, RuntimeError):
    """A local development chain (Ganache or Anvil) could not be started."""


class ChainBinaryNotFoundError(LocalChainError, FileNotFoundError):
    """The ``ganache`` or ``anvil`` executable is not installed (run ``npm ci``)."""


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
    """

    def __init__(
        self, message: str, *, revert_data: bytes = b"", tx_hash: str | None = None
    ) -> None:
        super().__init__(message)
        self.revert_data = revert_data
        self.tx_hash = tx_hash


class TransactionRevertedError(ContractRevertedError):
    """A transaction reverted: in gas estimation (nothing sent) or when mined (``tx_hash``)."""


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


# --- dicom -------------------------------------------------------------------------------------


class DicomError(ImagingConsentError, ValueError):
    """A DICOM file could not be read or processed."""


# --- release -----------------------------------------------------------------------------------


class ReleaseError(ImagingConsentError):
    """The gateway refused to release images, or could not prove it may."""
