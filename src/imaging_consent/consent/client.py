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

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract.contract import ContractFunction

from imaging_consent.chain import TransactionReceipt, TransactionSender
from imaging_consent.chain.logs import DEFAULT_PAGE, fetch_logs
from imaging_consent.consent.explain import Decision, explain
from imaging_consent.consent.history import Grant, GrantHistory, grant_history
from imaging_consent.consent.inputs import (
    Timestamp,
    parse_address,
    parse_scope,
    parse_seconds,
)
from imaging_consent.consent.purposes import Purpose, purposes_from_mask
from imaging_consent.consent.relay import DEFAULT_SIGNATURE_LIFETIME, SignedConsents
from imaging_consent.contracts.calls import fail_closed
from imaging_consent.contracts.consent_registry import ALL_STUDIES, Permission
from imaging_consent.contracts.deployment import Suite
from imaging_consent.contracts.revert import decode_revert
from imaging_consent.errors import (
    ContractRevertedError,
    InvalidGrantError,
    InvalidTimestampError,
    ReadOnlyClientError,
    StudyNotRegisteredError,
    TransactionRevertedError,
)

__all__ = ["DEFAULT_SIGNATURE_LIFETIME", "ConsentClient", "Permission", "Timestamp"]

logger = logging.getLogger(__name__)


