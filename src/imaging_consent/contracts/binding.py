"""What every typed contract binding shares: the web3 contract, fail-closed reads, roles.

A binding is the only code that knows its contract's ABI. Reads return frozen dataclasses or
plain Python values, never raw tuples; transactions are built by named methods and sent by a
:class:`~imaging_consent.chain.TransactionSender`. The web3 ``functions`` and ``events``
namespaces stay reachable for tests and for log queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from eth_abi.abi import default_codec, encode
from eth_abi.decoding import TupleDecoder
from eth_abi.exceptions import DecodingError
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractEvents, ContractFunction, ContractFunctions
from web3.types import BlockIdentifier

from imaging_consent.chain.session import ChainSession, redact_url
from imaging_consent.contracts.artifacts import load_artifact
from imaging_consent.contracts.calls import call, raw_call
from imaging_consent.errors import ChainUnavailableError


def role_id(name: str) -> bytes:
    """The AccessControl role id of ``name`` (``keccak256(name)``; zero for the admin role)."""
    return bytes(32) if name == "DEFAULT_ADMIN_ROLE" else bytes(keccak(text=name))


#: Most distinct address strings whose ABI encoding is kept (a gateway sees few accounts).
_ADDRESS_MEMO_SIZE = 4096
_address_words: dict[str, bytes] = {}
_STATIC_TYPES = frozenset({"address", "bool", "bytes32", "uint8", "uint256"})
_STREAM: Any = default_codec.stream_class


def _address_word(encoder: Any, value: Any) -> bytes:
    """The 32-byte ABI encoding of an address, validated by eth_abi the first time it is seen.

    Validating a mixed-case address verifies its checksum (a keccak); the result depends on
    the string alone, so it is kept. Invalid values raise as eth_abi does, and are never kept.
    """
    if type(value) is not str:
        return encoder(value)  # type: ignore[no-any-return]
    word = _address_words.get(value)
    if word is None:
        word = encoder(value)
        if len(_address_words) >= _ADDRESS_MEMO_SIZE:
            _address_words.clear()
        _address_words[value] = word
    return word


class FastCall:
    """One view function called with ``eth_abi`` directly: encode, ``eth_call``, decode.

    The hot path of the consent check: no contract-function machinery per call. The element
    encoders and the output decoder are built once; arguments of static types are encoded one by
    one with eth_abi's own encoders (a tuple of static types is their concatenation), so the
    calldata and every validation error are eth_abi's.
    """

    def __init__(self, signature: str, output_types: Sequence[str]) -> None:
        name, _, args = signature.partition("(")
        self._selector = bytes(keccak(text=signature))[:4]
        self._input_types = [t for t in args.rstrip(")").split(",") if t]
        self._output_types = list(output_types)
        registry = default_codec._registry
        self._encoders = (
            [registry.get_encoder(t) for t in self._input_types]
            if set(self._input_types) <= _STATIC_TYPES
            else None
        )
        self._addresses = [t == "address" for t in self._input_types]
        self._decoder: Any = TupleDecoder(  # type: ignore[no-untyped-call]
            decoders=[registry.get_decoder(t, strict=True) for t in self._output_types]
        )
        self.name = name

    def calldata(self, args: Sequence[Any]) -> bytes:
        """The selector and the ABI-encoded ``args``.

        Raises:
            eth_abi.exceptions.EncodingError: If an argument does not fit its type.
        """
        encoders = self._encoders
        if encoders is None or len(args) != len(encoders):
            return self._selector + encode(self._input_types, list(args))
        words = [self._selector]
        for encoder, is_address, value in zip(encoders, self._addresses, args, strict=True):
            words.append(_address_word(encoder, value) if is_address else encoder(value))
        return b"".join(words)

    def __call__(
        self, binding: Binding, args: Sequence[Any], block: BlockIdentifier = "latest"
    ) -> tuple[Any, ...]:
        """Call the function on ``binding``'s contract and return the decoded outputs.

        Raises:
            ContractRevertedError: The decoded custom error if the call reverts.
            ChainUnavailableError: If the chain cannot be reached or the answer is unclear.
        """
        result = raw_call(binding.session, binding.address, self.calldata(args), block)
        try:
            return tuple(self._decoder(_STREAM(result)))
        except DecodingError as exc:
            raise ChainUnavailableError(
                f"no clear answer from {redact_url(binding.session.rpc_url)}: {self.name} "
                f"returned {len(result)} bytes"
            ) from exc


class Binding:
    """Base of the typed bindings: the contract at one address, on one session."""

    NAME: ClassVar[str]

    def __init__(self, session: ChainSession, address: str) -> None:
        self.session = session
        self.contract: Contract = session.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=list(load_artifact(self.NAME).abi)
        )
        self.address: ChecksumAddress = self.contract.address

    @property
    def functions(self) -> ContractFunctions:
        """The web3 function namespace (for tests and transaction building)."""
        return self.contract.functions

    @property
    def events(self) -> ContractEvents:
        """The web3 event namespace (for log queries)."""
        return self.contract.events

    def _read(self, function: ContractFunction, block: BlockIdentifier = "latest") -> Any:
        return call(self.session, function, block)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address})"


class AccessControlled(Binding):
    """A binding of a contract with OpenZeppelin AccessControl roles."""

    def has_role(self, role: str, account: str, block: BlockIdentifier = "latest") -> bool:
        """True if ``account`` holds ``role`` (its name, e.g. ``"SITE_ROLE"``).

        Raises:
            ChainUnavailableError: If the chain cannot be reached.
        """
        checked = Web3.to_checksum_address(account)
        return bool(self._read(self.functions.hasRole(role_id(role), checked), block))

    def grant_role(self, role: str, account: str) -> ContractFunction:
        """The ``grantRole`` transaction (sent by an admin)."""
        return self.functions.grantRole(role_id(role), Web3.to_checksum_address(account))

    def revoke_role(self, role: str, account: str) -> ContractFunction:
        """The ``revokeRole`` transaction (sent by an admin)."""
        return self.functions.revokeRole(role_id(role), Web3.to_checksum_address(account))
