"""The patient page's relayer: it sends a patient's signed Grant or Revoke with the gateway's key.

A relay is refused before anything is sent when it would fail on chain: the signed consent is
checked locally (:meth:`ConsentClient.relay_grant` / ``relay_revoke``), then simulated with one
``eth_call``; a revocation that a newer change would make a no-op is refused too. Refusals are
:class:`PatientRequestError` answers naming why in plain words (409 for a newer change, 422 for a
consent the chain would refuse, 429 past the hourly limit, 503 when the chain cannot take it).

Accepted relays answer with the transaction hash as soon as it is signed; the receipt is awaited
in a background thread, and :meth:`Relayer.status` says pending, mined (with what changed) or
failed (with the decoded reason). Transactions the patient's wallet sent itself (appointing a
guardian) are looked up on chain the same way. Each patient may have at most ``per_hour``
relays sent in any hour (a sliding window); refused relays do not count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from eth_typing import ChecksumAddress, HexStr
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import RPCEndpoint, TxReceipt

from imaging_consent.chain import TransactionReceipt, TransactionSender
from imaging_consent.chain.receipts import TxState, look_up
from imaging_consent.consent import ConsentClient
from imaging_consent.consent.inputs import parse_scope
from imaging_consent.consent.signing import SignedConsent
from imaging_consent.contracts.calls import call, fail_closed
from imaging_consent.contracts.deployment import Suite
from imaging_consent.contracts.revert import decode_revert
from imaging_consent.errors import (
    ChainUnavailableError,
    ContractRevertedError,
    ImagingConsentError,
    InvalidAddressError,
    InvalidSignatureError,
    InvalidTimestampError,
    ServiceError,
    SignatureExpiredError,
    SupersededSignatureError,
    TransactionError,
    UnknownPurposeError,
)

__all__ = ["PatientRequestError", "Relayer", "TxView", "plain_reason", "refusal"]

logger = logging.getLogger(__name__)

TxPhase = Literal["pending", "mined", "failed", "unknown"]
#: How long a relay request waits for its transaction to be signed and handed to the node.
_SEND_WAIT = 60.0
#: Relayed transactions whose status is kept (the oldest are forgotten first).
_KEPT_JOBS = 1000
_HOUR = 3600.0

#: What a patient reads when the chain (or the relayer's own check) refuses, by Solidity error.
_REASONS = {
    "ConsentRegistryInvalidWindow": ("the end date must be in the future and after the start date"),
    "ConsentRegistryInvalidPurposes": "choose at least one purpose",
    "ConsentRegistryZeroGrantee": "the person or app to give access to is missing",
    "ConsentRegistryExpiredSignature": (
        "your signature expired before it could be sent; please sign again"
    ),
    "ConsentRegistryInvalidSigner": (
        "the signature is not your account's signature for this exact request"
    ),
    "ConsentRegistrySignatureFromFuture": (
        "the chain has not yet reached the time in your signature; try again in a minute"
    ),
    "ConsentRegistrySignatureLifetimeTooLong": "the signature stays valid too long; sign again",
    "ConsentRegistrySupersededSignature": (
        "a newer change to this access is already recorded, or this signature was already used"
    ),
    "ConsentRegistryInvalidDelegate": (
        "a guardian must be another person's account, not yours and not empty"
    ),
    "ConsentRegistryNotDelegate": "that account is not your guardian",
}
#: The same, for errors found before the chain was asked (local checks of the signed consent).
_LOCAL_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (SupersededSignatureError, _REASONS["ConsentRegistrySupersededSignature"]),
    (SignatureExpiredError, _REASONS["ConsentRegistryExpiredSignature"]),
    (InvalidSignatureError, _REASONS["ConsentRegistryInvalidSigner"]),
    (UnknownPurposeError, "choose at least one purpose from the list"),
    (InvalidAddressError, "that is not a valid account address (0x followed by 40 characters)"),
    (InvalidTimestampError, "a date is not valid"),
)


class PatientRequestError(ServiceError):
    """A patient-page request refused, with its HTTP status and what the patient reads.

    Attributes:
        status: The HTTP status.
        title: A short title.
        detail: What went wrong, in plain words (no personal data).
        headers: Extra response headers (``Retry-After`` for 429).
    """

    def __init__(
        self, status: int, title: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})


def plain_reason(exc: BaseException) -> str:
    """Why a consent change was refused, in words a patient reads (no addresses, no keys)."""
    name = getattr(exc, "error_name", "")
    if name in _REASONS:
        return _REASONS[name]
    for kind, text in _LOCAL_REASONS:
        if isinstance(exc, kind):
            return text
    if isinstance(exc, ContractRevertedError) and name:
        return f"the chain refused it ({name})"
    text = str(exc).split(":")[0]  # the typed errors name the problem before any detail
    return text if "0x" not in text else "the chain refused it"


def refusal(exc: ImagingConsentError) -> PatientRequestError:
    """The answer to a consent change refused before anything was sent."""
    if isinstance(exc, PatientRequestError):
        return exc
    if isinstance(exc, ChainUnavailableError):
        return PatientRequestError(
            503, "Chain unavailable", "the chain cannot be reached now; nothing was sent"
        )
    if isinstance(exc, TransactionError) and not isinstance(exc, ContractRevertedError):
        return PatientRequestError(
            503, "Cannot send now", "the site cannot send transactions now; nothing was sent"
        )
    if isinstance(exc, SupersededSignatureError):
        return PatientRequestError(409, "A newer change exists", plain_reason(exc))
    return PatientRequestError(422, "The chain would refuse this", plain_reason(exc))


@dataclass(frozen=True, slots=True)
class TxView:
    """Where a transaction stands, for the page.

    Attributes:
        tx_hash: The transaction.
        phase: ``pending``, ``mined`` (succeeded), ``failed`` or ``unknown``.
        block_number: Its block, once mined.
        reason: For ``failed``, why, in plain words.
        effect: For ``mined``, what changed, in plain words.
    """

    tx_hash: str
    phase: TxPhase
    block_number: int | None = None
    reason: str | None = None
    effect: str | None = None


class _Job:
    """One relayed transaction: signed (hash known), then mined or failed. Thread-safe."""

    def __init__(self, patient: ChecksumAddress) -> None:
        self.patient = patient
        self.tx_hash: str | None = None
        self.error: BaseException | None = None
        self.receipt: TransactionReceipt | None = None
        self._ready = threading.Event()

    def signed(self, tx_hash: HexStr, nonce: int, raw: bytes) -> None:
        if self.tx_hash is None:
            self.tx_hash = str(tx_hash)
        self._ready.set()

    def finish(self, receipt: TransactionReceipt | None, error: BaseException | None) -> None:
        self.receipt, self.error = receipt, error
        self._ready.set()

    def wait_sent(self, timeout: float) -> bool:
        return self._ready.wait(timeout)


class _RelayClient(ConsentClient):
    """A consent client that simulates each relay with ``eth_call`` and reports its hash."""

    def __init__(self, suite: Suite, sender: TransactionSender, job: _Job) -> None:
        super().__init__(suite, sender)
        self._job = job

    def _transact(self, function: ContractFunction) -> TransactionReceipt:
        call(self.suite.session, function)  # what would fail on chain raises here, decoded
        assert self.sender is not None
        return self.sender.transact(function, on_signed=self._job.signed)


class RateLimit:
    """At most ``per_hour`` events per patient in any sliding hour. Thread-safe."""

    def __init__(self, per_hour: int, clock: Callable[[], float]) -> None:
        self._per_hour = per_hour
        self._clock = clock
        self._taken: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, patient: str) -> float:
        """Use one slot and return its time.

        Raises:
            PatientRequestError: 429 with ``Retry-After`` if the patient used up the hour.
        """
        now = self._clock()
        with self._lock:
            taken = self._taken.setdefault(patient, deque())
            while taken and taken[0] <= now - _HOUR:
                taken.popleft()
            if len(taken) >= self._per_hour:
                wait = max(1, int(taken[0] + _HOUR - now) + 1)
                raise PatientRequestError(
                    429,
                    "Too many changes this hour",
                    f"the site sends at most {self._per_hour} changes per patient per hour; "
                    f"try again in {(wait + 59) // 60} minutes",
                    {"Retry-After": str(wait)},
                )
            taken.append(now)
            return now

    def give_back(self, patient: str, at: float) -> None:
        """Return a slot taken at ``at`` (nothing was sent)."""
        with self._lock:
            taken = self._taken.get(patient)
            if taken is not None and at in taken:
                taken.remove(at)


class Relayer:
    """Relays patients' signed consents with the gateway's sender, rate limited per patient.

    Args:
        suite: The deployed contracts.
        sender: The account that pays (the gateway's; its nonce queue is shared safely).
        per_hour: Relays each patient may have sent per sliding hour.
        clock: Unix time, for the rate limit.
    """

    def __init__(
        self,
        suite: Suite,
        sender: TransactionSender,
        per_hour: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.suite = suite
        self.sender = sender
        self.limit = RateLimit(per_hour, clock)
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._lock = threading.Lock()

    def relay(self, patient: ChecksumAddress, signed: SignedConsent) -> str:
        """Send ``signed`` (the patient's own Grant or Revoke); return the transaction hash.

        Raises:
            PatientRequestError: 403 if it is another patient's consent, 429 past the hourly limit,
                409 or 422 if the chain would refuse it (nothing sent), 503 if the chain or the
                sender cannot take it now.
        """
        if signed.kind not in ("grant", "revoke"):
            raise PatientRequestError(422, "Not a consent change", "only grants and revocations")
        if signed.patient != patient:
            raise PatientRequestError(
                403, "Not your consent", "a signed consent can only be sent by its own patient"
            )
        if signed.kind == "revoke":
            self._check_revoke_applies(signed)
        at = self.limit.take(patient)
        job = _Job(patient)
        client = _RelayClient(self.suite, self.sender, job)
        send = client.relay_grant if signed.kind == "grant" else client.relay_revoke

        def run() -> None:
            try:
                job.finish(send(signed), None)
            except Exception as exc:  # every outcome is reported through the job
                job.finish(None, exc)

        threading.Thread(target=run, name="patient-relay", daemon=True).start()
        if not job.wait_sent(_SEND_WAIT) or job.tx_hash is None:
            self.limit.give_back(patient, at)
            error = job.error
            if isinstance(error, ImagingConsentError):
                raise refusal(error)
            if error is not None:
                logger.warning("relay failed before sending: %s", type(error).__name__)
            raise PatientRequestError(
                503, "Cannot send now", "the site could not send it now; nothing was sent"
            )
        with self._lock:
            self._jobs[job.tx_hash] = job
            while len(self._jobs) > _KEPT_JOBS:
                self._jobs.popitem(last=False)
        logger.info("relayed a signed %s", signed.kind)
        return job.tx_hash

    def _check_revoke_applies(self, signed: SignedConsent) -> None:
        message = signed.message
        current = self.suite.consent.get_grant(
            signed.patient,
            Web3.to_checksum_address(message["grantee"]),
            parse_scope(message["scope"]),
        )
        applies = (
            signed.issued_at >= current.issued_at
            if current.live
            else signed.issued_at > current.issued_at
        )
        if not applies:
            raise PatientRequestError(
                409,
                "A newer change exists",
                "this access was changed after you signed; reload and sign again",
            )

    def status(self, patient: ChecksumAddress, tx_hash: str) -> TxView:
        """Where ``tx_hash`` stands: a relay of this patient's, or a transaction they sent.

        Raises:
            PatientRequestError: 404 if it is neither.
            ChainUnavailableError: If the chain cannot be reached.
        """
        with self._lock:
            job = self._jobs.get(tx_hash)
        if job is not None and job.patient == patient:
            return self._job_view(tx_hash, job)
        return self._chain_view(patient, tx_hash)

    def _job_view(self, tx_hash: str, job: _Job) -> TxView:
        if job.receipt is not None:
            raw = job.receipt.raw
            return TxView(tx_hash, "mined", job.receipt.block_number, effect=self._effect(raw))
        if job.error is not None:
            return TxView(tx_hash, "failed", reason=plain_reason(job.error))
        return TxView(tx_hash, "pending")

    def _chain_view(self, patient: ChecksumAddress, tx_hash: str) -> TxView:
        w3 = self.suite.session.w3
        found = look_up(w3, HexStr(tx_hash))
        if found.state is TxState.UNKNOWN:
            raise PatientRequestError(404, "Unknown transaction", "no such transaction of yours")
        with fail_closed(self.suite.session):
            tx = w3.eth.get_transaction(HexStr(tx_hash))
        if Web3.to_checksum_address(tx["from"]) != patient:
            raise PatientRequestError(404, "Unknown transaction", "no such transaction of yours")
        if found.receipt is None:
            return TxView(tx_hash, "pending")
        block = int(found.receipt["blockNumber"])
        if found.succeeded:
            return TxView(tx_hash, "mined", block, effect=self._effect(found.receipt))
        return TxView(tx_hash, "failed", block, reason=self._replayed_reason(dict(tx), block))

    def _replayed_reason(self, tx: dict[str, Any], block: int) -> str:
        """Replay a failed transaction as a call on its parent block's state; decode why."""
        request = {
            "from": tx["from"],
            "to": tx["to"],
            "data": Web3.to_hex(tx["input"]),
            "value": hex(int(tx.get("value", 0))),
        }
        with fail_closed(self.suite.session):
            answer = self.suite.session.w3.provider.make_request(
                RPCEndpoint("eth_call"), [request, hex(max(block - 1, 0))]
            )
        error = answer.get("error")
        data = error.get("data") if isinstance(error, dict) else None
        if isinstance(data, dict):  # Ganache
            data = data.get("result") or data.get("data")
        if isinstance(data, str) and len(data) >= 10:
            return plain_reason(decode_revert(data))
        return "the chain refused it (no reason given)"

    def _effect(self, receipt: TxReceipt) -> str:
        """What a mined consent transaction changed, in words."""
        events = self.suite.consent.events
        said = []
        for name, words in (
            ("ConsentGranted", "access given"),
            ("ConsentRevoked", "access stopped"),
            ("DelegateSet", "guardian changed"),
            ("SignatureSuperseded", "nothing changed: a newer change was already recorded"),
        ):
            if getattr(events, name)().process_receipt(receipt, errors=DISCARD):
                said.append(words)
        return "; ".join(said) or "recorded"
