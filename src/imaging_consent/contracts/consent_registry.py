"""The typed binding of ConsentRegistry: grants, delegates, signed consents and the check.

:meth:`ConsentRegistry.is_permitted` is the hot path: calldata encoded and the answer decoded
with ``eth_abi`` directly, one ``eth_call``, never cached.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier

from imaging_consent.contracts.binding import Binding, FastCall

__all__ = ["ALL_STUDIES", "ConsentRegistry", "Eip712Domain", "GrantTerms", "Permission"]

ALL_STUDIES = bytes(32)
"""The scope of a grant that covers all of the patient's studies."""

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


@dataclass(frozen=True, slots=True)
class GrantTerms:
    """A stored grant's value, as ``getGrant`` returns it.

    Attributes:
        purposes: Bitmask of PurposeOfUse bit indexes (never 0 for a stored grant).
        identified: Whether identified data may be released.
        not_before: Unix time the grant starts (0: at once).
        expires_at: Unix time the grant ends (0: never).
    """

    purposes: int
    identified: bool
    not_before: int
    expires_at: int


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
    ) -> GrantTerms | None:
        """The stored grant for (patient, grantee, scope), or None.

        Raises:
            ChainUnavailableError: If the chain cannot be reached.
        """
        purposes, identified, not_before, expires_at = self._read(
            self.functions.getGrant(patient, grantee, scope)
        )
        if int(purposes) == 0:
            return None
        return GrantTerms(int(purposes), bool(identified), int(not_before), int(expires_at))

    def nonce(self, patient: ChecksumAddress) -> int:
        """The patient's next signature nonce."""
        return int(self._read(self.functions.nonces(patient)))

    def is_delegate(self, patient: ChecksumAddress, delegate: ChecksumAddress) -> bool:
        """True if ``delegate`` may grant and revoke for ``patient``."""
        return bool(self._read(self.functions.isDelegate(patient, delegate)))

    def eip712_domain(self) -> Eip712Domain:
        """The EIP-712 domain the contract verifies signatures under (one ``eth_call``)."""
        fields, name, version, chain_id, verifying, salt, extensions = self._read(
            self.functions.eip712Domain()
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

    # --- transactions --------------------------------------------------------------------------

    def grant(
        self,
        grantee: ChecksumAddress,
        scope: bytes,
        purposes: int,
        identified: bool,
        not_before: int,
        expires_at: int,
    ) -> ContractFunction:
        """The patient's own ``grant`` transaction."""
        return self.functions.grant(grantee, scope, purposes, identified, not_before, expires_at)

    def revoke(self, grantee: ChecksumAddress, scope: bytes) -> ContractFunction:
        """The patient's own ``revoke`` transaction."""
        return self.functions.revoke(grantee, scope)

    def set_delegate(self, delegate: ChecksumAddress, allowed: bool) -> ContractFunction:
        """The patient's ``setDelegate`` transaction."""
        return self.functions.setDelegate(delegate, allowed)

    def grant_for(
        self,
        patient: ChecksumAddress,
        grantee: ChecksumAddress,
        scope: bytes,
        purposes: int,
        identified: bool,
        not_before: int,
        expires_at: int,
    ) -> ContractFunction:
        """A delegate's ``grantFor`` transaction."""
        return self.functions.grantFor(
            patient, grantee, scope, purposes, identified, not_before, expires_at
        )

    def revoke_for(
        self, patient: ChecksumAddress, grantee: ChecksumAddress, scope: bytes
    ) -> ContractFunction:
        """A delegate's ``revokeFor`` transaction."""
        return self.functions.revokeFor(patient, grantee, scope)

    def grant_by_sig(
        self,
        patient: ChecksumAddress,
        grantee: ChecksumAddress,
        scope: bytes,
        purposes: int,
        identified: bool,
        not_before: int,
        expires_at: int,
        deadline: int,
        signature: bytes,
    ) -> ContractFunction:
        """A relayed ``grantBySig`` transaction."""
        return self.functions.grantBySig(
            patient, grantee, scope, purposes, identified, not_before, expires_at, deadline,
            signature,
        )  # fmt: skip

    def revoke_by_sig(
        self,
        patient: ChecksumAddress,
        grantee: ChecksumAddress,
        scope: bytes,
        deadline: int,
        signature: bytes,
    ) -> ContractFunction:
        """A relayed ``revokeBySig`` transaction."""
        return self.functions.revokeBySig(patient, grantee, scope, deadline, signature)
