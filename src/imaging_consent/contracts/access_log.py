"""The typed binding of AccessLog: the gateway's check, its records, and batch anchors.

:meth:`AccessLog.check_access` is the hot path of every release: the study's patient and
content root and the consent answer in one ``eth_call``, encoded and decoded with ``eth_abi``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import BlockIdentifier

from imaging_consent.chain import TransactionReceipt
from imaging_consent.chain.logs import fetch_logs
from imaging_consent.contracts.binding import AccessControlled, FastCall
from imaging_consent.contracts.calls import block_number
from imaging_consent.errors import StudyNotRegisteredError

__all__ = ["AccessDecision", "AccessLog", "RecordKind", "RecordedAccess"]

_CHECK_ACCESS = FastCall(
    "checkAccess(bytes32,address,uint8)", ("address", "bytes32", "bool", "bool")
)


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """What the gateway needs to decide a release, read in one call.

    Attributes:
        patient: The study's patient.
        content_root: The study's content root.
        permitted: Whether consent permits the access at the block read.
        identified: Whether identified data may be released.
    """

    patient: ChecksumAddress
    content_root: bytes
    permitted: bool
    identified: bool


class RecordKind(enum.Enum):
    """Which AccessLog event recorded a request."""

    GRANTED = "AccessGranted"
    DENIED = "AccessDenied"
    BREAK_GLASS = "BreakGlassAccess"


@dataclass(frozen=True, slots=True)
class RecordedAccess:
    """One access record found in a mined transaction.

    Attributes:
        kind: The event that recorded it.
        request_id: The gateway's request id.
        tx_hash: The transaction.
        block_number: The block it was mined in.
    """

    kind: RecordKind
    request_id: bytes
    tx_hash: str
    block_number: int


class AccessLog(AccessControlled):
    """AccessLog at one address (see ``interfaces/IAccessLog.sol``)."""

    NAME = "AccessLog"

    # --- reads ---------------------------------------------------------------------------------

    def check_access(
        self,
        study_key: bytes,
        accessor: ChecksumAddress,
        purpose: int,
        block: BlockIdentifier = "latest",
    ) -> AccessDecision:
        """The study's patient, content root and consent answer, in one ``eth_call``.

        Raises:
            StudyNotRegisteredError: If the study is not registered.
            ChainUnavailableError: If the chain cannot be reached or answers unclearly.
        """
        patient, root, permitted, identified = _CHECK_ACCESS(
            self, (study_key, accessor, purpose), block
        )
        return AccessDecision(
            Web3.to_checksum_address(patient), bytes(root), bool(permitted), bool(identified)
        )

    def check_access_confirmed(
        self, study_key: bytes, accessor: ChecksumAddress, purpose: int, confirmations: int
    ) -> AccessDecision:
        """:meth:`check_access`, permitting only if yes both at ``head - confirmations`` and at
        ``head`` (a grant counts once it is deep enough; a revocation the moment it is seen).

        Raises:
            StudyNotRegisteredError: If the study is not registered at ``head``.
            ChainUnavailableError: If the chain cannot be reached or answers unclearly.
        """
        if confirmations == 0:
            return self.check_access(study_key, accessor, purpose)
        head = block_number(self.session)
        now = self.check_access(study_key, accessor, purpose, head)
        try:
            deep = self.check_access(study_key, accessor, purpose, max(head - confirmations, 0))
        except StudyNotRegisteredError:  # registered less than `confirmations` blocks ago
            return AccessDecision(now.patient, now.content_root, False, False)
        return AccessDecision(
            now.patient,
            now.content_root,
            now.permitted and deep.permitted,
            now.identified and deep.identified,
        )

    def verify_record(self, root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
        """True if the record ``leaf`` proves against a batch ``root``."""
        return bool(self._read(self.functions.verifyRecord(root, leaf, [bytes(p) for p in proof])))

    def find_anchor(
        self, batch_id: bytes, gateway: ChecksumAddress, from_block: int
    ) -> bytes | None:
        """The transaction that anchored ``batch_id`` for ``gateway``, if it is on chain.

        Raises:
            LogQueryError: If the node refuses the log query even one block at a time.
            ChainUnavailableError: If the chain cannot be reached.
        """
        logs = fetch_logs(
            self.session,
            self.events.BatchAnchored,
            {"batchId": HexBytes(batch_id), "gateway": gateway},
            from_block,
        )
        return bytes(logs[0]["transactionHash"]) if logs else None

    def recorded(self, receipt: TransactionReceipt, request_id: bytes) -> RecordedAccess | None:
        """The record of ``request_id`` that a mined transaction emitted, if any."""
        for kind in RecordKind:
            event = getattr(self.events, kind.value)()
            for log in event.process_receipt(receipt.raw, errors=DISCARD):
                if (
                    bytes(log["args"]["requestId"]) == request_id
                    and Web3.to_checksum_address(log["address"]) == self.address
                ):
                    return RecordedAccess(kind, request_id, receipt.tx_hash, receipt.block_number)
        return None

    # --- transactions --------------------------------------------------------------------------

    def record_access(
        self, study_key: bytes, accessor: ChecksumAddress, purpose: int, request_id: bytes
    ) -> ContractFunction:
        """A gateway's ``recordAccess`` transaction (the chain re-checks consent)."""
        return self.functions.recordAccess(study_key, accessor, purpose, request_id)

    def record_break_glass(
        self, study_key: bytes, accessor: ChecksumAddress, request_id: bytes, reason_hash: bytes
    ) -> ContractFunction:
        """A gateway's ``recordBreakGlass`` transaction."""
        return self.functions.recordBreakGlass(study_key, accessor, request_id, reason_hash)

    def anchor_batch(self, root: bytes, count: int, batch_id: bytes) -> ContractFunction:
        """A gateway's ``anchorBatch`` transaction."""
        return self.functions.anchorBatch(root, count, batch_id)
