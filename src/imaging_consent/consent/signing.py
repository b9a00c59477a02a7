"""EIP-712 consents: the typed data a wallet signs, and the signed result.

A patient without ETH signs a ``Grant``, ``Revoke`` or ``Cancel`` message in their wallet
(``eth_signTypedData_v4``); anyone relays it with ``grantBySig`` / ``revokeBySig`` /
``cancelBySig``. The domain is read from the contract's ``eip712Domain()`` (ERC-5267), never
written here, so a redeployment or another chain can never be signed for by mistake.

Signatures are ordered by ``issuedAt`` (chain time when signed), not by nonces: a grant
signature applies only if it is newer than the grant's current state, so using it, a later
change or a cancellation voids it; a revoke signature never fails because of someone else's
transaction (see docs/trust-model.md).

The JSON is what MetaMask expects: ``types`` (with ``EIP712Domain``), ``primaryType``,
``domain`` and ``message``; numbers are JSON integers, ``bytes32`` values 0x-hex strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3

from imaging_consent.consent.inputs import parse_grantee, parse_window
from imaging_consent.consent.purposes import Purpose
from imaging_consent.contracts.consent_registry import Eip712Domain
from imaging_consent.errors import InvalidGrantError, InvalidSignatureError, WrongChainError

__all__ = [
    "CANCEL_TYPE",
    "GRANT_TYPE",
    "REVOKE_TYPE",
    "ConsentKind",
    "SignedConsent",
    "domain_of",
    "recover_signer",
    "sign_typed_data",
    "typed_data",
]

ConsentKind = Literal["grant", "revoke", "cancel"]

#: ``Grant(address patient,address grantee,bytes32 scope,uint32 purposes,bool identified,
#: uint48 notBefore,uint48 expiresAt,uint48 issuedAt,uint256 deadline)``
GRANT_TYPE: tuple[tuple[str, str], ...] = (
    ("patient", "address"),
    ("grantee", "address"),
    ("scope", "bytes32"),
    ("purposes", "uint32"),
    ("identified", "bool"),
    ("notBefore", "uint48"),
    ("expiresAt", "uint48"),
    ("issuedAt", "uint48"),
    ("deadline", "uint256"),
)
#: ``Revoke(address patient,address grantee,bytes32 scope,uint48 issuedAt,uint256 deadline)``;
#: ``Cancel`` has the same fields.
REVOKE_TYPE: tuple[tuple[str, str], ...] = (
    ("patient", "address"),
    ("grantee", "address"),
    ("scope", "bytes32"),
    ("issuedAt", "uint48"),
    ("deadline", "uint256"),
)
CANCEL_TYPE = REVOKE_TYPE
_TYPES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "grant": ("Grant", GRANT_TYPE),
    "revoke": ("Revoke", REVOKE_TYPE),
    "cancel": ("Cancel", CANCEL_TYPE),
}

# ERC-5267 field bits, in EIP-712 domain order.
_DOMAIN_FIELDS = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)


def domain_of(domain: Eip712Domain, chain_id: int) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The ``EIP712Domain`` type fields and values of a contract's ERC-5267 domain.

    Args:
        domain: What the contract reports (``ConsentRegistry.eip712_domain()``).
        chain_id: The chain the session is on; the domain must name it.

    Returns:
        The ``EIP712Domain`` type fields and the domain values, as JSON-ready values.

    Raises:
        WrongChainError: If the domain names another chain id.
        InvalidSignatureError: If the domain uses ERC-5267 extensions, which no wallet signs.
    """
    if domain.extensions:
        raise InvalidSignatureError("the contract's EIP-712 domain has extensions; unsupported")
    bits = domain.fields
    values: dict[str, Any] = {
        "name": domain.name,
        "version": domain.version,
        "chainId": domain.chain_id,
        "verifyingContract": domain.verifying_contract,
        "salt": "0x" + domain.salt.hex(),
    }
    if bits & 0b100 and domain.chain_id != chain_id:
        raise WrongChainError(
            f"the contract's EIP-712 domain names chain id {domain.chain_id}, "
            f"but the session is on chain id {chain_id}"
        )
    types = [
        {"name": n, "type": t} for bit, (n, t) in enumerate(_DOMAIN_FIELDS) if bits & (1 << bit)
    ]
    return types, {field["name"]: values[field["name"]] for field in types}


