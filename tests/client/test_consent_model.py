"""Model-based test of the v2 consent rules, against the real contracts on Anvil.

Hypothesis draws 100 runs of exactly 50 steps each (a list of operations, shrunk to a minimal
failing run on failure), driving a patient, two grantees, a delegate, a relayer and two sites
through direct grants and revocations, signed grants, revocations and cancellations relayed in
any order (so signatures race each other and the state), delegations that are set, removed and
expire, exclusions, study registrations in two sites' namespaces, and time jumps. After every
step the chain's ``isPermitted`` and ``checkAccess`` must equal a plain Python model of the
rules in docs/trust-model.md. 100 examples of 50 steps each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imaging_consent import errors
from imaging_consent.chain import LocalChain
from imaging_consent.consent import ALL_STUDIES, ConsentClient, Purpose, SignedConsent
from imaging_consent.contracts.deployment import Suite, deploy, sender_for

S1, S2 = bytes.fromhex("a1" * 32), bytes.fromhex("b2" * 32)
STUDIES = (S1, S2)
SCOPES = (S1, S2, ALL_STUDIES)
PURPOSES = (Purpose.TREAT, Purpose.HRESCH)
HOUR = 3600
ROOT = bytes.fromhex("cc" * 32)
# Account indexes on the dev chain.
SITE_A, SITE_B, PATIENT, OTHER_PATIENT, G1, G2, DELEGATE, RELAYER = range(8)


@dataclass
class Slot:
    purposes: frozenset[Purpose] = frozenset()
    identified: bool = False
    expires_at: int = 0
    issued_at: int = 0
    delegation: int = 0


@dataclass
class Model:
    slots: dict[tuple[str, bytes], Slot] = field(default_factory=dict)
    delegations: dict[int, tuple[bytes, int]] = field(default_factory=dict)  # id -> scope, end
    active: int = 0
    next_id: int = 1
    excluded: set[bytes] = field(default_factory=set)
    registry: dict[tuple[str, bytes], str] = field(default_factory=dict)

    def slot(self, grantee: str, scope: bytes) -> Slot:
        return self.slots.get((grantee, scope), Slot())

    def in_force(self, slot: Slot, now: int) -> bool:
        if not slot.purposes or (slot.expires_at and now >= slot.expires_at):
            return False
        if slot.delegation:
            _scope, end = self.delegations[slot.delegation]
            return now < end
        return True

    def permits(self, grantee: str, study: bytes, purpose: Purpose, now: int) -> tuple[bool, bool]:
        decisive = self.slot(grantee, study)
        if not self.in_force(decisive, now):
            if study in self.excluded:
                return False, False
            decisive = self.slot(grantee, ALL_STUDIES)
            if not self.in_force(decisive, now):
                return False, False
        ok = purpose in decisive.purposes
        return ok, ok and decisive.identified


@pytest.fixture(scope="module")
def anvil() -> Iterator[LocalChain]:
    with LocalChain("anvil") as chain:
        yield chain


@pytest.fixture(scope="module")
def suite(anvil: LocalChain) -> Suite:
    sites = [anvil.accounts[SITE_A].address, anvil.accounts[SITE_B].address]
    return deploy(anvil.session, sender_for(anvil.session, anvil.accounts[0]), sites=sites,
                  out_dir=None)  # fmt: skip


class ConsentMachine:
    """The actors, the model, and one method per operation."""

    def __init__(self, chain: LocalChain, suite: Suite) -> None:
        self.chain, self.suite = chain, suite
        session, accounts = chain.session, chain.accounts
        self.addr = [a.address for a in accounts]
        self.patient_key = accounts[PATIENT]
        self.client = ConsentClient(self.suite, sender_for(session, accounts[PATIENT]))
        self.delegate = ConsentClient(self.suite, sender_for(session, accounts[DELEGATE]))
        self.relayer = ConsentClient(self.suite, sender_for(session, accounts[RELAYER]))
        self.site_senders = {
            SITE_A: sender_for(session, accounts[SITE_A]),
            SITE_B: sender_for(session, accounts[SITE_B]),
        }
        self.model = Model()
        self.pending: list[SignedConsent] = []

    # --- helpers ---------------------------------------------------------------------------

    def now(self) -> int:
        return int(self.chain.session.w3.eth.get_block("latest")["timestamp"])

    def mined_at(self, receipt: Any) -> int:
        return int(self.chain.session.w3.eth.get_block(receipt.block_number)["timestamp"])

    def advance(self, seconds: int) -> None:
        self.chain.rpc("evm_increaseTime", seconds)
        self.chain.rpc("evm_mine")

    # --- direct changes --------------------------------------------------------------------

    def grant(
        self, grantee: int, scope: bytes, purposes: set[Purpose], identified: bool, hours: int
    ) -> None:
        end = self.now() + hours * HOUR + 60 if hours else 0
        receipt = self.client.grant(
            self.addr[grantee], scope, purposes, identified=identified, expires_at=end
        )
        self.model.slots[(self.addr[grantee], scope)] = Slot(
            frozenset(purposes), identified, end, self.mined_at(receipt)
        )

    def revoke(self, grantee: int, scope: bytes) -> None:
        receipt = self.client.revoke(self.addr[grantee], scope)
        self.model.slots[(self.addr[grantee], scope)] = Slot(issued_at=self.mined_at(receipt))

    def cancel_signatures(self, grantee: int, scope: bytes) -> None:
        receipt = self.client.cancel_signatures(self.addr[grantee], scope)
        key = (self.addr[grantee], scope)
        self.model.slots[key] = replace(self.model.slot(*key), issued_at=self.mined_at(receipt))

    def set_exclusion(self, study: bytes, excluded: bool) -> None:
        self.client.set_exclusion(study, excluded)
        (self.model.excluded.add if excluded else self.model.excluded.discard)(study)

    # --- delegations -----------------------------------------------------------------------

    def appoint_delegate(self, scope: bytes, hours: int) -> None:
        end = self.now() + hours * HOUR + 60
        self.client.set_delegate(self.addr[DELEGATE], expires_at=end, scope=scope)
        if self.model.active:  # a new delegation replaces the active one
            old_scope, _ = self.model.delegations[self.model.active]
            self.model.delegations[self.model.active] = (old_scope, 0)
        self.model.active, self.model.next_id = self.model.next_id, self.model.next_id + 1
        self.model.delegations[self.model.active] = (scope, end)

    def remove_delegate(self) -> None:
        self.client.remove_delegate(self.addr[DELEGATE])
        if self.model.active:
            scope, _ = self.model.delegations[self.model.active]
            self.model.delegations[self.model.active] = (scope, 0)
        self.model.active = 0

    def grant_for(self, grantee: int, scope: bytes, hours: int) -> None:
        now = self.now()
        active = self.model.active
        d_scope, d_end = self.model.delegations.get(active, (b"", 0))
        end = now + hours * HOUR if hours else d_end
        allowed = (
            active != 0
            and now < d_end
            and d_scope in (ALL_STUDIES, scope)
            and grantee != DELEGATE
            and 0 < end <= d_end
        )
        try:
            receipt = self.delegate.grant_for(
                self.addr[PATIENT], self.addr[grantee], scope, [Purpose.TREAT],
                identified=True, expires_at=end,
            )  # fmt: skip
        except (errors.NotDelegateError, errors.InvalidGrantError):
            assert not allowed, "a permitted delegate grant was refused"
            return
        assert allowed, "a delegate grant outside its delegation was accepted"
        self.model.slots[(self.addr[grantee], scope)] = Slot(
            frozenset({Purpose.TREAT}), True, end, self.mined_at(receipt), active
        )

    # --- signatures ------------------------------------------------------------------------

    def sign(self, grantee: int, scope: bytes, kind: str, identified: bool) -> None:
        to, key = self.addr[grantee], self.patient_key
        if kind == "grant":
            signed = self.client.sign_grant(
                key.address, to, scope, [Purpose.HRESCH], identified=identified, key=key
            )
        elif kind == "revoke":
            signed = self.client.sign_revoke(key.address, to, scope, key=key)
        else:
            signed = self.client.sign_cancel(key.address, to, scope, key=key)
        self.pending.append(signed)

    def relay(self, pick: int) -> None:
        if not self.pending:
            return
        signed = self.pending.pop(pick % len(self.pending))
        self.advance(2)  # chain time passes the signature's issuedAt
        message = signed.message
        key = (message["grantee"], bytes.fromhex(message["scope"][2:]))
        slot = self.model.slot(*key)
        issued = signed.issued_at
        relay = {
            "grant": self.relayer.relay_grant,
            "revoke": self.relayer.relay_revoke,
            "cancel": self.relayer.relay_cancel,
        }[signed.kind]
        try:
            receipt = relay(signed, check=False)
        except (errors.SignatureExpiredError, errors.SupersededSignatureError) as exc:
            expired = self.now() + 1 > signed.deadline
            superseded = signed.kind == "grant" and issued <= slot.issued_at
            assert expired or superseded, f"a valid signed {signed.kind} was refused: {exc}"
            return
        assert self.mined_at(receipt) <= signed.deadline
        if signed.kind == "grant":
            assert issued > slot.issued_at, "a superseded grant signature was applied"
            self.model.slots[key] = Slot(
                frozenset({Purpose.HRESCH}), bool(message["identified"]), 0, issued
            )
        elif signed.kind == "revoke":
            if (slot.purposes and issued >= slot.issued_at) or issued > slot.issued_at:
                self.model.slots[key] = Slot(issued_at=max(issued, slot.issued_at))
        elif issued > slot.issued_at:
            self.model.slots[key] = replace(slot, issued_at=issued)

    # --- sites and time --------------------------------------------------------------------

    def register(self, site: int, study: bytes, patient: int) -> None:
        key = (self.addr[site], study)
        sender = self.site_senders[site]
        try:
            sender.transact(self.suite.studies.register_study(study, self.addr[patient], ROOT, 1))
        except errors.StudyExistsError:
            assert key in self.model.registry, "a first registration was refused"
            return
        assert key not in self.model.registry, "a site registered the same key twice"
        self.model.registry[key] = self.addr[patient]

    def time_passes(self, hours: int) -> None:
        self.advance(hours * HOUR)

    # --- the invariant ---------------------------------------------------------------------

    def chain_agrees_with_model(self) -> None:
        now = self.now()
        consent, log = self.suite.consent, self.suite.access_log
        for grantee in (G1, G2, DELEGATE):
            for study in STUDIES:
                for purpose in PURPOSES:
                    expected = self.model.permits(self.addr[grantee], study, purpose, now)
                    got = consent.is_permitted(
                        self.addr[PATIENT], self.addr[grantee], study, purpose.value
                    )
                    assert (got.permitted, got.identified) == expected, (grantee, study, purpose)
        for site in (SITE_A, SITE_B):
            for study in STUDIES:
                owner = self.model.registry.get((self.addr[site], study))
                if owner is None:
                    with pytest.raises(errors.StudyNotRegisteredError):
                        log.check_access(self.addr[site], study, self.addr[G1], 0)
                    continue
                decision = log.check_access(self.addr[site], study, self.addr[G1], 0)
                assert decision.patient == owner
                expected = (
                    self.model.permits(self.addr[G1], study, Purpose.TREAT, now)
                    if owner == self.addr[PATIENT]
                    else (False, False)  # the other patient never grants
                )
                assert (decision.permitted, decision.identified) == expected


GRANTEES = st.sampled_from((G1, G2))
SCOPE = st.sampled_from(SCOPES)
STEP = st.one_of(
    st.tuples(
        st.just("grant"), GRANTEES, SCOPE, st.sets(st.sampled_from(PURPOSES), min_size=1),
        st.booleans(), st.sampled_from((0, 3, 30)),
    ),
    st.tuples(st.just("revoke"), GRANTEES, SCOPE),
    st.tuples(st.just("cancel_signatures"), GRANTEES, SCOPE),
    st.tuples(st.just("set_exclusion"), st.sampled_from(STUDIES), st.booleans()),
    st.tuples(st.just("appoint_delegate"), SCOPE, st.sampled_from((3, 30))),
    st.tuples(st.just("remove_delegate")),
    st.tuples(
        st.just("grant_for"), st.sampled_from((G1, G2, DELEGATE)), SCOPE,
        st.sampled_from((0, 2, 40)),
    ),
    st.tuples(
        st.just("sign"), GRANTEES, SCOPE, st.sampled_from(("grant", "revoke", "cancel")),
        st.booleans(),
    ),
    st.tuples(st.just("relay"), st.integers(0, 7)),
    st.tuples(st.just("relay"), st.integers(0, 7)),
    st.tuples(
        st.just("register"), st.sampled_from((SITE_A, SITE_B)), st.sampled_from(STUDIES),
        st.sampled_from((PATIENT, OTHER_PATIENT)),
    ),
    st.tuples(st.just("time_passes"), st.sampled_from((1, 5, 31))),
)  # fmt: skip


def test_consent_rules_match_the_model(anvil: LocalChain, suite: Suite) -> None:
    """100 runs of 50 steps; after every step the chain agrees with the model."""

    @settings(
        max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(steps=st.lists(STEP, min_size=50, max_size=50))
    def run(steps: list[tuple[Any, ...]]) -> None:
        snapshot = anvil.snapshot()
        try:
            machine = ConsentMachine(anvil, suite)
            machine.chain_agrees_with_model()
            for name, *args in steps:
                getattr(machine, name)(*args)
                machine.chain_agrees_with_model()
        finally:
            anvil.revert(snapshot)

    run()
