"""Attacks by dishonest participants, tried through the package against real chains.

Each test plays one attacker with its real keys and the package's own code paths, and asserts
that the attack fails: nothing is released, consent stays what the patient said, and refusals
are recorded. Mempool races run on Anvil with automine off (``evm_setAutomine``), so the
attacker's transaction really is mined first in the same block.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from release_samples import CT_STUDY, RacingStore, build_ct_study

from imaging_consent import errors
from imaging_consent.access_log.break_glass import reason_commitment, sign_break_glass
from imaging_consent.chain import LocalChain, TransactionSender
from imaging_consent.consent import ALL_STUDIES, ConsentClient, Purpose, purposes_mask
from imaging_consent.contracts.consent_registry import GrantArgs
from imaging_consent.contracts.deployment import Suite, appoint, deploy, sender_for
from imaging_consent.dicom import SitePepper, study_key
from imaging_consent.gateway import ImageGateway
from imaging_consent.provenance import register_study
from imaging_consent.stores import FolderStore

PEPPER = SitePepper(b"attack-tests-site-pepper-32bytes")
OTHER_PEPPER = SitePepper(b"another-site-pepper-of-32-bytes!")
WALLET_BUILD = Path(__file__).resolve().parents[2] / "build" / "contracts" / "MockWallet1271.json"
GWEI = 10**9


@pytest.fixture(scope="module")
def ganache() -> Iterator[LocalChain]:
    with LocalChain("ganache", accounts=12) as chain:
        yield chain


@pytest.fixture(scope="module")
def anvil() -> Iterator[LocalChain]:
    with LocalChain("anvil", accounts=12) as chain:
        yield chain


@pytest.fixture(scope="module", params=["ganache", "anvil"])
def chain(request: pytest.FixtureRequest) -> LocalChain:
    """Ganache, then Anvil, for the attacks that need no mempool."""
    local: LocalChain = request.getfixturevalue(request.param)
    return local


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FolderStore:
    return FolderStore(build_ct_study(tmp_path_factory.mktemp("ct"), 2))


@dataclass
class World:
    """Two sites on one suite: site A (honest) and site B (dishonest), with their people."""

    chain: LocalChain
    suite: Suite
    store: FolderStore
    admin: LocalAccount
    site_a: LocalAccount
    site_b: LocalAccount
    gateway_a: LocalAccount
    gateway_b: LocalAccount
    doctor_a: LocalAccount  # site A's emergency clinician
    doctor_b: LocalAccount  # site B's emergency clinician
    patient: LocalAccount
    app: LocalAccount  # site B's imaging app
    relayer: LocalAccount
    guardian: LocalAccount

    def sender(self, account: LocalAccount) -> TransactionSender:
        return sender_for(self.chain.session, account)

    def client(self, account: LocalAccount) -> ConsentClient:
        return ConsentClient(self.suite, self.sender(account))

    def gateway(self, account: LocalAccount, **kwargs: Any) -> ImageGateway:
        kwargs.setdefault("outbox_path", _outbox())
        return ImageGateway(self.suite, self.sender(account), self.store, PEPPER, **kwargs)

    def register_a(self) -> bytes:
        result = register_study(
            self.suite, self.sender(self.site_a), self.store, PEPPER, CT_STUDY, self.patient.address
        )
        return result.study_key

    def logs(self, event: str, **match: Any) -> list[Any]:
        found = getattr(self.suite.access_log.events, event)().get_logs(from_block=0)
        return [log for log in found if all(log["args"][k] == v for k, v in match.items())]

    def now(self) -> int:
        return int(self.chain.session.w3.eth.get_block("latest")["timestamp"])


def _outbox() -> Path:
    """A fresh outbox path for one gateway."""
    return Path(tempfile.mkdtemp(prefix="attack-outbox-")) / "outbox.sqlite3"


def _world(chain: LocalChain, store: FolderStore) -> World:
    a = chain.accounts
    w = World(chain, None, store, *a[:11])  # type: ignore[arg-type]
    w.suite = deploy(
        chain.session, w.sender(w.admin), sites=[w.site_a.address, w.site_b.address], out_dir=None
    )
    appoint(
        w.suite.access_log, w.sender(w.site_a), gateways=[w.gateway_a.address],
        emergency=[w.doctor_a.address],
    )  # fmt: skip
    appoint(
        w.suite.access_log, w.sender(w.site_b), gateways=[w.gateway_b.address],
        emergency=[w.doctor_b.address],
    )  # fmt: skip
    return w


@pytest.fixture
def world(chain: LocalChain, store: FolderStore) -> Iterator[World]:
    snapshot = chain.snapshot()
    try:
        yield _world(chain, store)
    finally:
        chain.revert(snapshot)


@pytest.fixture
def anvil_world(anvil: LocalChain, store: FolderStore) -> Iterator[World]:
    """A world on Anvil; automine is always switched back on, and the chain reverted."""
    snapshot = anvil.snapshot()
    try:
        yield _world(anvil, store)
    finally:
        anvil.rpc("evm_setAutomine", True)
        anvil.revert(snapshot)


# --- mempool helpers ---------------------------------------------------------------------------


def _pending(chain: LocalChain) -> list[dict[str, Any]]:
    """Every pending transaction in the node's pool (``txpool_content``)."""
    pool = chain.rpc("txpool_content")
    return [tx for by_nonce in pool["pending"].values() for tx in by_nonce.values()]


