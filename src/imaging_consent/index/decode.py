"""Decoding raw logs with ``eth_abi`` against the contracts' event ABIs.

One decoder per event signature (topic 0), built once from the artifacts: indexed arguments
come from the topics, the others from ``data``. Every event of the three contracts has only
static one-word arguments (addresses, ``bytes32``, unsigned integers, booleans), so their words
are sliced from the hex and read directly, exactly as ``eth_abi`` would decode them (a test
checks both agree on every event); any other event is decoded with ``eth_abi``. Checksummed
addresses are cached. Raw logs are the node's
JSON (hex strings), so nothing is formatted per log beyond what the index stores.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from imaging_consent.contracts.artifacts import load_artifact

__all__ = ["Decoded", "EventDecoder", "decoders_for"]


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded log.

    Attributes:
        contract: The artifact name of the emitting contract (``ConsentRegistry``...).
        name: The event's name.
        args: Argument name to value: addresses checksummed, ``bytesN`` as bytes, ints, bools.
        block_number: Its block.
        block_hash: Its block's hash.
        log_index: Its index in the block.
        tx_hash: Its transaction.
        block_timestamp: The block's time if the node sent it with the log, else None.
    """

    contract: str
    name: str
    args: Mapping[str, Any]
    block_number: int
    block_hash: bytes
    log_index: int
    tx_hash: bytes
    block_timestamp: int | None


_checksum = functools.lru_cache(maxsize=65_536)(to_checksum_address)


def _word(abi_type: str, word: str) -> Any:
    """One 32-byte ABI word (64 hex digits) of a static type, or raise KeyError."""
    if abi_type == "address":
        return _checksum("0x" + word[24:])
    if abi_type == "bytes32":
        return bytes.fromhex(word)
    if abi_type == "bool":
        return int(word, 16) != 0
    if abi_type.startswith("uint"):
        return int(word, 16)
    raise KeyError(abi_type)


def _static(types: tuple[str, ...]) -> bool:
    try:
        for abi_type in types:
            _word(abi_type, "00" * 32)
    except KeyError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class EventDecoder:
    """Decodes the logs of one event of one contract."""

    contract: str
    name: str
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]

    #: Every argument is one static word: its words are sliced, not decoded.
    sliced: bool = False

    def decode(self, log: Mapping[str, Any]) -> Decoded:
        """Decode a raw log (the node's JSON) of this event.

        Raises:
            ValueError: If the topics or data do not fit the event's ABI.
        """
        topics = log["topics"]
        if len(topics) != len(self.indexed) + 1:
            raise ValueError(
                f"{self.name}: {len(topics) - 1} indexed topics, not {len(self.indexed)}"
            )
        args: dict[str, Any] = {}
        if self.sliced:
            data = log["data"][2:]
            if len(data) != 64 * len(self.data) or any(len(t) != 66 for t in topics):
                raise ValueError(f"{self.name}: data or topics of the wrong length")
            for (name, abi_type), topic in zip(self.indexed, topics[1:], strict=True):
                args[name] = _word(abi_type, topic[2:])
            for i, (name, abi_type) in enumerate(self.data):
                args[name] = _word(abi_type, data[64 * i : 64 * i + 64])
        else:
            for (name, abi_type), topic in zip(self.indexed, topics[1:], strict=True):
                (value,) = decode([abi_type], bytes.fromhex(topic[2:]))
                args[name] = _checksum(value) if abi_type == "address" else value
            values = decode([t for _, t in self.data], bytes.fromhex(log["data"][2:]))
            for (name, abi_type), value in zip(self.data, values, strict=True):
                args[name] = _checksum(value) if abi_type == "address" else value
        stamp = log.get("blockTimestamp")
        return Decoded(
            contract=self.contract,
            name=self.name,
            args=args,
            block_number=int(log["blockNumber"], 16),
            block_hash=bytes.fromhex(log["blockHash"][2:]),
            log_index=int(log["logIndex"], 16),
            tx_hash=bytes.fromhex(log["transactionHash"][2:]),
            block_timestamp=int(stamp, 16) if isinstance(stamp, str) else None,
        )


def _signature(event: Mapping[str, Any]) -> str:
    return f"{event['name']}({','.join(i['type'] for i in event['inputs'])})"


def decoders_for(addresses: Mapping[str, str]) -> dict[tuple[str, str], EventDecoder]:
    """Decoders for every event of the named contracts, by (address lower-case, topic 0).

    Args:
        addresses: Artifact name (``ConsentRegistry``...) to deployed address.
    """
    found: dict[tuple[str, str], EventDecoder] = {}
    for contract, address in addresses.items():
        for item in load_artifact(contract).abi:
            if item.get("type") != "event" or item.get("anonymous"):
                continue
            topic = "0x" + keccak(text=_signature(item)).hex()
            inputs = item["inputs"]
            found[(address.lower(), topic)] = EventDecoder(
                contract=contract,
                name=item["name"],
                indexed=tuple((i["name"], i["type"]) for i in inputs if i.get("indexed")),
                data=tuple((i["name"], i["type"]) for i in inputs if not i.get("indexed")),
                sliced=_static(tuple(i["type"] for i in inputs)),
            )
    return found
