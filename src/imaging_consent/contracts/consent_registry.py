"""The typed binding of ConsentRegistry: grants, delegates, signed consents and the check.

:meth:`ConsentRegistry.is_permitted` is the hot path: calldata encoded and the answer decoded
with ``eth_abi`` directly, one ``eth_call``, never cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier

from imaging_consent.contracts.binding import Binding, FastCall
from imaging_consent.contracts.calls import call

__all__ = [
    "ALL_STUDIES",
    "MAX_SIGNATURE_LIFETIME",
    "ConsentRegistry",
    "Delegation",
    "Eip712Domain",
    "GrantArgs",
    "GrantTerms",
    "Permission",
    "read_eip712_domain",
]

ALL_STUDIES = bytes(32)
"""The scope of a grant that covers all of the patient's studies."""

MAX_SIGNATURE_LIFETIME = 30 * 24 * 3600
"""The longest a signed consent may stay valid (``deadline - issuedAt``), in seconds."""

_IS_PERMITTED = FastCall("isPermitted(address,address,bytes32,uint8)", ("bool", "bool"))


@dataclass(frozen=True, slots=True)
class Permission:
    """The chain's answer to "may this grantee access this study for this purpose now?".

    Attributes:
        permitted: Whether access is permitted at the block asked.
        identified: Whether identified data may be released (False: de-identified only).
    """

    permitted: bool
    identified: bool


class GrantArgs(NamedTuple):
    """What a grant sets, in the contract's argument order (after the patient, if any).

    Attributes:
        grantee: The account allowed access.
        scope: A study key, or :data:`ALL_STUDIES`.
        purposes: Bitmask of PurposeOfUse bit indexes.
        identified: Whether identified data may be released.
        not_before: Unix time it starts (0: at once).
        expires_at: Unix time it ends (0: never).
    """

    grantee: ChecksumAddress
    scope: bytes
    purposes: int
    identified: bool
    not_before: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class GrantTerms:
    """A grant slot, as ``getGrant`` returns it.

    Attributes:
        purposes: Bitmask of PurposeOfUse bit indexes (0: revoked or never granted).
        identified: Whether identified data may be released.
        not_before: Unix time the grant starts (0: at once).
        expires_at: Unix time the grant ends (0: never).
        issued_at: When the current state was issued (a signature's ``issuedAt``, or the
            block time of a direct change). Grant signatures issued at or before it are void.
        delegation: The id of the delegation that made the grant (0: the patient did).
    """

    purposes: int
    identified: bool
    not_before: int
    expires_at: int
    issued_at: int
    delegation: int

    @property
    def live(self) -> bool:
        """True if the slot holds a grant (not a revocation tombstone or nothing)."""
        return self.purposes != 0


@dataclass(frozen=True, slots=True)
class Delegation:
    """A patient's active delegation to one delegate (guardian).

    Attributes:
        scope: The study key it covers, or :data:`ALL_STUDIES`.
        expires_at: Unix time it ends.
        delegation: Its id (a new one each time the patient sets it).
    """

    scope: bytes
    expires_at: int
    delegation: int


@dataclass(frozen=True, slots=True)
class Eip712Domain:
    """The contract's EIP-712 domain, as ERC-5267 ``eip712Domain()`` reports it."""

    fields: int
    name: str
    version: str
    chain_id: int
    verifying_contract: ChecksumAddress
    salt: bytes
    extensions: tuple[int, ...]


def read_eip712_domain(binding: Binding) -> Eip712Domain:
    """Read a contract's ERC-5267 ``eip712Domain()`` (one ``eth_call``).

    Raises:
        ChainUnavailableError: If the chain cannot be reached.
    """
    fields, name, version, chain_id, verifying, salt, extensions = call(
        binding.session, binding.functions.eip712Domain()
    )
    bits = fields[0] if isinstance(fields, bytes | bytearray) else int(fields)
    return Eip712Domain(
        fields=bits,
        name=str(name),
        version=str(version),
        chain_id=int(chain_id),
        verifying_contract=Web3.to_checksum_address(verifying),
        salt=bytes(salt),
        extensions=tuple(int(e) for e in extensions),
    )


