"""Access records and their Merkle leaves, as anchored in batches by ``AccessLog.anchorBatch``.

The encoding is fixed by ``IAccessLog`` (see docs/ARCHITECTURE.md)::

    leaf = keccak256(keccak256(abi.encode(studyKey, patient, accessor, purpose, permitted,
                                          identified, breakGlass, requestId, gateway, timestamp)))

with types ``(bytes32, address, address, uint8, bool, bool, bool, bytes32, address, uint48)``: ten
32-byte words, the double-hashed leaf of OpenZeppelin's StandardMerkleTree. Batches use the same
sorted-pair tree as content roots, so
:class:`imaging_consent.provenance.merkle.MerkleTree` builds them and
``AccessLog.verifyRecord`` checks their proofs on chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from eth_abi.abi import encode
from eth_hash.auto import keccak
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

RECORD_TYPES = (
    "bytes32",
    "address",
    "address",
    "uint8",
    "bool",
    "bool",
    "bool",
    "bytes32",
    "address",
    "uint48",
)
"""ABI types of the record's fields, in leaf order."""

_HASH_BYTES = 32


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One release or refusal of a study, as a gateway decided it.

    Attributes:
        study_key: Opaque 32-byte study key.
        patient: The study's patient.
        accessor: The account that asked for the study.
        purpose: PurposeOfUse bit index (0..255; ConsentRegistry knows 0..6).
        permitted: True if released, False if refused.
        identified: True if identified data were released.
        break_glass: True for an emergency access without consent.
        request_id: The gateway's unique 32-byte request id.
        gateway: The gateway that decided, and that anchors the batch.
        timestamp: Unix time of the decision (fits in uint48).
    """

    study_key: bytes
    patient: ChecksumAddress
    accessor: ChecksumAddress
    purpose: int
    permitted: bool
    identified: bool
    break_glass: bool
    request_id: bytes
    gateway: ChecksumAddress
    timestamp: int

    def __post_init__(self) -> None:
        """Check sizes and ranges so that a bad record fails here, not at encoding.

        Raises:
            ValueError: If a key is not 32 bytes, an address is malformed, or an integer is
                out of its ABI range.
        """
        for name in ("study_key", "request_id"):
            if len(getattr(self, name)) != _HASH_BYTES:
                raise ValueError(f"{name} must be 32 bytes")
        for name in ("patient", "accessor", "gateway"):
            object.__setattr__(self, name, to_checksum_address(getattr(self, name)))
        if not 0 <= self.purpose < 2**8:
            raise ValueError(f"purpose {self.purpose} does not fit in uint8")
        if not 0 <= self.timestamp < 2**48:
            raise ValueError(f"timestamp {self.timestamp} does not fit in uint48")

    def as_tuple(self) -> tuple[bytes, str, str, int, bool, bool, bool, bytes, str, int]:
        """The fields in ABI order, as ``IAccessLog.AccessRecord`` takes them."""
        return (
            self.study_key,
            self.patient,
            self.accessor,
            self.purpose,
            self.permitted,
            self.identified,
            self.break_glass,
            self.request_id,
            self.gateway,
            self.timestamp,
        )

    def leaf(self) -> bytes:
        """The record's 32-byte batch leaf (``AccessLog.recordLeaf``)."""
        return bytes(keccak(keccak(encode(list(RECORD_TYPES), list(self.as_tuple())))))

    def to_json(self) -> str:
        """The outbox's JSON form of the record (hex for bytes; no personal data)."""
        return json.dumps(
            {
                "studyKey": "0x" + self.study_key.hex(),
                "patient": self.patient,
                "accessor": self.accessor,
                "purpose": self.purpose,
                "permitted": self.permitted,
                "identified": self.identified,
                "breakGlass": self.break_glass,
                "requestId": "0x" + self.request_id.hex(),
                "gateway": self.gateway,
                "timestamp": self.timestamp,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> AccessRecord:
        """Parse :meth:`to_json` back into a record.

        Raises:
            ValueError: If ``text`` is not such a record.
        """
        try:
            data = json.loads(text)
            return cls(
                study_key=bytes.fromhex(data["studyKey"][2:]),
                patient=data["patient"],
                accessor=data["accessor"],
                purpose=int(data["purpose"]),
                permitted=bool(data["permitted"]),
                identified=bool(data["identified"]),
                break_glass=bool(data["breakGlass"]),
                request_id=bytes.fromhex(data["requestId"][2:]),
                gateway=data["gateway"],
                timestamp=int(data["timestamp"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an access record ({type(exc).__name__})") from exc