def _wait_pending(chain: LocalChain, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _pending(chain)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {count} pending transaction(s), saw {_pending(chain)}")


def _send_pending(chain: LocalChain, account: LocalAccount, function: Any, *, tip_gwei: int) -> str:
    """Sign and hand a transaction to the node without waiting, with a chosen priority fee."""
    w3 = chain.session.w3
    tx = function.build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "gas": 400_000,
            "maxPriorityFeePerGas": tip_gwei * GWEI,
            "maxFeePerGas": (tip_gwei + 100) * GWEI,
            "chainId": chain.chain_id,
        }
    )
    return (
        "0x"
        + bytes(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)).hex()
    )


class _Background:
    """Run one call in a thread; keep its result or exception for the test to check."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = call()
            except BaseException as exc:  # handed to the test thread
                self.error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self, timeout: float = 60.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "background call did not finish"


def _mine_one_block(chain: LocalChain, background: _Background, pending: int) -> None:
    """Wait for ``pending`` transactions, mine them in one block, let ``background`` finish."""
    _wait_pending(chain, pending)
    chain.rpc("anvil_mine", 1)
    chain.rpc("evm_setAutomine", True)
    background.join()


def _block_order(chain: LocalChain, *hashes: str) -> list[tuple[int, int]]:
    w3 = chain.session.w3
    receipts = [w3.eth.get_transaction_receipt(h) for h in hashes]  # type: ignore[arg-type]
    return [(int(r["blockNumber"]), int(r["transactionIndex"])) for r in receipts]


# --- (a) mempool copy of a registration --------------------------------------------------------


def test_mempool_copy_of_registration_releases_nothing(anvil_world: World) -> None:
    w = anvil_world
    chain = w.chain
    chain.rpc("evm_setAutomine", False)
    honest = _Background(w.register_a)  # site A's registerStudy waits in the mempool
    (pending,) = _wait_pending(chain, 1)
    _fn, args = w.suite.studies.contract.decode_function_input(pending["input"])
    key, root, count = bytes(args["studyKey"]), bytes(args["contentRoot"]), args["instanceCount"]

    # Site B copies key and root, names itself the patient, pays more, and grants its app.
    copy = _send_pending(
        chain, w.site_b, w.suite.studies.register_study(key, w.site_b.address, root, count),
        tip_gwei=50,
    )  # fmt: skip
    own_grant = _send_pending(
        chain, w.site_b,
        w.suite.consent.grant(
            GrantArgs(w.app.address, ALL_STUDIES, purposes_mask(["TREAT"]), True, 0, 0)
        ),
        tip_gwei=50,
    )  # fmt: skip
    _mine_one_block(chain, honest, 3)

    assert honest.error is None
    (copy_at, grant_at, honest_at) = _block_order(chain, copy, own_grant, pending["hash"])
    assert copy_at[0] == honest_at[0] and copy_at[1] < honest_at[1]  # B really went first
    assert grant_at[0] == honest_at[0]
    assert w.suite.studies.study(w.site_a.address, key).patient == w.patient.address
    assert w.suite.studies.study(w.site_b.address, key).patient == w.site_b.address
    gateway = w.gateway(w.gateway_a)
    with pytest.raises(errors.ConsentDeniedError):
        gateway.release(CT_STUDY, w.app.address, "TREAT")
    assert not w.logs("AccessGranted")
    assert len(w.logs("AccessDenied", accessor=w.app.address)) == 1
    gateway.close()


# --- (b) a gateway records only for its own site ------------------------------------------------


def test_other_sites_gateway_cannot_record_or_release(world: World) -> None:
    w = world
    key = w.register_a()
    w.client(w.patient).grant(w.app.address, None, ["TREAT"], identified=True)
    gateway_b = w.gateway(w.gateway_b)
    sender_b = w.sender(w.gateway_b)
    nonce = w.chain.session.w3.eth.get_transaction_count(w.gateway_b.address)

    with pytest.raises(errors.StudyNotRegisteredError):
        sender_b.transact(
            w.suite.access_log.record_access(
                key, w.app.address, Purpose.TREAT.value, os.urandom(32)
            )
        )
    with pytest.raises(errors.StudyNotRegisteredError):
        gateway_b.release(CT_STUDY, w.app.address, "TREAT")

    assert gateway_b.site == w.site_b.address
    assert w.chain.session.w3.eth.get_transaction_count(w.gateway_b.address) == nonce
    assert not w.logs("AccessGranted") and not w.logs("AccessDenied")
    gateway_b.close()


# --- (c) break-glass needs the clinician's own signature ----------------------------------------


def test_gateway_cannot_forge_a_break_glass(world: World) -> None:
    w = world
    key = w.register_a()
    gateway = w.gateway(w.gateway_a)
    genuine = gateway.break_glass_request(w.doctor_a, CT_STUDY, "cardiac arrest")
    by_gateway = sign_break_glass(
        w.gateway_a, w.suite, w.site_a.address, key, genuine.reason_commitment
    )
    forged = replace(by_gateway, clinician=w.doctor_a.address)  # the gateway's own signature
    before = len(w.logs("BatchAnchored"))

    with pytest.raises(errors.InvalidSignatureError, match="not by clinician"):
        gateway.release(CT_STUDY, w.doctor_a.address, "ETREAT", break_glass=forged)
    with pytest.raises(errors.InvalidSignatureError) as on_chain:  # the chain refuses it too
        w.sender(w.gateway_a).transact(
            w.suite.access_log.record_break_glass(
                key, w.doctor_a.address, forged.request_id, forged.reason_commitment,
                forged.deadline, forged.signature,
            )
        )  # fmt: skip

    assert on_chain.value.error_name == "AccessLogInvalidSigner"
    assert not w.logs("BreakGlassAccess")
    assert len(w.logs("BatchAnchored", gateway=w.gateway_a.address)) == before + 1  # recorded
    gateway.close()


def test_break_glass_by_another_sites_clinician_is_refused(world: World) -> None:
    w = world
    w.register_a()
    gateway = w.gateway(w.gateway_a)
    for_site_a = gateway.break_glass_request(w.doctor_b, CT_STUDY, "stroke")
    key = study_key(PEPPER, CT_STUDY)
    for_site_b = sign_break_glass(
        w.doctor_b, w.suite, w.site_b.address, key, for_site_a.reason_commitment
    )

    with pytest.raises(errors.NotEmergencyError):
        gateway.release(CT_STUDY, w.doctor_b.address, "ETREAT", break_glass=for_site_a)
    with pytest.raises(errors.InvalidSignatureError, match="another requester, site or study"):
        gateway.release(CT_STUDY, w.doctor_b.address, "ETREAT", break_glass=for_site_b)

    assert not w.logs("BreakGlassAccess")
    assert len(w.logs("BatchAnchored", gateway=w.gateway_a.address)) == 2  # both recorded
    gateway.close()


def test_break_glass_request_id_is_single_use_and_rate_limited(world: World) -> None:
    w = world
    w.register_a()
    gateway = w.gateway(w.gateway_a)
    first = gateway.break_glass_request(w.doctor_a, CT_STUDY, "trauma bay 1")
    assert gateway.release(CT_STUDY, w.doctor_a.address, "ETREAT", break_glass=first).instances

    with pytest.raises(errors.InvalidSignatureError) as replayed:
        gateway.release(CT_STUDY, w.doctor_a.address, "ETREAT", break_glass=first)
    for n in (2, 3):
        signed = gateway.break_glass_request(w.doctor_a, CT_STUDY, f"trauma bay {n}")
        gateway.release(CT_STUDY, w.doctor_a.address, "ETREAT", break_glass=signed)
    fourth = gateway.break_glass_request(w.doctor_a, CT_STUDY, "trauma bay 4")
    with pytest.raises(errors.BreakGlassLimitError):
        gateway.release(CT_STUDY, w.doctor_a.address, "ETREAT", break_glass=fourth)

    assert replayed.value.error_name == "AccessLogRequestUsed"
    assert len(w.logs("BreakGlassAccess", clinician=w.doctor_a.address)) == 3
    _start, used = w.suite.access_log.functions.breakGlassUsage(
        w.site_a.address, w.doctor_a.address
    ).call()
    assert used == 3
    assert len(w.logs("BatchAnchored", gateway=w.gateway_a.address)) == 2  # replay and 4th
    gateway.close()


# --- (d) a relayer cannot outrun a revocation ---------------------------------------------------


def test_old_grant_front_running_a_signed_revocation_stays_revoked(anvil_world: World) -> None:
    w = anvil_world
    chain = w.chain
    key = study_key(PEPPER, CT_STUDY)
    patient = w.client(w.patient)
    old_grant = patient.sign_grant(
        w.patient.address, w.app.address, key, ["TREAT"], identified=True, key=w.patient
    )
    chain.increase_time(60)
    chain.mine()
    revocation = patient.sign_revoke(w.patient.address, w.app.address, key, key=w.patient)
    chain.rpc("evm_setAutomine", False)
    honest = _Background(lambda: w.client(w.guardian).relay_revoke(revocation))
    (revoke_tx,) = _wait_pending(chain, 1)

    m = old_grant.message
    front_run = _send_pending(
        chain, w.relayer,
        w.suite.consent.grant_by_sig(
            w.patient.address,
            GrantArgs(w.app.address, key, m["purposes"], m["identified"], m["notBefore"],
                      m["expiresAt"]),
            m["issuedAt"], m["deadline"], old_grant.signature,
        ),
        tip_gwei=80,
    )  # fmt: skip
    _mine_one_block(chain, honest, 2)

    assert honest.error is None
    (grant_at, revoke_at) = _block_order(chain, front_run, revoke_tx["hash"])
    assert grant_at[0] == revoke_at[0] and grant_at[1] < revoke_at[1]
    assert chain.session.w3.eth.get_transaction_receipt(front_run)["status"] == 1  # type: ignore[arg-type]
    assert not patient.is_permitted(w.patient.address, w.app.address, key, "TREAT").permitted
    assert patient.get_grant(w.patient.address, w.app.address, key) is None


def test_old_grant_signature_after_direct_revoke_is_refused(world: World) -> None:
    w = world
    key = study_key(PEPPER, CT_STUDY)
    patient = w.client(w.patient)
    old_grant = patient.sign_grant(
        w.patient.address, w.app.address, key, ["TREAT"], identified=True, key=w.patient
    )
    patient.revoke(w.app.address, key)
    relayer = w.client(w.relayer)
    nonce = w.chain.session.w3.eth.get_transaction_count(w.relayer.address)

    with pytest.raises(errors.SupersededSignatureError):
        relayer.relay_grant(old_grant)
    with pytest.raises(errors.SupersededSignatureError) as on_chain:
        relayer.relay_grant(old_grant, check=False)

    assert on_chain.value.error_name == "ConsentRegistrySupersededSignature"
    assert w.chain.session.w3.eth.get_transaction_count(w.relayer.address) == nonce
    assert not patient.is_permitted(w.patient.address, w.app.address, key, "TREAT").permitted


# --- (e) delegates ------------------------------------------------------------------------------


def test_delegate_cannot_grant_to_itself(world: World) -> None:
    w = world
    key = study_key(PEPPER, CT_STUDY)
    w.client(w.patient).set_delegate(w.guardian.address, expires_at=w.now() + 86400)
    guardian = w.client(w.guardian)
    nonce = w.chain.session.w3.eth.get_transaction_count(w.guardian.address)

    with pytest.raises(errors.InvalidGrantError) as refused:
        guardian.grant_for(w.patient.address, w.guardian.address, None, ["TREAT"], identified=True)

    assert refused.value.error_name == "ConsentRegistrySelfGrant"
    assert w.chain.session.w3.eth.get_transaction_count(w.guardian.address) == nonce
    assert not guardian.is_permitted(w.patient.address, w.guardian.address, key, "TREAT").permitted


def test_delegate_grant_front_running_its_removal_stops_counting(anvil_world: World) -> None:
    w = anvil_world
    chain = w.chain
    key = study_key(PEPPER, CT_STUDY)
    patient = w.client(w.patient)
    end = w.now() + 86400
    patient.set_delegate(w.guardian.address, expires_at=end)
    chain.rpc("evm_setAutomine", False)
    honest = _Background(lambda: w.client(w.patient).remove_delegate(w.guardian.address))
    (removal,) = _wait_pending(chain, 1)

    grant = _send_pending(
        chain, w.guardian,
        w.suite.consent.grant_for(
            w.patient.address,
            GrantArgs(w.app.address, ALL_STUDIES, purposes_mask(["TREAT"]), True, 0, end),
        ),
        tip_gwei=80,
    )  # fmt: skip
    _mine_one_block(chain, honest, 2)

    assert honest.error is None
    (grant_at, removal_at) = _block_order(chain, grant, removal["hash"])
    assert grant_at[0] == removal_at[0] and grant_at[1] < removal_at[1]
    stored = w.suite.consent.get_grant(w.patient.address, w.app.address, ALL_STUDIES)
    assert stored.live and stored.delegation != 0  # the grant landed, made by the delegation
    assert not patient.is_permitted(w.patient.address, w.app.address, key, "TREAT").permitted


# --- (f) a downgrade between the gateway's check and its record ---------------------------------


def test_downgrade_racing_the_record_releases_nothing_identified(anvil_world: World) -> None:
    w = anvil_world
    chain = w.chain
    key = w.register_a()
    w.client(w.patient).grant(w.app.address, key, ["TREAT"], identified=True)
    downgrade = w.suite.consent.grant(
        GrantArgs(w.app.address, key, purposes_mask(["TREAT"]), False, 0, 0)
    )
    sent: list[str] = []

    def downgrade_now() -> None:  # the patient's change reaches the mempool first, paying more
        sent.append(_send_pending(chain, w.patient, downgrade, tip_gwei=90))

    store: Any = RacingStore(w.store, downgrade_now)
    gateway = ImageGateway(w.suite, w.sender(w.gateway_a), store, PEPPER, outbox_path=_outbox())
    chain.rpc("evm_setAutomine", False)
    release = _Background(lambda: gateway.release(CT_STUDY, w.app.address, "TREAT"))
    _mine_one_block(chain, release, 2)  # the downgrade, then the gateway's recordAccess

    assert isinstance(release.error, errors.ConsentDeniedError), release.error
    assert "de-identified" in str(release.error)
    assert release.result is None
    (granted,) = w.logs("AccessGranted", accessor=w.app.address)
    assert granted["args"]["identified"] is False  # the chain recorded the narrowed consent
    (downgrade_at,) = _block_order(chain, sent[0])
    assert downgrade_at[0] == granted["blockNumber"]
    assert downgrade_at[1] < granted["transactionIndex"]
    gateway.close()


# --- (g) reason commitments are keyed -----------------------------------------------------------


def test_reason_commitment_is_keyed_by_the_site_pepper(world: World) -> None:
    w = world
    w.register_a()
    gateway = w.gateway(w.gateway_a)
    reason = "unconscious after overdose"
    signed = gateway.break_glass_request(w.doctor_a, CT_STUDY, reason)

    release = gateway.release(CT_STUDY, w.doctor_a.address, "ETREAT", break_glass=signed)

    (event,) = w.logs("BreakGlassAccess", requestId=release.request_id)
    on_chain = bytes(event["args"]["reasonCommitment"])
    assert on_chain == reason_commitment(PEPPER, reason)
    assert on_chain != bytes(keccak(reason.encode()))
    assert on_chain != hashlib.sha256(reason.encode()).digest()
    assert on_chain != reason_commitment(OTHER_PEPPER, reason)
    assert reason.encode() not in json.dumps(dict(event["args"]), default=str).encode()
    gateway.close()


# --- (h) an EIP-1271 wallet patient rotates its key ---------------------------------------------


def test_contract_wallet_patient_rotates_owner_and_keeps_grants(world: World) -> None:
    if not WALLET_BUILD.is_file():
        pytest.skip(
            f"{WALLET_BUILD} is missing: run `make compile` (brownie compiles "
            "contracts/test/MockWallet1271.sol) to test EIP-1271 patients"
        )
    w = world
    build = json.loads(WALLET_BUILD.read_text())
    session = w.chain.session
    old_owner, new_owner = w.guardian, w.doctor_b
    factory = session.w3.eth.contract(abi=build["abi"], bytecode=build["bytecode"])
    wallet_address = w.sender(old_owner).transact(factory.constructor(old_owner.address))
    assert wallet_address.contract_address is not None
    wallet = session.w3.eth.contract(address=wallet_address.contract_address, abi=build["abi"])
    key = study_key(PEPPER, CT_STUDY)
    relayer = w.client(w.relayer)

    signed = relayer.sign_grant(
        wallet.address, w.app.address, key, ["TREAT"], identified=True, key=old_owner
    )
    relayer.relay_grant(signed)
    w.sender(old_owner).transact(wallet.functions.setOwner(new_owner.address))
    stale = relayer.sign_grant(
        wallet.address, w.relayer.address, key, ["TREAT"], identified=True, key=old_owner
    )
    nonce = session.w3.eth.get_transaction_count(w.relayer.address)
    with pytest.raises(errors.InvalidSignatureError) as refused:
        relayer.relay_grant(stale)
    assert session.w3.eth.get_transaction_count(w.relayer.address) == nonce
    fresh = relayer.sign_grant(
        wallet.address, w.relayer.address, key, ["TREAT"], identified=False, key=new_owner
    )
    relayer.relay_grant(fresh)

    assert refused.value.error_name == "ConsentRegistryInvalidSigner"
    assert relayer.is_permitted(wallet.address, w.app.address, key, "TREAT").identified
    assert relayer.is_permitted(wallet.address, w.relayer.address, key, "TREAT").permitted
