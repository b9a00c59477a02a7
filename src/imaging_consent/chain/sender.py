"""Sending transactions signed locally, from one account, through one ordered nonce queue.

Design:

- One :class:`TransactionSender` per account and process. Nonces come from the chain
  (``pending``) once, then are counted locally under a lock held while a nonce is assigned,
  the transaction signed and handed to the node. Transactions therefore reach the node in
  nonce order, whatever the number of threads, and no nonce is skipped or used twice.
- Fee look-ups and receipt waits run outside the lock, so threads overlap there. Gas
  estimation runs inside it, in nonce order (see ``_sign_and_send`` for why).
- A reverting transaction is caught by gas estimation and never sent. The raw revert data go
  to an optional decoder (the contracts layer plugs in its custom-error decoder there).
- Sending is retried with the *same signed bytes* on transport errors, which is idempotent:
  the same bytes have the same hash, and "already known" counts as success.
- An ``on_signed`` hook sees each transaction's hash, nonce and signed bytes before it is
  broadcast, so a caller can make them durable first and look the transaction up after a crash.
- A transaction not mined within ``replace_after`` seconds is replaced: the same nonce, signed
  again with both fees raised by at least 12.5%, at most ``max_replacements`` times. Whichever
  of them is mined first is the answer; the nonce is used exactly once either way.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import requests
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_typing import ChecksumAddress, HexStr
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxParams, TxReceipt

from imaging_consent.chain.receipts import (
    OnSigned,
    RevertDecoder,
    TransactionReceipt,
    TxState,
    look_up,
)
from imaging_consent.chain.session import ChainSession, redact_url
from imaging_consent.errors import (
    ChainUnavailableError,
    ContractRevertedError,
    TransactionError,
    TransactionRejectedError,
    TransactionRevertedError,
    TransactionTimeoutError,
)

__all__ = ["OnSigned", "RevertDecoder", "TransactionReceipt", "TransactionSender"]

logger = logging.getLogger(__name__)

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.HTTPError,
    ConnectionError,
    TimeoutError,
)
# Node answers meaning "this exact transaction is already in the pool or chain".
_ALREADY_KNOWN = ("already known", "known transaction", "already imported", "alreadyknown")
# Node answers meaning "that nonce is already used" (Geth/Anvil, Ganache).
_NONCE_TOO_LOW = ("nonce too low", "correct nonce", "nonce has already been used")
# Node answer meaning "another transaction with that nonce waits in the pool" (same fees).
_NONCE_PENDING = ("replacement transaction underpriced",)
# A second sender of this account (another gateway process) can take the nonce between a
# resync and the send; each such collision means that sender got a transaction through.
_NONCE_ATTEMPTS = 30
_DEFAULT_PRIORITY_FEE = Web3.to_wei(1, "gwei")
_FEE_FIELDS = ("maxFeePerGas", "maxPriorityFeePerGas", "gasPrice")


def _bumped(fee: int) -> int:
    """``fee`` raised by at least 12.5% (rounded up, and by at least 1 wei)."""
    return fee + max((fee + 7) // 8, 1)


def _revert_bytes(exc: ContractLogicError) -> bytes:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data") or data.get("result")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""


def _rpc_message(exc: Web3RPCError) -> str:
    response = exc.rpc_response or {}
    error = response.get("error")
    if isinstance(error, Mapping):
        return str(error.get("message", exc.user_message or exc))
    return str(exc.user_message or exc)


class TransactionSender:
    """Signs transactions for one account locally and sends them in nonce order.

    Thread-safe: any number of threads may call :meth:`send` and :meth:`transact` at once.
    Make exactly one sender per account (and per process): two senders for one account would
    hand out the same nonces.
    """

    def __init__(
        self,
        session: ChainSession,
        account: LocalAccount,
        *,
        confirmations: int = 0,
        receipt_timeout: float = 120.0,
        gas_multiplier: float = 1.25,
        priority_fee: int | None = None,
        error_decoder: RevertDecoder | Callable[[bytes], Exception | None] | None = None,
        send_retries: int = 5,
        poll_interval: float = 0.05,
        replace_after: float | None = 30.0,
        max_replacements: int = 3,
    ) -> None:
        """Make a sender.

        Args:
            session: The chain to send on.
            account: The signing account (its key stays in this process).
            confirmations: Blocks to wait for after the receipt's block (0: the receipt is
                enough). On a chain that only mines on demand, more than 0 waits for others'
                blocks.
            receipt_timeout: Seconds to wait for the receipt and confirmations.
            gas_multiplier: Margin applied to the node's gas estimate.
            priority_fee: Tip per gas in wei; by default the node's suggestion
                (``eth_maxPriorityFeePerGas``), or 1 gwei if it has none.
            error_decoder: Turns revert data into typed exceptions (see :class:`RevertDecoder`).
            send_retries: Attempts to hand a signed transaction to the node on transport errors.
            poll_interval: Seconds between receipt polls.
            replace_after: Seconds without a receipt after which a transaction is replaced by
                one with the same nonce and fees raised by at least 12.5% (None: never).
            max_replacements: Most replacements per transaction.

        Raises:
            ValueError: If a number is out of range.
        """
        if (
            confirmations < 0
            or receipt_timeout <= 0
            or gas_multiplier < 1
            or send_retries < 1
            or (replace_after is not None and replace_after <= 0)
            or max_replacements < 0
        ):
            raise ValueError(
                "confirmations must be >= 0, receipt_timeout > 0, gas_multiplier >= 1, "
                "send_retries >= 1, replace_after > 0 (or None) and max_replacements >= 0"
            )
        self.session = session
        self.account = account
        self.address: ChecksumAddress = account.address
        self.confirmations = confirmations
        self.receipt_timeout = receipt_timeout
        self.gas_multiplier = gas_multiplier
        self.priority_fee = priority_fee
        self.error_decoder = error_decoder
        self.send_retries = send_retries
        self.poll_interval = poll_interval
        self.replace_after = replace_after
        self.max_replacements = max_replacements
        self._lock = threading.Lock()
        self._next_nonce: int | None = None

    @property
    def _w3(self) -> Web3:
        return self.session.w3

    # --- public --------------------------------------------------------------------------------

    def resync_nonce(self) -> None:
        """Forget the local nonce count; the next send asks the chain again.

        Call this after something else moved the account's nonce (another sender, a chain
        revert to a snapshot).
        """
        with self._lock:
            self._next_nonce = None

    def transact(
        self,
        function: ContractFunction | ContractConstructor,
        *,
        on_signed: OnSigned | None = None,
        **overrides: Any,
    ) -> TransactionReceipt:
        """Send a call to a contract function (or a deployment) and wait for it to be mined.

        Args:
            function: A bound web3 contract function, e.g. ``contract.functions.grant(...)``,
                or a constructor, e.g. ``Contract.constructor(...)``.
            on_signed: Called with each signed transaction before it is broadcast (see
                :meth:`send`).
            **overrides: Transaction fields (``value``, ``gas``, ``maxFeePerGas``, ...).

        Returns:
            The receipt of the mined transaction.

        Raises:
            TransactionRevertedError: If it reverts (or a decoded subclass from the decoder).
            TransactionRejectedError: If the node refuses it.
            TransactionTimeoutError: If it is not mined in time.
            ChainUnavailableError: If the node cannot be reached.
        """
        tx: dict[str, Any] = dict(overrides)
        if isinstance(function, ContractConstructor):
            tx["data"] = function.data_in_transaction
        else:
            tx["to"] = function.address
            # web3.py's own encoder for a bound function (selector + ABI-encoded arguments).
            tx["data"] = function._encode_transaction_data()
        return self.send(cast(TxParams, tx), on_signed=on_signed)

    def send(
        self, tx_params: TxParams | Mapping[str, Any], *, on_signed: OnSigned | None = None
    ) -> TransactionReceipt:
        """Fill in, sign, send and wait for one transaction (replacing it if it is stuck).

        ``chainId``, ``nonce``, ``gas`` (estimate times ``gas_multiplier``) and EIP-1559 fees
        are filled in; ``gas`` and fees may be given. ``nonce`` must not be: the sender owns it.
        ``on_signed(tx_hash, nonce, raw)`` runs after signing and before broadcasting, for the
        transaction and for each replacement; if it raises, that transaction is not sent (and
        a first transaction's nonce stays free).

        Returns:
            The receipt once mined and ``confirmations`` deep.

        Raises:
            ValueError: If ``from``, ``chainId`` or ``nonce`` disagree with this sender.
            TransactionRevertedError: If it reverts, in estimation (nothing was sent) or when
                mined (``tx_hash`` set); or the decoder's typed exception.
            TransactionRejectedError: If the node refuses it (nothing was mined).
            TransactionTimeoutError: If it is not mined in time (it may still be).
            ChainUnavailableError: If the node cannot be reached before sending.
            TransactionError: If the node became unreachable while the signed transaction
                was handed over (``tx_hash`` set; it may have arrived).
        """
        tx = self._prepare(tx_params)
        tx_hash, nonce = self._sign_and_send(tx, on_signed)
        return self._wait([tx_hash], nonce, tx, on_signed)

    def rebroadcast(self, raw: bytes) -> TransactionReceipt | None:
        """Hand signed bytes sent earlier to the node again, and wait for them to be mined.

        For a transaction a reorganisation removed or a pool dropped: the same bytes have the
        same hash, so it is mined at most once. It is not replaced if it is stuck.

        Returns:
            The receipt once mined and ``confirmations`` deep, or None if its nonce is already
            used by another transaction (then these bytes can never be mined).

        Raises:
            TransactionRevertedError: If it reverts when mined.
            TransactionRejectedError: If the node refuses it for another reason.
            TransactionTimeoutError: If it is not mined in time.
            TransactionError: If the node cannot be reached.
        """
        tx_hash = HexStr("0x" + keccak(raw).hex())
        try:
            self._send_raw(raw, tx_hash)
        except _NonceTakenError:
            return None
        sent = self._w3.eth.get_transaction(tx_hash)
        tx: dict[str, Any] = {
            "from": self.address,
            "to": sent.get("to"),
            "data": sent.get("input"),
            "value": sent.get("value", 0),
            "gas": sent["gas"],
        }
        return self._wait([tx_hash], int(sent["nonce"]), tx, None, replace=False)

    # --- filling in ----------------------------------------------------------------------------

    def _prepare(self, tx_params: TxParams | Mapping[str, Any]) -> dict[str, Any]:
        tx: dict[str, Any] = dict(tx_params)
        if "nonce" in tx:
            raise ValueError("do not set 'nonce': the sender assigns nonces in order")
        sender = tx.setdefault("from", self.address)
        if Web3.to_checksum_address(sender) != self.address:
            raise ValueError(f"'from' is {sender}, but this sender signs for {self.address}")
        chain_id = tx.setdefault("chainId", self.session.chain_id)
        if chain_id != self.session.chain_id:
            raise ValueError(
                f"'chainId' is {chain_id}, but the session is on {self.session.chain_id}"
            )
        if "to" in tx and tx["to"] is not None:
            tx["to"] = Web3.to_checksum_address(tx["to"])
        tx.setdefault("value", 0)
        try:
            if "gasPrice" not in tx:
                self._fill_fees(tx)
        except _TRANSPORT_ERRORS as exc:
            raise self._unavailable(exc) from exc
        return tx

    def _fill_fees(self, tx: dict[str, Any]) -> None:
        if "maxPriorityFeePerGas" not in tx:
            tip = self.priority_fee
            if tip is None:
                try:
                    tip = int(self._w3.eth.max_priority_fee)
                except (Web3RPCError, ValueError):
                    tip = _DEFAULT_PRIORITY_FEE
            # Ganache 7 suggests 0 on an idle chain; a zero tip is never worth mining.
            tx["maxPriorityFeePerGas"] = max(int(tip), 1)
        if "maxFeePerGas" not in tx:
            base_fee = int(self._w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
            # Room for the base fee to double, as wallets do, so a busy block cannot strand it.
            tx["maxFeePerGas"] = 2 * base_fee + int(tx["maxPriorityFeePerGas"])

    def _estimate_gas(self, tx: dict[str, Any]) -> int:
        probe = {k: v for k, v in tx.items() if k != "gas"}
        try:
            estimate = self._w3.eth.estimate_gas(cast(TxParams, probe))
        except ContractLogicError as exc:
            raise self._revert_error(
                _revert_bytes(exc), None, f"transaction would revert ({exc.message}); not sent"
            ) from exc
        except Web3RPCError as exc:
            message = _rpc_message(exc)
            if "revert" in message.lower():
                raise self._revert_error(
                    b"", None, f"transaction would revert ({message}); not sent"
                ) from exc
            raise TransactionRejectedError(f"gas estimation failed: {message}; not sent") from exc
        return math.ceil(int(estimate) * self.gas_multiplier)

    # --- the ordered queue ---------------------------------------------------------------------

    def _sign_and_send(self, tx: dict[str, Any], on_signed: OnSigned | None) -> tuple[HexStr, int]:
        with self._lock:
            if "gas" not in tx:
                # Estimated in nonce order, so a transaction that depends on this sender's
                # previous one (grant, then revoke) is estimated on the state after it on an
                # instant-mining chain. It also keeps estimation off Ganache while it mines:
                # Ganache 7.9.2 sometimes never answered an eth_estimateGas that arrived
                # during another request's instamine.
                try:
                    tx["gas"] = self._estimate_gas(tx)
                except _TRANSPORT_ERRORS as exc:
                    raise self._unavailable(exc) from exc
            for _attempt in range(_NONCE_ATTEMPTS):
                if self._next_nonce is None:
                    self._next_nonce = self._chain_nonce()
                nonce = self._next_nonce
                signed = self.account.sign_transaction({**tx, "nonce": nonce})
                tx_hash = HexStr("0x" + bytes(signed.hash).hex())
                raw = bytes(signed.raw_transaction)
                if on_signed is not None:
                    on_signed(tx_hash, nonce, raw)  # raises: not sent, nonce still free
                try:
                    self._send_raw(raw, tx_hash)
                except (_NonceTakenError, _NonceBusyError):
                    # Someone else used this nonce (another process, a revert): ask the chain.
                    logger.warning("nonce %d already used, resyncing", nonce)
                    self._next_nonce = None
                    continue
                except BaseException:
                    # Unknown whether the node got it: ask the chain before the next send.
                    self._next_nonce = None
                    raise
                self._next_nonce = nonce + 1
                logger.debug("sent %s (nonce %d)", tx_hash, nonce)
                return tx_hash, nonce
            raise TransactionRejectedError(
                "the nonce kept being taken by another sender of this account; not sent"
            )

    def _chain_nonce(self) -> int:
        try:
            return int(self._w3.eth.get_transaction_count(self.address, "pending"))
        except _TRANSPORT_ERRORS as exc:
            raise self._unavailable(exc) from exc

    def _send_raw(self, raw: bytes, tx_hash: HexStr) -> None:
        last: BaseException | None = None
        for attempt in range(self.send_retries):
            try:
                if attempt:
                    time.sleep(min(0.05 * 2**attempt, 2.0))
                    # Ask before resending: Ganache 7.9.2 mines a replayed nonce-0
                    # transaction a second time, so "same bytes" alone is not idempotent there.
                    if self._is_known(tx_hash):
                        return
                self._w3.eth.send_raw_transaction(raw)
                return
            except Web3RPCError as exc:
                message = _rpc_message(exc).lower()
                if any(known in message for known in _ALREADY_KNOWN):
                    return
                if any(low in message for low in _NONCE_TOO_LOW):
                    if self._is_known(tx_hash):
                        return  # an earlier attempt of these very bytes got through
                    raise _NonceTakenError from exc
                if any(busy in message for busy in _NONCE_PENDING) and not self._is_known(tx_hash):
                    raise _NonceBusyError(
                        f"node refused transaction {tx_hash}: {_rpc_message(exc)}", tx_hash=tx_hash
                    ) from exc
                raise TransactionRejectedError(
                    f"node refused transaction {tx_hash}: {_rpc_message(exc)}", tx_hash=tx_hash
                ) from exc
            except _TRANSPORT_ERRORS as exc:
                last = exc
                logger.warning("sending %s failed (%s), resending", tx_hash, type(exc).__name__)
        assert last is not None
        raise self._unavailable(last, tx_hash) from last

    def _is_known(self, tx_hash: HexStr) -> bool:
        try:
            self._w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            return False
        return True

    # --- waiting -------------------------------------------------------------------------------

    def _wait(
        self,
        hashes: list[HexStr],
        nonce: int,
        tx: dict[str, Any],
        on_signed: OnSigned | None,
        *,
        replace: bool = True,
    ) -> TransactionReceipt:
        """Wait until one of ``hashes`` (one nonce) is mined, replacing it while it is stuck;
        sent anew with a fresh nonce if another sender of this account took that nonce."""
        started = time.monotonic()
        deadline = started + self.receipt_timeout
        replacements = 0
        while True:
            found = self._poll_any(hashes)
            if found is not None:
                tx_hash, receipt = found
                break
            now = time.monotonic()
            if now > deadline:
                raise TransactionTimeoutError(
                    f"transaction {hashes[-1]} (nonce {nonce}) not mined with "
                    f"{self.confirmations} confirmations within {self.receipt_timeout:.0f} s; "
                    "it may still be",
                    tx_hash=hashes[-1],
                )
            due = (
                replace
                and self.replace_after is not None
                and replacements < self.max_replacements
                and now - started >= self.replace_after * (replacements + 1)
            )
            if due:
                replacements += 1
                try:
                    replaced = self._replace(tx, nonce, on_signed, hashes[-1])
                except _NonceTakenError:  # mined: one of ours, or another sender's of this account
                    replaced = None
                    if self._lost(hashes):  # another's: ours can never be mined now
                        logger.warning("nonce %d went to another transaction; sending anew", nonce)
                        tx_hash, nonce = self._sign_and_send(tx, on_signed)
                        hashes = [tx_hash]
                if replaced is not None:
                    hashes.append(replaced[0])
                    tx = replaced[1]
            time.sleep(self.poll_interval)
        if receipt["status"] != 1:
            raise self._mined_revert(receipt, tx_hash, tx)
        return TransactionReceipt.of(receipt, tx_hash, nonce, self.address)

    def _poll_any(self, hashes: list[HexStr]) -> tuple[HexStr, TxReceipt] | None:
        for tx_hash in reversed(hashes):
            try:
                receipt = self._poll(tx_hash)
            except _TRANSPORT_ERRORS as exc:
                logger.warning("polling %s failed (%s)", tx_hash, type(exc).__name__)
                continue
            if receipt is not None:
                return tx_hash, receipt
        return None

    def _lost(self, hashes: list[HexStr]) -> bool:
        """True if the node has none of ``hashes``, mined or pending (False if it cannot say)."""
        try:
            return all(look_up(self._w3, tx_hash).state is TxState.UNKNOWN for tx_hash in hashes)
        except ChainUnavailableError:
            return False

    def _replace(
        self, tx: dict[str, Any], nonce: int, on_signed: OnSigned | None, stuck: HexStr
    ) -> tuple[HexStr, dict[str, Any]] | None:
        """Send ``tx`` again with the same nonce and higher fees; None if that failed.

        Raises:
            _NonceTakenError: If a transaction with this nonce is already mined.
        """
        bumped = {k: _bumped(int(v)) if k in _FEE_FIELDS else v for k, v in tx.items()}
        signed = self.account.sign_transaction({**bumped, "nonce": nonce})
        tx_hash = HexStr("0x" + bytes(signed.hash).hex())
        raw = bytes(signed.raw_transaction)
        try:
            if on_signed is not None:
                on_signed(tx_hash, nonce, raw)
            self._send_raw(raw, tx_hash)
        except _NonceTakenError:
            raise  # a transaction with this nonce was mined: the caller looks whose
        except Exception as exc:  # the ones already sent may still be mined: keep waiting
            logger.warning("replacing %s failed (%s)", stuck, type(exc).__name__)
            return None
        logger.info("%s not mined in time: replaced by %s (nonce %d)", stuck, tx_hash, nonce)
        return tx_hash, bumped

    def _poll(self, tx_hash: HexStr) -> TxReceipt | None:
        """Return the receipt once ``confirmations`` deep, else None.

        The receipt is fetched afresh on every poll, so a reorganisation that drops or moves
        the transaction is followed rather than trusted from an old answer.
        """
        try:
            receipt = self._w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None
        if receipt.get("blockNumber") is None:
            return None
        if self.confirmations == 0:
            return receipt
        head = int(self._w3.eth.block_number)
        return receipt if head - int(receipt["blockNumber"]) >= self.confirmations else None

    def _mined_revert(self, receipt: TxReceipt, tx_hash: HexStr, tx: dict[str, Any]) -> Exception:
        # Receipts carry no revert data: replay the call on the parent block's state to get
        # it (best effort; transactions earlier in the same block are not replayed).
        data = b""
        block = int(receipt["blockNumber"])
        call: dict[str, Any] = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
        call["gas"] = tx["gas"]
        try:
            self._w3.eth.call(cast(TxParams, call), max(block - 1, 0))
        except ContractLogicError as exc:
            data = _revert_bytes(exc)
        except Exception:  # the replay is only for a better message
            logger.debug("replaying reverted %s failed", tx_hash, exc_info=True)
        return self._revert_error(data, tx_hash, f"transaction {tx_hash} reverted in block {block}")

    def _revert_error(self, data: bytes, tx_hash: HexStr | None, message: str) -> Exception:
        if self.error_decoder is not None and data:
            decoded = self.error_decoder(data)
            if decoded is not None:
                if isinstance(decoded, ContractRevertedError):
                    decoded.revert_data = data
                    decoded.tx_hash = tx_hash
                return decoded
        if data:
            message = f"{message}; revert data 0x{data[:4].hex()}..."
        return TransactionRevertedError(message, revert_data=data, tx_hash=tx_hash)

    def _unavailable(self, exc: BaseException, tx_hash: HexStr | None = None) -> Exception:
        shown = redact_url(self.session.rpc_url)
        if tx_hash is None:
            return ChainUnavailableError(f"cannot reach {shown}: {type(exc).__name__}")
        return TransactionError(
            f"cannot reach {shown} to send {tx_hash} ({type(exc).__name__}); it may or may "
            "not have been received",
            tx_hash=tx_hash,
        )


class _NonceTakenError(Exception):
    """Internal: the node says the nonce is used, and not by these bytes."""


class _NonceBusyError(TransactionRejectedError):
    """Another transaction with this nonce waits in the node's pool, not these bytes: a new
    transaction resyncs its nonce; elsewhere (a replacement, a rebroadcast) it is a refusal."""
