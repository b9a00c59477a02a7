"""ConsentClient: grant, revoke, delegate, sign, relay and query consent on chain.

Writes go through a :class:`~imaging_consent.chain.TransactionSender`. Every input is checked
locally first (addresses, purposes, times, a signature's deadline, nonce and signer), so bad
input raises a typed error and sends nothing. What only the chain can judge (a grant window
already in the past, a missing grant, an EIP-1271 wallet's signature) is caught by gas
estimation, decoded from the contract's custom error, and still sends nothing.

Reads are never cached: :meth:`ConsentClient.is_permitted` is exactly one ``eth_call``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract.contract import ContractFunction

from imaging_consent.chain import TransactionReceipt, TransactionSender
from imaging_consent.chain.logs import DEFAULT_PAGE
from imaging_consent.consent.history import Grant, GrantHistory, grant_history
from imaging_consent.consent.inputs import (
    Timestamp,
    parse_address,
    parse_grantee,
    parse_scope,
    parse_seconds,
    parse_window,
)
from imaging_consent.consent.purposes import Purpose, purposes_from_mask, purposes_mask
from imaging_consent.consent.signing import (
    ConsentKind,
    SignedConsent,
    check_contents,
    domain_of,
    recover_signer,
    sign_typed_data,
    typed_data,
)
from imaging_consent.contracts.calls import fail_closed
from imaging_consent.contracts.consent_registry import Permission
from imaging_consent.contracts.deployment import Suite
from imaging_consent.contracts.revert import decode_revert
from imaging_consent.errors import (
    ContractRevertedError,
    InvalidSignatureError,
    ReadOnlyClientError,
    SignatureExpiredError,
    TransactionRevertedError,
)

__all__ = ["DEFAULT_SIGNATURE_LIFETIME", "ConsentClient", "Permission", "Timestamp"]

logger = logging.getLogger(__name__)

#: Seconds a signed consent stays relayable when no deadline is given.
DEFAULT_SIGNATURE_LIFETIME = 3600


class ConsentClient:
    """Grant, revoke and query consent in a deployed ConsentRegistry.

    Example::

        client = ConsentClient(suite, sender_for(session, patient_key))
        client.grant(doctor, None, ["TREAT"], identified=True)
        client.is_permitted(patient_key.address, doctor, study_key, "TREAT").permitted
    """

    def __init__(self, suite: Suite, sender: TransactionSender | None = None) -> None:
        """Make a client.

        Args:
            suite: The deployed contracts (``deployment.load(session, manifest)``).
            sender: Sends and pays for transactions (``deployment.sender_for``), or None for a
                read-only client. For ``grant`` and ``revoke`` it is the patient; for
                ``grant_for`` a delegate; for ``relay_*`` any funded account.
        """
        self.suite = suite
        self.sender = sender
        self._registry = suite.consent

    # --- writes --------------------------------------------------------------------------------

    def grant(
        self,
        grantee: str,
        scope: bytes | None,
        purposes: Iterable[Purpose | str],
        *,
        identified: bool,
        not_before: Timestamp = 0,
        expires_at: Timestamp = 0,
    ) -> TransactionReceipt:
        """Grant (or replace the grant of) ``grantee`` access to the sender's studies.

        Args:
            grantee: The account allowed access.
            scope: A 32-byte study key, or None for all of the sender's studies.
            purposes: Purposes of use (``Purpose`` members or codes such as ``"TREAT"``).
            identified: True to allow identified data; False for de-identified only.
            not_before: From when it applies (unix seconds or an aware datetime; 0: now).
            expires_at: When it ends (0: never). Must be after ``not_before`` and now.

        Raises:
            UnknownPurposeError: If a purpose is unknown or none is given.
            InvalidGrantError: If the grantee is zero, the scope malformed or the window bad.
            InvalidTimestampError: If a time is naive, negative or too large.
            InvalidAddressError: If the grantee is not an address.
            ReadOnlyClientError: If the client has no sender.
            TransactionError: If sending fails (typed subclasses for contract errors).
        """
        args = self._grant_args(grantee, scope, purposes, identified, not_before, expires_at)
        return self._transact(self._registry.grant(*args))

    def revoke(self, grantee: str, scope: bytes | None) -> TransactionReceipt:
        """Revoke the sender's grant to ``grantee`` for ``scope`` (None: all studies).

        Raises:
            GrantNotFoundError: If there is no such grant (nothing is sent).
            InvalidAddressError: If the grantee is not an address.
            ReadOnlyClientError: If the client has no sender.
        """
        target = parse_address(grantee, "grantee")
        return self._transact(self._registry.revoke(target, parse_scope(scope)))

    def set_delegate(self, delegate: str, allowed: bool = True) -> TransactionReceipt:
        """Appoint (or with ``allowed=False`` remove) a delegate for the sender.

        Raises:
            InvalidDelegateError: If the delegate is the zero address or the sender.
            InvalidAddressError: If the delegate is not an address.
            ReadOnlyClientError: If the client has no sender.
        """
        target = parse_address(delegate, "delegate")
        return self._transact(self._registry.set_delegate(target, bool(allowed)))

    def grant_for(
        self,
        patient: str,
        grantee: str,
        scope: bytes | None,
        purposes: Iterable[Purpose | str],
        *,
        identified: bool,
        not_before: Timestamp = 0,
        expires_at: Timestamp = 0,
    ) -> TransactionReceipt:
        """As :meth:`grant`, sent by a delegate of ``patient``.

        Raises:
            NotDelegateError: If the sender is not the patient's delegate (nothing is sent).
            UnknownPurposeError, InvalidGrantError, InvalidTimestampError: As :meth:`grant`.
        """
        owner = parse_address(patient, "patient")
        args = self._grant_args(grantee, scope, purposes, identified, not_before, expires_at)
        return self._transact(self._registry.grant_for(owner, *args))

    def revoke_for(self, patient: str, grantee: str, scope: bytes | None) -> TransactionReceipt:
        """As :meth:`revoke`, sent by a delegate of ``patient``.

        Raises:
            NotDelegateError: If the sender is not the patient's delegate (nothing is sent).
            GrantNotFoundError: If there is no such grant (nothing is sent).
        """
        owner = parse_address(patient, "patient")
        target = parse_address(grantee, "grantee")
        return self._transact(self._registry.revoke_for(owner, target, parse_scope(scope)))

    # --- reads ---------------------------------------------------------------------------------

    def is_permitted(
        self, patient: str, grantee: str, study_key: bytes, purpose: Purpose | str
    ) -> Permission:
        """Ask the chain, now, whether ``grantee`` may access ``study_key`` for ``purpose``.

        Exactly one ``eth_call`` at ``latest``; never cached. Honours a grant for the study
        and an all-studies grant.

        Raises:
            UnknownPurposeError: If ``purpose`` is unknown.
            ChainUnavailableError: If the chain cannot be reached (callers must fail closed).
        """
        bit = Purpose.parse(purpose).value
        return self._registry.is_permitted(
            parse_address(patient, "patient"),
            parse_address(grantee, "grantee"),
            parse_scope(study_key),
            bit,
        )

    def get_grant(self, patient: str, grantee: str, scope: bytes | None) -> Grant | None:
        """The stored grant for (patient, grantee, scope), or None if there is none.

        Raises:
            ChainUnavailableError: If the chain cannot be reached.
        """
        owner, target, key = (
            parse_address(patient, "patient"),
            parse_address(grantee, "grantee"),
            parse_scope(scope),
        )
        terms = self._registry.get_grant(owner, target, key)
        if terms is None:
            return None
        return Grant(
            owner,
            target,
            key,
            purposes_from_mask(terms.purposes),
            terms.identified,
            terms.not_before,
            terms.expires_at,
        )

    def grants_of(self, patient: str, *, page: int = DEFAULT_PAGE) -> GrantHistory:
        """The patient's stored grants and full history (incl. delegate changes), from events.

        Raises:
            LogQueryError: If the node refuses the log query even one block at a time.
            ChainUnavailableError: If the chain cannot be reached.
        """
        return grant_history(self.suite, patient=parse_address(patient, "patient"), page=page)

    def grants_to(self, grantee: str, *, page: int = DEFAULT_PAGE) -> GrantHistory:
        """The grants made to ``grantee`` and their history (incl. being made a delegate).

        Raises:
            LogQueryError: If the node refuses the log query even one block at a time.
            ChainUnavailableError: If the chain cannot be reached.
        """
        return grant_history(self.suite, grantee=parse_address(grantee, "grantee"), page=page)

    # --- signed consents -----------------------------------------------------------------------

    def sign_grant(
        self,
        patient: str,
        grantee: str,
        scope: bytes | None,
        purposes: Iterable[Purpose | str],
        *,
        identified: bool,
        not_before: Timestamp = 0,
        expires_at: Timestamp = 0,
        deadline: Timestamp | None = None,
        key: LocalAccount | None = None,
        nonce: int | None = None,
    ) -> SignedConsent:
        """Build the EIP-712 ``Grant`` a wallet signs, and sign it if ``key`` is given.

        Args:
            patient: The patient whose consent it is (the signer, or an EIP-1271 wallet).
            grantee, scope, purposes, identified, not_before, expires_at: As :meth:`grant`.
            deadline: Last chain time it may be relayed at; default latest block + 1 hour.
            key: The patient's key to sign locally; None returns the unsigned typed data for
                a wallet (``eth_signTypedData_v4``), to attach with ``with_signature``.
            nonce: The patient's nonce to use; default ``nonces(patient)`` now.

        Raises:
            UnknownPurposeError, InvalidGrantError, InvalidTimestampError: As :meth:`grant`.
            WrongChainError: If the contract's domain names another chain.
        """
        grantee_, scope_, mask, identified_, start, end = self._grant_args(
            grantee, scope, purposes, identified, not_before, expires_at
        )
        return self._sign(
            "grant",
            patient,
            {
                "grantee": grantee_,
                "scope": "0x" + scope_.hex(),
                "purposes": mask,
                "identified": identified_,
                "notBefore": start,
                "expiresAt": end,
            },
            deadline,
            key,
            nonce,
        )

    def sign_revoke(
        self,
        patient: str,
        grantee: str,
        scope: bytes | None,
        *,
        deadline: Timestamp | None = None,
        key: LocalAccount | None = None,
        nonce: int | None = None,
    ) -> SignedConsent:
        """Build (and with ``key``, sign) the EIP-712 ``Revoke``; see :meth:`sign_grant`.

        Raises:
            InvalidAddressError: If an address is malformed.
            WrongChainError: If the contract's domain names another chain.
        """
        fields = {
            "grantee": parse_address(grantee, "grantee"),
            "scope": "0x" + parse_scope(scope).hex(),
        }
        return self._sign("revoke", patient, fields, deadline, key, nonce)

    def relay_grant(self, signed: SignedConsent, *, check: bool = True) -> TransactionReceipt:
        """Submit a signed ``Grant`` with ``grantBySig``; the sender pays the gas.

        Args:
            signed: From :meth:`sign_grant` (signed by a key or a wallet).
            check: Check deadline, nonce, signer and contents locally first (default). With
                False the chain alone judges; its errors are still typed and nothing is sent.

        Raises:
            SignatureExpiredError: If the latest block is past the deadline.
            InvalidSignatureError: If unsigned, already used (nonce), for another nonce or
                contract, or not signed by the patient.
            InvalidGrantError: If the signed grant itself is invalid.
            ReadOnlyClientError: If the client has no sender.
        """
        message = self._relayable(signed, "grant", check)
        function = self._registry.grant_by_sig(
            Web3.to_checksum_address(message["patient"]),
            Web3.to_checksum_address(message["grantee"]),
            parse_scope(message["scope"]),
            int(message["purposes"]),
            bool(message["identified"]),
            int(message["notBefore"]),
            int(message["expiresAt"]),
            int(message["deadline"]),
            signed.signature or b"",
        )
        return self._transact(function)

    def relay_revoke(self, signed: SignedConsent, *, check: bool = True) -> TransactionReceipt:
        """Submit a signed ``Revoke`` with ``revokeBySig``; see :meth:`relay_grant`.

        Raises:
            SignatureExpiredError: If the latest block is past the deadline.
            InvalidSignatureError: If unsigned, already used or not signed by the patient.
            GrantNotFoundError: If there is no grant to revoke (nothing is sent).
        """
        message = self._relayable(signed, "revoke", check)
        function = self._registry.revoke_by_sig(
            Web3.to_checksum_address(message["patient"]),
            Web3.to_checksum_address(message["grantee"]),
            parse_scope(message["scope"]),
            int(message["deadline"]),
            signed.signature or b"",
        )
        return self._transact(function)

    # --- internals -----------------------------------------------------------------------------

    def _grant_args(
        self,
        grantee: str,
        scope: bytes | None,
        purposes: Iterable[Purpose | str],
        identified: bool,
        not_before: Timestamp,
        expires_at: Timestamp,
    ) -> tuple[ChecksumAddress, bytes, int, bool, int, int]:
        mask = purposes_mask(purposes)
        start, end = parse_window(not_before, expires_at)
        return parse_grantee(grantee), parse_scope(scope), mask, bool(identified), start, end

    def _sign(
        self,
        kind: ConsentKind,
        patient: str,
        fields: dict[str, Any],
        deadline: Timestamp | None,
        key: LocalAccount | None,
        nonce: int | None,
    ) -> SignedConsent:
        owner = parse_address(patient, "patient")
        if deadline is None:
            latest = int(
                self._read(lambda: self.suite.session.w3.eth.get_block("latest"))["timestamp"]
            )
            due = latest + DEFAULT_SIGNATURE_LIFETIME
        else:
            due = parse_seconds(deadline, "deadline")
        if nonce is None:
            nonce = self._registry.nonce(owner)
        domain_types, domain = domain_of(
            self._registry.eip712_domain(), self.suite.session.chain_id
        )
        message = {"patient": owner, **fields, "nonce": int(nonce), "deadline": due}
        data = typed_data(kind, domain_types, domain, message)
        signature = None if key is None else sign_typed_data(data, key)
        return SignedConsent(kind, data, signature)

    def _relayable(self, signed: SignedConsent, kind: str, check: bool) -> dict[str, Any]:
        message = check_contents(
            signed, kind, self._registry.address, self.suite.session.chain_id, check=check
        )
        if not check:
            return message
        patient = signed.patient
        w3 = self.suite.session.w3
        latest = int(self._read(lambda: w3.eth.get_block("latest"))["timestamp"])
        if latest > signed.deadline:
            raise SignatureExpiredError(
                f"the signed {kind} expired: its deadline {signed.deadline} is before the "
                f"latest block time {latest}; ask the patient to sign again"
            )
        current = self._registry.nonce(patient)
        if signed.nonce < current:
            raise InvalidSignatureError(
                f"the signed {kind} was already used: its nonce {signed.nonce} is below the "
                f"patient's next nonce {current} (replayed or superseded signature)"
            )
        if signed.nonce > current:
            raise InvalidSignatureError(
                f"the signed {kind} carries nonce {signed.nonce}, but the patient's next nonce "
                f"is {current}; relay the earlier signatures first or sign again"
            )
        if not self._read(lambda: w3.eth.get_code(patient)):
            signer = recover_signer(signed.typed_data, signed.signature or b"")
            if signer != patient:
                raise InvalidSignatureError(
                    f"the signed {kind} was signed by {signer}, not by patient {patient}"
                )
        # A patient with code is a contract wallet: the chain checks it through EIP-1271.
        return message

    def _transact(self, function: ContractFunction) -> TransactionReceipt:
        if self.sender is None:
            raise ReadOnlyClientError(
                "this ConsentClient has no transaction sender; pass sender= to send"
            )
        try:
            return self.sender.transact(function)
        except ContractRevertedError as exc:
            # A sender without the suite's decoder raises the plain class: decode it here.
            if type(exc) in (TransactionRevertedError, ContractRevertedError) and exc.revert_data:
                decoded = decode_revert(exc.revert_data)
                decoded.revert_data, decoded.tx_hash = exc.revert_data, exc.tx_hash
                raise decoded from exc
            raise

    def _read(self, read: Any) -> Any:
        with fail_closed(self.suite.session):
            return read()
