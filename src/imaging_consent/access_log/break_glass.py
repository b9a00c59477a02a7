"""Break-glass: an emergency clinician's own signed request, relayed by the site's gateway.

The clinician signs the EIP-712 ``BreakGlass(site, studyKey, requestId, reasonCommitment,
deadline)`` with their own key (or EIP-1271 wallet); the gateway only relays it, so no gateway
can write a break-glass in a clinician's name. The reason itself stays at the site: on chain is
only ``reasonCommitment = HMAC-SHA256(site pepper, domain tag ‖ reason)``, which nobody without
the pepper can test guesses against (an unsalted hash of short clinical text can be reversed
with a dictionary). Destroying the pepper unlinks it too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3

from imaging_consent.consent.signing import domain_of, recover_signer, sign_typed_data
from imaging_consent.contracts.calls import block_time, fail_closed
from imaging_consent.contracts.consent_registry import Eip712Domain
from imaging_consent.contracts.deployment import Suite
from imaging_consent.dicom import SitePepper
from imaging_consent.errors import (
    InvalidSignatureError,
    NotEmergencyError,
    SignatureExpiredError,
)

__all__ = [
    "BREAK_GLASS_LIFETIME",
    "BREAK_GLASS_TYPE",
    "BreakGlass",
    "authorize_break_glass",
    "break_glass_typed_data",
    "reason_commitment",
    "sign_break_glass",
]

#: ``BreakGlass(address site,bytes32 studyKey,bytes32 requestId,bytes32 reasonCommitment,
#: uint256 deadline)``
BREAK_GLASS_TYPE: tuple[tuple[str, str], ...] = (
    ("site", "address"),
    ("studyKey", "bytes32"),
    ("requestId", "bytes32"),
    ("reasonCommitment", "bytes32"),
    ("deadline", "uint256"),
)
#: Seconds a clinician's break-glass signature stays valid by default.
BREAK_GLASS_LIFETIME = 600
_REASON_TAG = b"imaging-consent break-glass reason\x00"


def reason_commitment(pepper: SitePepper, reason: str) -> bytes:
    """The keyed commitment to a break-glass reason (HMAC-SHA256 with the site pepper).

    Raises:
        ValueError: If the reason is empty.
    """
    if not reason.strip():
        raise ValueError("a break-glass access needs a reason")
    message = _REASON_TAG + reason.strip().encode("utf-8")
    return hmac.new(pepper.reveal(), message, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """A clinician's signed break-glass request for one study at one site.

    Attributes:
        clinician: The emergency clinician who signed it.
        site: The site whose study it opens.
        study_key: The study.
        request_id: Its unique id (the access is recorded under it; single use).
        reason_commitment: The keyed commitment to the reason (:func:`reason_commitment`).
        deadline: Last chain time at which it may be recorded.
        signature: The clinician's signature.
    """

    clinician: ChecksumAddress
    site: ChecksumAddress
    study_key: bytes
    request_id: bytes
    reason_commitment: bytes
    deadline: int
    signature: bytes

    def typed_data(self, domain: Eip712Domain, chain_id: int) -> dict[str, Any]:
        """The ``eth_signTypedData_v4`` JSON the clinician signed."""
        return break_glass_typed_data(
            domain, chain_id, self.site, self.study_key, self.request_id,
            self.reason_commitment, self.deadline,
        )  # fmt: skip

    def check(
        self, domain: Eip712Domain, chain_id: int, now: int, *, contract_wallet: bool = False
    ) -> None:
        """Check it locally before anything is loaded: deadline and (for a key) the signer.

        A contract-wallet clinician's signature is checked by the chain (EIP-1271).

        Raises:
            SignatureExpiredError: If the deadline has passed.
            InvalidSignatureError: If it was not signed by ``clinician``.
        """
        if now > self.deadline:
            raise SignatureExpiredError(
                f"the break-glass request expired at {self.deadline}; sign a new one"
            )
        if contract_wallet:
            return
        signer = recover_signer(self.typed_data(domain, chain_id), self.signature)
        if signer != self.clinician:
            raise InvalidSignatureError(
                f"the break-glass request is signed by {signer}, not by clinician {self.clinician}"
            )


def break_glass_typed_data(
    domain: Eip712Domain,
    chain_id: int,
    site: str,
    study_key: bytes,
    request_id: bytes,
    commitment: bytes,
    deadline: int,
) -> dict[str, Any]:
    """The EIP-712 ``BreakGlass`` typed data under AccessLog's ``domain``.

    Raises:
        WrongChainError: If the domain names another chain.
    """
    domain_types, values = domain_of(domain, chain_id)
    return {
        "types": {
            "EIP712Domain": domain_types,
            "BreakGlass": [{"name": n, "type": t} for n, t in BREAK_GLASS_TYPE],
        },
        "primaryType": "BreakGlass",
        "domain": values,
        "message": {
            "site": Web3.to_checksum_address(site),
            "studyKey": "0x" + study_key.hex(),
            "requestId": "0x" + request_id.hex(),
            "reasonCommitment": "0x" + commitment.hex(),
            "deadline": deadline,
        },
    }


def sign_break_glass(
    clinician: LocalAccount,
    suite: Suite,
    site: str,
    study_key: bytes,
    commitment: bytes,
    lifetime: int = BREAK_GLASS_LIFETIME,
    request_id: bytes | None = None,
) -> BreakGlass:
    """Sign a break-glass request with the clinician's own key (a fresh request id by default).

    Args:
        clinician: The emergency clinician's key.
        suite: The deployed contracts (AccessLog's EIP-712 domain is read from the chain).
        site: The site whose study it opens.
        study_key: The study.
        commitment: :func:`reason_commitment` of the reason, computed by the site.
        lifetime: Seconds (chain time) it stays valid.
        request_id: The request id; default 32 random bytes.

    Raises:
        WrongChainError: If the domain names another chain.
        ChainUnavailableError: If the chain cannot be reached.
    """
    rid = os.urandom(32) if request_id is None else request_id
    deadline = block_time(suite.session) + lifetime
    domain, chain_id = suite.access_log.eip712_domain(), suite.session.chain_id
    data = break_glass_typed_data(domain, chain_id, site, study_key, rid, commitment, deadline)
    return BreakGlass(
        clinician=Web3.to_checksum_address(clinician.address),
        site=Web3.to_checksum_address(site),
        study_key=study_key,
        request_id=rid,
        reason_commitment=commitment,
        deadline=deadline,
        signature=sign_typed_data(data, clinician),
    )


def authorize_break_glass(
    suite: Suite, site: ChecksumAddress, study_key: bytes, requester: ChecksumAddress,
    signed: BreakGlass,
) -> None:  # fmt: skip
    """Check a break-glass request before anything is loaded (the chain checks it again).

    Raises:
        InvalidSignatureError: If it is for another requester, site or study, or not signed
            by the requester.
        SignatureExpiredError: If its deadline has passed.
        NotEmergencyError: If ``site`` has not appointed the requester as emergency clinician.
        ChainUnavailableError: If the chain cannot be reached.
    """
    if (signed.clinician, signed.site, signed.study_key) != (requester, site, study_key):
        raise InvalidSignatureError(
            "the break-glass request is for another requester, site or study"
        )
    session = suite.session
    with fail_closed(session):
        contract_wallet = bool(session.w3.eth.get_code(requester))
    signed.check(
        suite.access_log.eip712_domain(), session.chain_id, block_time(session),
        contract_wallet=contract_wallet,
    )  # fmt: skip
    if not suite.access_log.is_emergency_clinician(site, requester):
        raise NotEmergencyError(
            f"{requester} is not an emergency clinician of site {site}; nothing released",
            error_name="AccessLogNotEmergency",
            error_args={"site": site, "clinician": requester},
        )
