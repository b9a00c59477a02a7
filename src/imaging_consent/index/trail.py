"""A patient's audit trail: grants, consent changes and accesses, as every reader shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from eth_typing import ChecksumAddress

from imaging_consent.access_log import AccessEvent, access_history
from imaging_consent.consent import ConsentClient, ConsentEvent, Grant
from imaging_consent.consent.inputs import parse_address
from imaging_consent.contracts.deployment import Suite

__all__ = ["AuditTrail", "trail_from_chain"]


@dataclass(frozen=True, slots=True)
class AuditTrail:
    """A patient's grants and every consent and access event.

    Attributes:
        patient: The patient.
        grants: The stored grants (expired and not-yet-valid ones included).
        consents: Every consent change (grants, revocations, delegates), oldest first.
        accesses: Every release, refusal and break-glass access, oldest first; batched records
            (``AccessEvent.batched``) sit beside the ones recorded one by one.
        now: The time against which grants are active or not: the latest block's time (from
            the chain) or the newest indexed block's time (from an index).
        source: ``"chain"`` if read from the chain's logs, ``"index"`` if from an audit index.
        behind: How many blocks the answer is behind the chain's latest block (an index lags
            by its confirmations and by what it has not synced yet; 0 from the chain).
    """

    patient: ChecksumAddress
    grants: tuple[Grant, ...]
    consents: tuple[ConsentEvent, ...]
    accesses: tuple[AccessEvent, ...]
    now: int
    source: Literal["chain", "index"] = "chain"
    behind: int = 0

    @property
    def flagged(self) -> int:
        """How many break-glass accesses there are."""
        return sum(1 for e in self.accesses if e.kind == "break_glass")


def trail_from_chain(suite: Suite, patient: str) -> AuditTrail:
    """Read a patient's audit trail straight from the chain's events (no index).

    Raises:
        InvalidAddressError: If ``patient`` is not an address.
        LogQueryError: If the node refuses the log query even one block at a time.
        ChainUnavailableError: If the chain cannot be reached.
    """
    owner = parse_address(patient, "--patient")
    grants = ConsentClient(suite).grants_of(owner)
    accesses = access_history(suite, owner)
    now = int(suite.session.w3.eth.get_block("latest")["timestamp"])
    return AuditTrail(owner, grants.current, grants.events, tuple(accesses), now)