class ConsentRegistry(Binding):
    """ConsentRegistry at one address (see ``interfaces/IConsentRegistry.sol``)."""

    NAME = "ConsentRegistry"

    # --- reads ---------------------------------------------------------------------------------

    def is_permitted(
        self,
        patient: ChecksumAddress,
        grantee: ChecksumAddress,
        study_key: bytes,
        purpose: int,
        block: BlockIdentifier = "latest",
    ) -> Permission:
        """May ``grantee`` access ``study_key`` of ``patient`` for purpose bit ``purpose``?

        Raises:
            ChainUnavailableError: If the chain cannot be reached or answers unclearly.
        """
        permitted, identified = _IS_PERMITTED(self, (patient, grantee, study_key, purpose), block)
        return Permission(bool(permitted), bool(identified))

    def get_grant(
        self, patient: ChecksumAddress, grantee: ChecksumAddress, scope: bytes
    ) -> GrantTerms:
        """The grant slot for (patient, grantee, scope): live, a tombstone, or empty.

        Raises:
            ChainUnavailableError: If the chain cannot be reached.
        """
        purposes, identified, not_before, expires_at, issued_at, delegation = self._read(
            self.functions.getGrant(patient, grantee, scope)
        )
        return GrantTerms(
            int(purposes),
            bool(identified),
            int(not_before),
            int(expires_at),
            int(issued_at),
            int(delegation),
        )

    def delegation(self, patient: ChecksumAddress, delegate: ChecksumAddress) -> Delegation | None:
        """The patient's active delegation to ``delegate``, or None."""
        scope, expires_at, delegation = self._read(self.functions.getDelegation(patient, delegate))
        if int(delegation) == 0:
            return None
        return Delegation(bytes(scope), int(expires_at), int(delegation))

    def is_excluded(self, patient: ChecksumAddress, study_key: bytes) -> bool:
        """True if the patient keeps ``study_key`` out of every all-studies grant."""
        return bool(self._read(self.functions.isExcluded(patient, study_key)))

    def eip712_domain(self) -> Eip712Domain:
        """The EIP-712 domain the contract verifies signatures under (one ``eth_call``)."""
        return read_eip712_domain(self)

    # --- transactions --------------------------------------------------------------------------

    def grant(self, args: GrantArgs) -> ContractFunction:
        """The patient's own ``grant`` transaction."""
        return self.functions.grant(*args)

    def revoke(self, grantee: ChecksumAddress, scope: bytes) -> ContractFunction:
        """The patient's own ``revoke`` transaction."""
        return self.functions.revoke(grantee, scope)

    def cancel_signatures(self, grantee: ChecksumAddress, scope: bytes) -> ContractFunction:
        """The patient's ``cancelSignatures``: void every outstanding signature for a grant."""
        return self.functions.cancelSignatures(grantee, scope)

    def set_exclusion(self, study_key: bytes, excluded: bool) -> ContractFunction:
        """The patient's ``setExclusion`` transaction."""
        return self.functions.setExclusion(study_key, excluded)

    def set_delegate(
        self, delegate: ChecksumAddress, scope: bytes, expires_at: int
    ) -> ContractFunction:
        """The patient's ``setDelegate`` transaction (``expires_at`` 0 removes the delegate)."""
        return self.functions.setDelegate(delegate, scope, expires_at)

    def grant_for(self, patient: ChecksumAddress, args: GrantArgs) -> ContractFunction:
        """A delegate's ``grantFor`` transaction."""
        return self.functions.grantFor(patient, *args)

    def revoke_for(
        self, patient: ChecksumAddress, grantee: ChecksumAddress, scope: bytes
    ) -> ContractFunction:
        """A delegate's ``revokeFor`` transaction."""
        return self.functions.revokeFor(patient, grantee, scope)

    def grant_by_sig(
        self,
        patient: ChecksumAddress,
        args: GrantArgs,
        issued_at: int,
        deadline: int,
        signature: bytes,
    ) -> ContractFunction:
        """A relayed ``grantBySig`` transaction."""
        return self.functions.grantBySig(patient, *args, issued_at, deadline, signature)

    def revoke_by_sig(
        self,
        patient: ChecksumAddress,
        grantee: ChecksumAddress,
        scope: bytes,
        issued_at: int,
        deadline: int,
        signature: bytes,
    ) -> ContractFunction:
        """A relayed ``revokeBySig`` transaction."""
        return self.functions.revokeBySig(patient, grantee, scope, issued_at, deadline, signature)

    def cancel_by_sig(
        self,
        patient: ChecksumAddress,
        grantee: ChecksumAddress,
        scope: bytes,
        issued_at: int,
        deadline: int,
        signature: bytes,
    ) -> ContractFunction:
        """A relayed ``cancelBySig`` transaction."""
        return self.functions.cancelBySig(patient, grantee, scope, issued_at, deadline, signature)