class ConsentClient(SignedConsents):
    """Grant, revoke, sign, relay and query consent in a deployed ConsentRegistry.

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
            InvalidGrantError: If the grantee is zero or the sender (the patient) itself, the
                scope malformed or the window bad.
            InvalidTimestampError: If a time is naive, negative or too large.
            InvalidAddressError: If the grantee is not an address.
            ReadOnlyClientError: If the client has no sender.
            TransactionError: If sending fails (typed subclasses for contract errors).
        """
        patient = self.sender.address if self.sender is not None else None
        args = self._grant_args(
            grantee, scope, purposes, identified, not_before, expires_at, patient
        )
        return self._transact(self._registry.grant(args))

    def revoke(self, grantee: str, scope: bytes | None) -> TransactionReceipt:
        """Revoke the sender's grant to ``grantee`` for ``scope`` (None: all studies).

        Never fails for a missing grant: it also voids every outstanding signature for that
        grant. Revoking a study-scoped grant lifts its override, so an all-studies grant to the
        same grantee (see :meth:`get_grant` with scope None) applies to the study again.

        Raises:
            InvalidAddressError: If the grantee is not an address.
            ReadOnlyClientError: If the client has no sender.
        """
        target = parse_address(grantee, "grantee")
        return self._transact(self._registry.revoke(target, parse_scope(scope)))

    def cancel_signatures(self, grantee: str, scope: bytes | None) -> TransactionReceipt:
        """Void every outstanding signed consent for (sender, grantee, scope), keeping the grant.

        Raises:
            InvalidAddressError: If the grantee is not an address.
            ReadOnlyClientError: If the client has no sender.
        """
        target = parse_address(grantee, "grantee")
        return self._transact(self._registry.cancel_signatures(target, parse_scope(scope)))

    def set_exclusion(self, study_key: bytes, excluded: bool = True) -> TransactionReceipt:
        """Keep one study out of every all-studies grant (``excluded=False`` lifts it).

        A study-scoped grant still decides for its grantee: an exclusion only overrides
        all-studies grants.

        Raises:
            InvalidGrantError: If ``study_key`` is not a 32-byte study key.
            ReadOnlyClientError: If the client has no sender.
        """
        key = parse_scope(study_key)
        if key == ALL_STUDIES:
            raise InvalidGrantError("an exclusion needs a study key, not all studies")
        return self._transact(self._registry.set_exclusion(key, bool(excluded)))

    def set_delegate(
        self, delegate: str, *, expires_at: Timestamp, scope: bytes | None = None
    ) -> TransactionReceipt:
        """Appoint a delegate (guardian) for the sender, for ``scope``, until ``expires_at``.

        Every grant the delegate makes ends when the delegation ends or is removed.

        Raises:
            InvalidDelegateError: If the delegate is the zero address or the sender, or the
                expiry is not in the future.
            InvalidAddressError: If the delegate is not an address.
            InvalidTimestampError: If ``expires_at`` is 0 or malformed (use
                :meth:`remove_delegate` to remove one).
            ReadOnlyClientError: If the client has no sender.
        """
        target = parse_address(delegate, "delegate")
        end = parse_seconds(expires_at, "expires_at")
        if end == 0:
            raise InvalidTimestampError("a delegation needs an expiry; use remove_delegate")
        return self._transact(self._registry.set_delegate(target, parse_scope(scope), end))

    def remove_delegate(self, delegate: str) -> TransactionReceipt:
        """Remove the sender's delegate; every grant it made stops at once.

        Raises:
            InvalidAddressError: If the delegate is not an address.
            ReadOnlyClientError: If the client has no sender.
        """
        target = parse_address(delegate, "delegate")
        return self._transact(self._registry.set_delegate(target, ALL_STUDIES, 0))

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

        The grant ends no later than the delegation (``expires_at`` 0 means: when the
        delegation ends), and stops when the patient removes the delegate.

        Raises:
            NotDelegateError: If the sender is not the patient's delegate for ``scope``, or
                the grant would outlive the delegation (nothing is sent).
            InvalidGrantError: If the grantee is the delegate or the patient, or as
                :meth:`grant`.
            UnknownPurposeError, InvalidTimestampError: As :meth:`grant`.
        """
        owner = parse_address(patient, "patient")
        if expires_at == 0 and self.sender is not None:
            delegation = self._registry.delegation(owner, self.sender.address)
            expires_at = delegation.expires_at if delegation is not None else 0
        args = self._grant_args(grantee, scope, purposes, identified, not_before, expires_at, owner)
        return self._transact(self._registry.grant_for(owner, args))

    def revoke_for(self, patient: str, grantee: str, scope: bytes | None) -> TransactionReceipt:
        """As :meth:`revoke`, sent by a delegate of ``patient``.

        Raises:
            NotDelegateError: If the sender is not the patient's delegate for ``scope``.
        """
        owner = parse_address(patient, "patient")
        target = parse_address(grantee, "grantee")
        return self._transact(self._registry.revoke_for(owner, target, parse_scope(scope)))

    # --- reads ---------------------------------------------------------------------------------

    def is_permitted(
        self, patient: str, grantee: str, study_key: bytes, purpose: Purpose | str
    ) -> Permission:
        """Ask the chain, now, whether ``grantee`` may access ``study_key`` for ``purpose``.

        Exactly one ``eth_call`` at ``latest``; never cached. The most specific grant in force
        decides: a grant for the study, else (unless the patient excluded the study) an
        all-studies grant.

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
        if not terms.live:
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

    def explain(
        self,
        patient: str,
        grantee: str,
        study_key: bytes | None,
        purpose: Purpose | str,
        *,
        identified: bool = False,
    ) -> Decision:
        """As :meth:`is_permitted`, with the reason: which grant decided, or why none did.

        See :func:`imaging_consent.consent.explain.explain`.

        Raises:
            InvalidAddressError: If an address is malformed.
            UnknownPurposeError: If ``purpose`` is unknown.
            ChainUnavailableError: If the chain cannot be reached.
        """
        return explain(self.suite, patient, grantee, study_key, purpose, identified=identified)

    def registered_sites(
        self, patient: str, study_key: bytes, *, page: int = DEFAULT_PAGE
    ) -> tuple[ChecksumAddress, ...]:
        """The sites holding a study under ``study_key`` whose patient is ``patient`` now.

        A study key is namespaced by site, so the same key may be registered by several sites;
        this reads every ``StudyRegistered`` event for the key, then each site's current record
        (so corrected and retired studies count as they are now).

        Raises:
            InvalidAddressError: If ``patient`` is malformed.
            InvalidGrantError: If ``study_key`` is not 32 bytes.
            LogQueryError: If the node refuses the log query.
            ChainUnavailableError: If the chain cannot be reached.
        """
        owner, key = parse_address(patient, "patient"), parse_scope(study_key)
        studies = self.suite.studies
        logs = fetch_logs(
            self.suite.session,
            studies.events.StudyRegistered,
            {"studyKey": key},
            self.suite.manifest.block_number,
            page=page,
        )
        found: list[ChecksumAddress] = []
        for site in dict.fromkeys(Web3.to_checksum_address(log["args"]["site"]) for log in logs):
            try:
                if studies.study(site, key).patient == owner:
                    found.append(site)
            except StudyNotRegisteredError:  # retired since
                continue
        return tuple(found)

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

    # --- internals -----------------------------------------------------------------------------

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

    def _latest_time(self) -> int:
        with fail_closed(self.suite.session):
            return int(self.suite.session.w3.eth.get_block("latest")["timestamp"])

    def _has_code(self, account: str) -> bool:
        with fail_closed(self.suite.session):
            return bool(self.suite.session.w3.eth.get_code(Web3.to_checksum_address(account)))