def typed_data(
    kind: ConsentKind,
    domain_types: list[dict[str, str]],
    domain: Mapping[str, Any],
    message: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``eth_signTypedData_v4`` JSON of a Grant, Revoke or Cancel ``message``."""
    primary, fields = _TYPES[kind]
    return {
        "types": {
            "EIP712Domain": list(domain_types),
            primary: [{"name": n, "type": t} for n, t in fields],
        },
        "primaryType": primary,
        "domain": dict(domain),
        "message": {name: message[name] for name, _ in fields},
    }


def sign_typed_data(data: Mapping[str, Any], key: LocalAccount) -> bytes:
    """Sign typed data locally, as a wallet's ``eth_signTypedData_v4`` would (65 bytes r‖s‖v)."""
    return bytes(Account.sign_typed_data(key.key, full_message=dict(data)).signature)


def recover_signer(data: Mapping[str, Any], signature: bytes) -> ChecksumAddress:
    """The EOA that made ``signature`` over ``data``.

    Raises:
        InvalidSignatureError: If the signature is malformed.
    """
    try:
        signer = Account.recover_message(
            encode_typed_data(full_message=dict(data)), signature=signature
        )
    except Exception as exc:  # eth_keys raises several types for malformed signatures
        raise InvalidSignatureError(f"malformed signature: {type(exc).__name__}") from None
    return Web3.to_checksum_address(signer)


@dataclass(frozen=True, slots=True)
class SignedConsent:
    """An EIP-712 Grant, Revoke or Cancel, maybe signed, for a wallet or a relayer.

    Attributes:
        kind: ``"grant"``, ``"revoke"`` or ``"cancel"``.
        typed_data: The ``eth_signTypedData_v4`` JSON (types, primaryType, domain, message).
        signature: The patient's 65-byte signature, or None until a wallet has signed.
    """

    kind: ConsentKind
    typed_data: dict[str, Any]
    signature: bytes | None = None

    @property
    def message(self) -> dict[str, Any]:
        """The signed struct's values (``patient``, ``grantee``, ``scope``, ``issuedAt``...)."""
        message: dict[str, Any] = self.typed_data["message"]
        return message

    @property
    def patient(self) -> ChecksumAddress:
        """The patient whose consent this is."""
        return Web3.to_checksum_address(self.message["patient"])

    @property
    def deadline(self) -> int:
        """Last unix second (chain time) at which the consent may be relayed."""
        return int(self.message["deadline"])

    @property
    def issued_at(self) -> int:
        """When it was signed (chain time); it orders it against the grant's other changes."""
        return int(self.message["issuedAt"])

    def with_signature(self, signature: bytes | str) -> SignedConsent:
        """This consent with a wallet's signature (bytes or 0x-hex) attached."""
        if isinstance(signature, str):
            signature = bytes.fromhex(signature.removeprefix("0x"))
        return SignedConsent(self.kind, self.typed_data, bytes(signature))

    def to_json(self) -> str:
        """``{"kind", "typedData", "signature"}`` as JSON text (signature 0x-hex or null)."""
        return json.dumps(
            {
                "kind": self.kind,
                "typedData": self.typed_data,
                "signature": None if self.signature is None else "0x" + self.signature.hex(),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> SignedConsent:
        """Parse :meth:`to_json` output.

        Raises:
            InvalidSignatureError: If the text is not a signed-consent JSON object.
        """
        try:
            data = json.loads(text)
            kind = data["kind"]
            typed = data["typedData"]
            signature = data.get("signature")
            if kind not in _TYPES or not isinstance(typed, dict):
                raise ValueError(kind)
            expected = _TYPES[kind][0]
            if typed.get("primaryType") != expected or not isinstance(typed.get("message"), dict):
                raise ValueError(typed.get("primaryType"))
            raw = None if signature is None else bytes.fromhex(signature.removeprefix("0x"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidSignatureError(f"not a signed consent JSON: {exc!r}") from None
        return cls(kind, typed, raw)


def check_contents(
    signed: SignedConsent, kind: str, contract: str, chain_id: int, *, check: bool = True
) -> dict[str, Any]:
    """Check what can be checked of a signed consent without the chain; return its message.

    Args:
        signed: The signed consent.
        kind: ``"grant"``, ``"revoke"`` or ``"cancel"``, what the caller is about to relay.
        contract: The ConsentRegistry it must be signed for.
        chain_id: The chain it must be signed for.
        check: Also check the domain and the grant's contents (else only kind and signature).

    Raises:
        InvalidSignatureError: If it is of another kind, unsigned, or for another domain.
        InvalidGrantError: If the signed grant's contents are invalid (including a grant to
            the patient's own address).
    """
    if signed.kind != kind:
        raise InvalidSignatureError(f"expected a signed {kind}, got a signed {signed.kind}")
    if signed.signature is None:
        raise InvalidSignatureError(f"the {kind} is not signed yet; sign it in a wallet first")
    message = signed.message
    if not check:
        return message
    domain = signed.typed_data.get("domain", {})
    if domain.get("verifyingContract") != contract or int(domain.get("chainId", -1)) != chain_id:
        raise InvalidSignatureError(
            f"the {kind} was signed for contract {domain.get('verifyingContract')} on chain "
            f"{domain.get('chainId')}, not {contract} on chain {chain_id}"
        )
    if kind == "grant":
        parse_grantee(message["grantee"], message["patient"])
        mask = int(message["purposes"])
        if mask == 0 or mask >> len(Purpose):
            raise InvalidGrantError(f"invalid purposes bitmask {mask:#x} in the signed grant")
        parse_window(int(message["notBefore"]), int(message["expiresAt"]))
    return message
