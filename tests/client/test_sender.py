"""The transaction sender: filling in, ordered nonces under threads, reverts and resends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from chain_helpers import (
    ALWAYS_REVERTS,
    ANSWER_ABI,
    REVERTS_WITH_DATA,
    CountingProxy,
    init_code,
)
from eth_typing import ChecksumAddress

from imaging_consent.chain import LocalChain, TransactionReceipt, TransactionSender, connect
from imaging_consent.errors import (
    ContractError,
    ContractRevertedError,
    TransactionRejectedError,
    TransactionRevertedError,
)


def _deploy(sender: TransactionSender, runtime_hex: str) -> ChecksumAddress:
    receipt = sender.send({"data": init_code(runtime_hex)})
    assert receipt.contract_address is not None
    return receipt.contract_address


def test_send_transfer_returns_receipt(clean_chain: LocalChain) -> None:
    sender = TransactionSender(clean_chain.session, clean_chain.accounts[0])
    to = clean_chain.accounts[1].address
    w3 = clean_chain.session.w3
    before = w3.eth.get_balance(to)

    receipt = sender.send({"to": to, "value": 12345})

    assert isinstance(receipt, TransactionReceipt)
    assert receipt.status == 1 and receipt.gas_used == 21000
    assert receipt.sender == clean_chain.accounts[0].address
    assert w3.eth.get_balance(to) == before + 12345
    assert w3.eth.get_transaction(receipt.tx_hash)["nonce"] == receipt.nonce
    assert w3.eth.get_transaction(receipt.tx_hash)["type"] == 2  # EIP-1559


def test_send_deploys_contract(clean_chain: LocalChain) -> None:
    sender = TransactionSender(clean_chain.session, clean_chain.accounts[0])

    address = _deploy(sender, "602a60005260206000f3")  # returns 42

    contract = clean_chain.session.w3.eth.contract(address=address, abi=ANSWER_ABI)
    assert contract.functions.answer().call() == 42


def test_transact_contract_function(clean_chain: LocalChain) -> None:
    sender = TransactionSender(clean_chain.session, clean_chain.accounts[0])
    address = _deploy(sender, "602a60005260206000f3")
    contract = clean_chain.session.w3.eth.contract(address=address, abi=ANSWER_ABI)

    receipt = sender.transact(contract.functions.answer(), gas=50_000)

    assert receipt.status == 1
    tx = clean_chain.session.w3.eth.get_transaction(receipt.tx_hash)
    assert tx["to"] == address and tx["gas"] == 50_000
    assert bytes(tx["input"]) == bytes.fromhex("85bb7d69")  # answer()


def test_send_reverting_call_raises_and_sends_nothing(clean_chain: LocalChain) -> None:
    sender = TransactionSender(clean_chain.session, clean_chain.accounts[0])
    address = _deploy(sender, ALWAYS_REVERTS)
    w3 = clean_chain.session.w3
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    block = w3.eth.block_number

    with pytest.raises(TransactionRevertedError, match="not sent") as caught:
        sender.send({"to": address, "data": "0x12345678"})

    assert caught.value.tx_hash is None
    assert isinstance(caught.value, ContractError)
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce
    assert w3.eth.block_number == block
    assert sender.send({"to": clean_chain.accounts[1].address}).nonce == nonce  # no gap


class DeadBeefError(ContractRevertedError):
    """A decoded custom error, as the contracts layer will produce."""


def _decode(revert_data: bytes) -> Exception | None:
    if revert_data[:4] == bytes.fromhex("deadbeef"):
        return DeadBeefError("DeadBeef()")
    return None


def test_send_revert_data_goes_to_decoder(clean_chain: LocalChain) -> None:
    sender = TransactionSender(clean_chain.session, clean_chain.accounts[0], error_decoder=_decode)
    address = _deploy(sender, REVERTS_WITH_DATA)

    with pytest.raises(DeadBeefError) as caught:
        sender.send({"to": address})

    assert caught.value.revert_data == bytes.fromhex("deadbeef")
    assert caught.value.tx_hash is None


def test_send_mined_revert_carries_hash_and_data(clean_chain: LocalChain) -> None:
    sender = TransactionSender(clean_chain.session, clean_chain.accounts[0])
    address = _deploy(sender, REVERTS_WITH_DATA)

    with pytest.raises(TransactionRevertedError, match="reverted in block") as caught:
        sender.send({"to": address, "gas": 100_000})  # given gas: no estimation, so it is mined

    error = caught.value
    assert error.tx_hash is not None
    assert clean_chain.session.w3.eth.get_transaction_receipt(error.tx_hash)["status"] == 0
    assert error.revert_data == bytes.fromhex("deadbeef")


def test_send_rejected_keeps_nonce(clean_chain: LocalChain) -> None:
    sender = TransactionSender(clean_chain.session, clean_chain.accounts[0])
    w3 = clean_chain.session.w3
    to = clean_chain.accounts[1].address
    first = sender.send({"to": to})
    too_much = w3.eth.get_balance(sender.address) * 2

    with pytest.raises(TransactionRejectedError):
        sender.send({"to": to, "value": too_much, "gas": 21000})

    assert sender.send({"to": to}).nonce == first.nonce + 1


def test_send_refuses_foreign_nonce_and_sender(clean_chain: LocalChain) -> None:
    sender = TransactionSender(clean_chain.session, clean_chain.accounts[0])

    with pytest.raises(ValueError, match="nonce"):
        sender.send({"to": clean_chain.accounts[1].address, "nonce": 0})
    with pytest.raises(ValueError, match="from"):
        sender.send({"from": clean_chain.accounts[1].address, "to": sender.address})


def test_send_resyncs_after_nonce_used_elsewhere(clean_chain: LocalChain) -> None:
    account = clean_chain.accounts[0]
    to = clean_chain.accounts[1].address
    mine = TransactionSender(clean_chain.session, account)
    other = TransactionSender(clean_chain.session, account)
    first = mine.send({"to": to})
    # Takes the nonce `mine` has counted to next. A different value keeps the bytes apart from
    # what `mine` signs next: byte-identical transactions share a hash, and the sender rightly
    # treats "nonce too low" for a hash the node knows as its own transaction having arrived.
    other.send({"to": to, "value": 1})

    receipt = mine.send({"to": to})

    assert receipt.nonce == first.nonce + 2


def test_send_lost_answer_is_not_sent_twice(clean_chain: LocalChain) -> None:
    with CountingProxy(clean_chain.rpc_url, drop_answer_to="eth_sendRawTransaction") as proxy:
        session = connect(proxy.url, clean_chain.chain_id)
        sender = TransactionSender(session, clean_chain.accounts[0])
        to = clean_chain.accounts[1].address
        start = session.w3.eth.get_transaction_count(sender.address)

        receipt = sender.send({"to": to, "value": 7})
        following = sender.send({"to": to, "value": 8})

    assert proxy.dropped == 1
    # The node got the first one: the sender asks, finds it, and does not resend.
    assert proxy.methods["eth_sendRawTransaction"] == 2
    assert proxy.methods["eth_getTransactionByHash"] == 1
    assert receipt.nonce == start and following.nonce == start + 1
    assert clean_chain.session.w3.eth.get_transaction_count(sender.address) == start + 2


def test_send_lost_request_resends_same_bytes(clean_chain: LocalChain) -> None:
    with CountingProxy(clean_chain.rpc_url, drop_request_to="eth_sendRawTransaction") as proxy:
        session = connect(proxy.url, clean_chain.chain_id)
        sender = TransactionSender(session, clean_chain.accounts[0])
        to = clean_chain.accounts[1].address
        start = session.w3.eth.get_transaction_count(sender.address)

        receipt = sender.send({"to": to, "value": 7})

    assert proxy.dropped == 1
    assert proxy.methods["eth_sendRawTransaction"] == 2  # lost, then the same bytes again
    assert receipt.nonce == start
    assert clean_chain.session.w3.eth.get_transaction_count(sender.address) == start + 1


def test_send_request_count(clean_chain: LocalChain) -> None:
    with CountingProxy(clean_chain.rpc_url) as proxy:
        session = connect(proxy.url, clean_chain.chain_id)
        sender = TransactionSender(session, clean_chain.accounts[0])
        sender.send({"to": clean_chain.accounts[1].address})  # first: nonce fetched
        proxy.reset()

        sender.send({"to": clean_chain.accounts[1].address})

    # Fees (tip + latest block), gas estimate, send, then the receipt: one poll when the block
    # is already mined, more if the node is slow to publish it (a loaded machine).
    polls = proxy.methods["eth_getTransactionReceipt"]
    assert polls >= 1
    assert proxy.requests - polls == 4, proxy.methods


THREADS = 8
PER_THREAD = 50


def test_concurrent_sends_use_every_nonce_once(clean_chain: LocalChain) -> None:
    session = clean_chain.session
    w3 = session.w3
    sender = TransactionSender(session, clean_chain.accounts[0])
    to = clean_chain.accounts[1].address
    start = w3.eth.get_transaction_count(sender.address, "pending")
    receipts: list[TransactionReceipt] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(PER_THREAD):
                receipt = sender.send({"to": to, "value": 1})
                with lock:
                    receipts.append(receipt)
        except BaseException as exc:  # reported below, with the others
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    elapsed = time.perf_counter() - started

    total = THREADS * PER_THREAD
    assert not failures, failures[:3]
    assert len(receipts) == total
    assert sorted(r.nonce for r in receipts) == list(range(start, start + total))
    assert sorted(w3.eth.get_transaction(r.tx_hash)["nonce"] for r in receipts) == list(
        range(start, start + total)
    )
    assert all(r.status == 1 for r in receipts)
    # Nothing stuck in the pool: pending and mined counts agree.
    assert w3.eth.get_transaction_count(sender.address, "latest") == start + total
    assert w3.eth.get_transaction_count(sender.address, "pending") == start + total
    print(f"\n{clean_chain.kind.value}: {total} transactions from 8 threads in {elapsed:.1f} s")


# --- stuck transactions (Anvil, automine off) --------------------------------------------------


@pytest.fixture(scope="module")
def anvil() -> Iterator[LocalChain]:
    with LocalChain("anvil") as chain:
        yield chain


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_stuck_transaction_is_replaced_and_queue_moves_on(anvil: LocalChain) -> None:
    w3 = anvil.session.w3
    sender = TransactionSender(
        anvil.session, anvil.accounts[7], replace_after=0.5, max_replacements=2
    )
    to = anvil.accounts[8].address
    signed: list[tuple[str, int]] = []
    outcome: list[TransactionReceipt] = []
    start = w3.eth.get_transaction_count(sender.address, "pending")
    anvil.rpc("evm_setAutomine", False)
    try:
        thread = threading.Thread(
            target=lambda: outcome.append(
                sender.send(
                    {"to": to, "value": 1}, on_signed=lambda h, n, _raw: signed.append((h, n))
                )
            )
        )
        thread.start()
        _wait_for(lambda: len(signed) == 1 and _in_pool(anvil, signed[0][0]))
        stuck = w3.eth.get_transaction(signed[0][0])  # type: ignore[arg-type]
        _wait_for(lambda: len(signed) == 2 and _in_pool(anvil, signed[1][0]))
        replacement = w3.eth.get_transaction(signed[1][0])  # type: ignore[arg-type]
        assert not _in_pool(anvil, signed[0][0])  # the node dropped the stuck one
        anvil.rpc("anvil_mine", 1)
        thread.join(timeout=20)
    finally:
        anvil.rpc("evm_setAutomine", True)

    (receipt,) = outcome
    assert receipt.tx_hash == signed[1][0] and receipt.nonce == start
    assert [n for _, n in signed] == [start, start]
    for fee in ("maxFeePerGas", "maxPriorityFeePerGas"):
        assert replacement[fee] * 8 >= stuck[fee] * 9  # at least +12.5%
    later = sender.send({"to": to, "value": 2})
    assert later.nonce == start + 1
    assert w3.eth.get_transaction_count(sender.address, "latest") == start + 2
    assert w3.eth.get_transaction_count(sender.address, "pending") == start + 2


def _in_pool(chain: LocalChain, tx_hash: str) -> bool:
    pool = chain.rpc("txpool_content")["pending"]
    return any(tx["hash"] == tx_hash for by_nonce in pool.values() for tx in by_nonce.values())


def test_on_signed_failure_sends_nothing(clean_chain: LocalChain) -> None:
    sender = TransactionSender(clean_chain.session, clean_chain.accounts[0])
    w3 = clean_chain.session.w3
    nonce = w3.eth.get_transaction_count(sender.address, "pending")

    def refuse(_h: str, _n: int, _raw: bytes) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        sender.send({"to": clean_chain.accounts[1].address}, on_signed=refuse)

    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce
    assert sender.send({"to": clean_chain.accounts[1].address}).nonce == nonce  # no gap
