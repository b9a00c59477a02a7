"""Signed consents: build the EIP-712 Grant, Revoke and Cancel a wallet signs, and relay them.

A signature carries ``issuedAt`` (chain time when it was made) and a ``deadline`` at most
:data:`~imaging_consent.contracts.consent_registry.MAX_SIGNATURE_LIFETIME` later. Relaying is
checked locally first (domain, contents, deadline, signer, and for a grant that it is newer
than the grant's current state), so a bad signature sends nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from eth_account.signers.local import LocalAccount
from web3 import Web3

from imaging_consent.chain import TransactionReceipt
from imaging_consent.chain.keys import write_private_file
from imaging_consent.consent.inputs import (
    Timestamp,
    iso_time,
    parse_address,
    parse_grantee,
    parse_scope,
    parse_seconds,
    parse_window,
)
from imaging_consent.consent.purposes import Purpose, purposes_mask
from imaging_consent.consent.signing import (
    ConsentKind,
    SignedConsent,
    check_contents,
    domain_of,
    recover_signer,
    sign_typed_data,
    typed_data,
)
from imaging_consent.contracts.consent_registry import (
    MAX_SIGNATURE_LIFETIME,
    ConsentRegistry,
    GrantArgs,
)
from imaging_consent.contracts.deployment import Suite
from imaging_consent.errors import (
    InvalidSignatureError,
    SignatureExpiredError,
    SupersededSignatureError,
)

__all__ = ["DEFAULT_SIGNATURE_LIFETIME", "SignedConsents", "save_signed_consent"]

logger = logging.getLogger(__name__)

#: Seconds a signed consent stays relayable when no deadline is given.
DEFAULT_SIGNATURE_LIFETIME = 3600


def save_signed_consent(signed: SignedConsent, path: str | os.PathLike[str]) -> Path:
    """Write a signed consent's JSON to a file only its owner can read (mode 0600).

    A signed consent is a bearer credential until its deadline: whoever holds it can relay it.
    The file is written atomically and is never readable by others, even for a moment.

    Raises:
        OSError: If it cannot be written (``filename`` is ``path``).
    """
    return write_private_file(path, signed.to_json() + "\n")


class SignedConsents:
    """The signing and relaying half of :class:`~imaging_consent.consent.ConsentClient`."""

    suite: Suite
    _registry: ConsentRegistry

    def _transact(self, function: Any) -> TransactionReceipt:
        raise NotImplementedError

    def _grant_args(
        self,
        grantee: str,
        scope: bytes | None,
        purposes: Iterable[Purpose | str],
        identified: bool,
        not_before: Timestamp,
        expires_at: Timestamp,
        patient: str | None,
    ) -> GrantArgs:
        """Check a grant's inputs locally; raise a typed error before anything is sent.

        ``patient`` (when known) may not be the grantee: a grant to oneself is refused.
        """
        start, end = parse_window(not_before, expires_at)
        mask = purposes_mask(purposes)
        return GrantArgs(
            parse_grantee(grantee, patient), parse_scope(scope), mask, bool(identified), start, end
        )

    def _latest_time(self) -> int:
        raise NotImplementedError

    def _has_code(self, account: str) -> bool:
        raise NotImplementedError

    # --- signing -------------------------------------------------------------------------------

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
        issued_at: int | None = None,
    ) -> SignedConsent:
        """Build the EIP-712 ``Grant`` a wallet signs, and sign it if ``key`` is given.

        Args:
            patient: The patient whose consent it is (the signer, or an EIP-1271 wallet).
            grantee, scope, purposes, identified, not_before, expires_at: As ``grant``.
            deadline: Last chain time it may be relayed at; default issuedAt + 1 hour, at most
                30 days after issuedAt.
            key: The patient's key to sign locally; None returns the unsigned typed data for
                a wallet (``eth_signTypedData_v4``), to attach with ``with_signature``.
            issued_at: Its place in the grant's history; default the latest block time, or one
                second after the grant's current state if that is not older.

        Raises:
            UnknownPurposeError, InvalidGrantError, InvalidTimestampError: As ``grant`` (so
                also a grant to the patient's own address).
            InvalidSignatureError: If the deadline is more than 30 days after issuedAt.
            WrongChainError: If the contract's domain names another chain.
        """
        args = self._grant_args(
            grantee, scope, purposes, identified, not_before, expires_at, patient
        )
        fields = {
            "grantee": args.grantee,
            "scope": "0x" + args.scope.hex(),
            "purposes": args.purposes,
            "identified": args.identified,
            "notBefore": args.not_before,
            "expiresAt": args.expires_at,
        }
        return self._sign("grant", patient, fields, deadline, key, issued_at)

    def sign_revoke(
        self,
        patient: str,
        grantee: str,
        scope: bytes | None,
        *,
        deadline: Timestamp | None = None,
        key: LocalAccount | None = None,
        issued_at: int | None = None,
    ) -> SignedConsent:
        """Build (and with ``key``, sign) the EIP-712 ``Revoke``; see :meth:`sign_grant`.

        A signed revocation can never be made to fail by anyone else's transaction, and never
        revokes a grant the patient signed or made after it.
        """
        return self._sign_plain("revoke", patient, grantee, scope, deadline, key, issued_at)

    def sign_cancel(
        self,
        patient: str,
        grantee: str,
        scope: bytes | None,
        *,
        deadline: Timestamp | None = None,
        key: LocalAccount | None = None,
        issued_at: int | None = None,
    ) -> SignedConsent:
        """Build (and sign) a ``Cancel``: it voids every grant signature for (grantee, scope)
        issued at or before it, and leaves the current grant as it is."""
        return self._sign_plain("cancel", patient, grantee, scope, deadline, key, issued_at)

    # --- relaying ------------------------------------------------------------------------------

    def relay_grant(self, signed: SignedConsent, *, check: bool = True) -> TransactionReceipt:
        """Submit a signed ``Grant`` with ``grantBySig``; the sender pays the gas.

        Args:
            signed: From :meth:`sign_grant` (signed by a key or a wallet).
            check: Check deadline, ordering, signer and contents locally first (default).
                With False the chain alone judges; its errors are still typed and nothing is
                sent.

        Raises:
            SignatureExpiredError: If the latest block is past the deadline.
            SupersededSignatureError: If the grant changed after it was signed, or it was
                used or cancelled.
            InvalidSignatureError: If unsigned, for another contract or chain, not yet valid,
                or not signed by the patient.
            InvalidGrantError: If the signed grant itself is invalid.
            ReadOnlyClientError: If the client has no sender.
        """
        m = self._relayable(signed, "grant", check)
        return self._transact(
            self._registry.grant_by_sig(
                Web3.to_checksum_address(m["patient"]),
                GrantArgs(
                    Web3.to_checksum_address(m["grantee"]),
                    parse_scope(m["scope"]),
                    int(m["purposes"]),
                    bool(m["identified"]),
                    int(m["notBefore"]),
                    int(m["expiresAt"]),
                ),
                int(m["issuedAt"]),
                int(m["deadline"]),
                signed.signature or b"",
            )
        )

    def relay_revoke(self, signed: SignedConsent, *, check: bool = True) -> TransactionReceipt:
        """Submit a signed ``Revoke`` with ``revokeBySig``; see :meth:`relay_grant`.

        Never fails because of someone else's transaction. If the grant changed after the
        revocation was signed, the chain leaves it as it is (``SignatureSuperseded``).
        """
        return self._relay_plain(signed, "revoke", check)

    def relay_cancel(self, signed: SignedConsent, *, check: bool = True) -> TransactionReceipt:
        """Submit a signed ``Cancel`` with ``cancelBySig``; see :meth:`relay_grant`."""
        return self._relay_plain(signed, "cancel", check)

    # --- internals -----------------------------------------------------------------------------

    def _sign_plain(
        self,
        kind: Literal["revoke", "cancel"],
        patient: str,
        grantee: str,
        scope: bytes | None,
        deadline: Timestamp | None,
        key: LocalAccount | None,
        issued_at: int | None,
    ) -> SignedConsent:
        fields = {
            "grantee": parse_address(grantee, "grantee"),
            "scope": "0x" + parse_scope(scope).hex(),
        }
        return self._sign(kind, patient, fields, deadline, key, issued_at)

    def _relay_plain(self, signed: SignedConsent, kind: str, check: bool) -> TransactionReceipt:
        m = self._relayable(signed, kind, check)
        build = self._registry.revoke_by_sig if kind == "revoke" else self._registry.cancel_by_sig
        return self._transact(
            build(
                Web3.to_checksum_address(m["patient"]),
                Web3.to_checksum_address(m["grantee"]),
                parse_scope(m["scope"]),
                int(m["issuedAt"]),
                int(m["deadline"]),
                signed.signature or b"",
            )
        )

    def _sign(
        self,
        kind: ConsentKind,
        patient: str,
        fields: dict[str, Any],
        deadline: Timestamp | None,
        key: LocalAccount | None,
        issued_at: int | None,
    ) -> SignedConsent:
        owner = parse_address(patient, "patient")
        if issued_at is None:
            issued_at = self._latest_time()
            if kind == "grant":
                current = self._registry.get_grant(
                    owner, fields["grantee"], parse_scope(fields["scope"])
                )
                issued_at = max(issued_at, current.issued_at + 1)
        issued = parse_seconds(issued_at, "issued_at")
        due = (
            issued + DEFAULT_SIGNATURE_LIFETIME
            if deadline is None
            else parse_seconds(deadline, "deadline")
        )
        if due - issued > MAX_SIGNATURE_LIFETIME:
            raise InvalidSignatureError(
                f"the deadline is {(due - issued) / 86400:.1f} days after issuedAt; a signed "
                f"consent may stay valid for at most {MAX_SIGNATURE_LIFETIME // 86400} days"
            )
        domain_types, domain = domain_of(
            self._registry.eip712_domain(), self.suite.session.chain_id
        )
        message = {"patient": owner, **fields, "issuedAt": issued, "deadline": due}
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
        latest = self._latest_time()
        if latest > signed.deadline:
            raise SignatureExpiredError(
                f"the signed {kind} expired: its deadline {iso_time(signed.deadline)} is before "
                f"the latest block time {iso_time(latest)}; ask the patient to sign again"
            )
        if signed.deadline - signed.issued_at > MAX_SIGNATURE_LIFETIME:
            raise InvalidSignatureError(
                f"the signed {kind} stays valid for more than 30 days; ask for a new one"
            )
        if signed.issued_at > latest:
            raise InvalidSignatureError(
                f"the signed {kind} is issued at {iso_time(signed.issued_at)}, after the latest "
                f"block time {iso_time(latest)}; relay it once the chain has reached that time"
            )
        if kind == "grant":
            current = self._registry.get_grant(
                patient, parse_address(message["grantee"], "grantee"), parse_scope(message["scope"])
            )
            if signed.issued_at <= current.issued_at:
                raise SupersededSignatureError(
                    f"the signed grant (issued {iso_time(signed.issued_at)}) is superseded: the "
                    f"grant changed at {iso_time(current.issued_at)} (a newer or same-second "
                    "change wins), or this signature was used or cancelled"
                )
        if not self._has_code(patient):
            signer = recover_signer(signed.typed_data, signed.signature or b"")
            if signer != patient:
                raise InvalidSignatureError(
                    f"the signed {kind} was signed by {signer}, not by patient {patient}"
                )
        # A patient with code is a contract wallet: the chain checks it through EIP-1271.
        return message
