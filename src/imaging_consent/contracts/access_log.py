"""The typed binding of AccessLog: the gateway's check, its records, and batch anchors.

:meth:`AccessLog.check_access` is the hot path of every release: the study's patient and
content root and the consent answer in one ``eth_call``, encoded and decoded with ``eth_abi``.
A gateway acts for the one site that appointed it (:meth:`AccessLog.site_of`), and records only
for that site's studies.
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
from imaging_consent.contracts.binding import Binding, FastCall
from imaging_consent.contracts.calls import block_number
from imaging_consent.contracts.consent_registry import Eip712Domain, read_eip712_domain
from imaging_consent.errors import StudyNotRegisteredError

__all__ = [
    "BREAK_GLASS_LIMIT",
    "BREAK_GLASS_WINDOW",
    "AccessDecision",
    "AccessLog",
    "RecordKind",
    "RecordedAccess",
]

BREAK_GLASS_LIMIT = 3
"""Break-glass accesses one clinician may make at one site within :data:`BREAK_GLASS_WINDOW`."""
BREAK_GLASS_WINDOW = 24 * 3600
"""The break-glass window, in seconds."""

_CHECK_ACCESS = FastCall(
    "checkAccess(address,bytes32,address,uint8)", ("address", "bytes32", "bool", "bool")
)
_ZERO_ADDRESS = "0x" + "00" * 20


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
        identified: Whether the chain allowed identified data at record time (always True
            for break-glass, False for a refusal).
        tx_hash: The transaction.
        block_number: The block it was mined in.
    """

    kind: RecordKind
    request_id: bytes
    identified: bool
    tx_hash: str
    block_number: int


class AccessLog(Binding):
    """AccessLog at one address (see ``interfaces/IAccessLog.sol``)."""

    NAME = "AccessLog"

    # --- reads ---------------------------------------------------------------------------------

    def check_access(
        self,
        site: ChecksumAddress,
        study_key: bytes,
        accessor: ChecksumAddress,
        purpose: int,
        block: BlockIdentifier = "latest",
    ) -> AccessDecision:
        """The study's patient, content root and consent answer, in one ``eth_call``.

        Raises:
            StudyNotRegisteredError: If the site has no such study.
            ChainUnavailableError: If the chain cannot be reached or answers unclearly.
        """
        patient, root, permitted, identified = _CHECK_ACCESS(
            self, (site, study_key, accessor, purpose), block
        )
        return AccessDecision(
            Web3.to_checksum_address(patient), bytes(root), bool(permitted), bool(identified)
        )

    def check_access_confirmed(
        self,
        site: ChecksumAddress,
        study_key: bytes,
        accessor: ChecksumAddress,
        purpose: int,
        confirmations: int,
    ) -> AccessDecision:
        """:meth:`check_access`, permitting only if yes both at ``head - confirmations`` and at
        ``head`` (a grant counts once it is deep enough; a revocation the moment it is seen).

        Raises:
            StudyNotRegisteredError: If the site has no such study at ``head``.
            ChainUnavailableError: If the chain cannot be reached or answers unclearly.
        """
        if confirmations == 0:
            return self.check_access(site, study_key, accessor, purpose)
        head = block_number(self.session)
        now = self.check_access(site, study_key, accessor, purpose, head)
        deep_block = max(head - confirmations, 0)
        try:
            deep = self.check_access(site, study_key, accessor, purpose, deep_block)
        except StudyNotRegisteredError:  # registered less than `confirmations` blocks ago
            return AccessDecision(now.patient, now.content_root, False, False)
        return AccessDecision(
            now.patient,
            now.content_root,
            now.permitted and deep.permitted,
            now.identified and deep.identified,
        )

    def site_of(self, gateway: ChecksumAddress) -> ChecksumAddress | None:
        """The site that appointed ``gateway``, or None if no site did."""
        site = Web3.to_checksum_address(self._read(self.functions.siteOf(gateway)))
        return None if site == _ZERO_ADDRESS else site

    def is_emergency_clinician(self, site: ChecksumAddress, clinician: ChecksumAddress) -> bool:
        """True if ``site`` appointed ``clinician`` for break-glass access."""
        return bool(self._read(self.functions.isEmergencyClinician(site, clinician)))

    def eip712_domain(self) -> Eip712Domain:
        """The EIP-712 domain break-glass signatures are made under."""
        return read_eip712_domain(self)

    def verify_record(
        self,
        root: bytes,
        gateway: ChecksumAddress,
        record: tuple[object, ...],
        proof: Sequence[bytes],
    ) -> bool:
        """True if ``record`` (ABI order) names ``gateway`` and proves against ``root``."""
        proof_list = [bytes(p) for p in proof]
        return bool(self._read(self.functions.verifyRecord(root, gateway, record, proof_list)))

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
                args = log["args"]
                if (
                    bytes(args["requestId"]) == request_id
                    and Web3.to_checksum_address(log["address"]) == self.address
                ):
                    identified = bool(args.get("identified", kind is RecordKind.BREAK_GLASS))
                    return RecordedAccess(
                        kind, request_id, identified, receipt.tx_hash, receipt.block_number
                    )
        return None

    # --- transactions --------------------------------------------------------------------------

    def set_gateway(self, gateway: ChecksumAddress, allowed: bool) -> ContractFunction:
        """A site's ``setGateway`` transaction (appoints or removes its own gateway)."""
        return self.functions.setGateway(gateway, allowed)

    def set_emergency_clinician(
        self, clinician: ChecksumAddress, allowed: bool
    ) -> ContractFunction:
        """A site's ``setEmergencyClinician`` transaction."""
        return self.functions.setEmergencyClinician(clinician, allowed)

    def record_access(
        self, study_key: bytes, accessor: ChecksumAddress, purpose: int, request_id: bytes
    ) -> ContractFunction:
        """A gateway's ``recordAccess`` transaction (the chain re-checks consent)."""
        return self.functions.recordAccess(study_key, accessor, purpose, request_id)

    def record_break_glass(
        self,
        study_key: bytes,
        clinician: ChecksumAddress,
        request_id: bytes,
        reason_commitment: bytes,
        deadline: int,
        signature: bytes,
    ) -> ContractFunction:
        """A gateway's ``recordBreakGlass``, relaying the clinician's own signature."""
        return self.functions.recordBreakGlass(
            study_key, clinician, request_id, reason_commitment, deadline, signature
        )

    def anchor_batch(self, root: bytes, count: int, batch_id: bytes) -> ContractFunction:
        """A gateway's ``anchorBatch`` transaction."""
        return self.functions.anchorBatch(root, count, batch_id)
