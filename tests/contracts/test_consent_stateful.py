"""Stateful: ConsentRegistry and AccessLog against a plain Python model of the v2 rules.

A hypothesis RuleBasedStateMachine (brownie 1.22.2's own `state_machine` fixture is broken, see
the toolchain notes) drives random direct grants and revokes, signed grants, revocations and
cancellations relayed in any order (issuedAt ordering, supersession, expiry, lifetime), delegations
with scopes, expiries, replacement and removal, grants and revokes by delegates, exclusions, study
registrations in two sites' namespaces, accesses recorded by each site's gateway, and time travel.
Every transaction's outcome (applied, or which custom error) is predicted by the model, and after
every step `isPermitted` and `getGrant` are compared with the model for every (patient, grantee,
key, purpose) of the universe, in one batched JSON-RPC request.

Each example starts from a chain snapshot and reverts to it. On Ganache a step costs about 0.2 s,
so `make test` runs 10 examples of up to 50 steps (about 2 minutes) and `make test-stateful` the
full 100 (about 22 minutes; SM_EXAMPLES / SM_STEPS set them). The same rules are checked at 100
runs of exactly 50 steps on Anvil in `make test` by tests/client/test_consent_model.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import brownie
from brownie import chain, web3
from consent_values import ALL_STUDIES, HRESCH, STUDY_A, STUDY_B, TREAT
from eip712_messages import sign_cancel, sign_grant, sign_revoke
from eth_hash.auto import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

KEYS = (STUDY_A, STUDY_B)
SCOPES = (STUDY_A, STUDY_B, ALL_STUDIES)
PURPOSES = (TREAT, HRESCH)
MAX_LIFETIME = 30 * 86_400
TX = {"gas_limit": 800_000, "silent": True}  # no estimate: a revert is mined and decoded


@dataclass(frozen=True)
class Slot:
    purposes: int = 0
    identified: bool = False
    not_before: int = 0
    expires_at: int = 0
    issued_at: int = 0
    delegation: int = 0


@dataclass(frozen=True)
class Signed:
    kind: str  # "Grant", "Revoke" or "Cancel"
    patient: int
    grantee: int
    scope: bytes
    issued_at: int
    deadline: int
    terms: tuple = ()
    signature: bytes = b""


class Model:
    """The v2 rules, written out plainly."""

    def __init__(self):
        self.slots: dict[tuple, Slot] = {}
        self.delegations: dict[tuple, tuple[bytes, int, int]] = {}  # (p, d) -> scope, exp, id
        self.expiry_of: dict[tuple, int] = {}  # (p, id) -> expiry while current
        self.count: dict[int, int] = {}
        self.excluded: set[tuple] = set()
        self.studies: dict[tuple, int] = {}  # (site, key) -> patient index

    def slot(self, p, g, scope) -> Slot:
        return self.slots.get((p, g, scope), Slot())

    def in_force(self, p, s: Slot, now: int) -> bool:
        if s.purposes == 0 or now < s.not_before:
            return False
        if s.expires_at != 0 and now >= s.expires_at:
            return False
        return s.delegation == 0 or now < self.expiry_of.get((p, s.delegation), 0)

    def permitted(self, p, g, key, purpose, now) -> tuple[bool, bool]:
        def decide(s):
            ok = s.purposes >> purpose & 1 == 1
            return ok, ok and s.identified

        if key != ALL_STUDIES:
            study = self.slot(p, g, key)
            if self.in_force(p, study, now):
                return decide(study)
            if (p, key) in self.excluded:
                return False, False
        everything = self.slot(p, g, ALL_STUDIES)
        return decide(everything) if self.in_force(p, everything, now) else (False, False)

    def terms_error(self, g_is_zero, purposes, not_before, expires_at, now):
        if g_is_zero:
            return "ConsentRegistryZeroGrantee"
        if purposes == 0 or purposes & ~0x7F:
            return "ConsentRegistryInvalidPurposes"
        if expires_at != 0 and (expires_at <= not_before or expires_at <= now):
            return "ConsentRegistryInvalidWindow"
        return None

    def active_delegation(self, p, d, scope, now):
        scope_, exp, ident = self.delegations.get((p, d), (ALL_STUDIES, 0, 0))
        if exp <= now or (scope_ != ALL_STUDIES and scope_ != scope):
            return None
        return exp, ident


def test_consent_stateful_matches_model(
    consent,
    study_registry,
    access_log,
    accounts,
    admin,
    site,
    other_site,
    gateway,
    other_gateway,
    relayer,
):
    patients = [accounts.add(), accounts.add()]
    for p in patients:
        admin.transfer(p, "10 ether", silent=True)
    grantees = [accounts[2], accounts[3]]
    delegates = [accounts[3], accounts[4]]  # delegate 0 is also grantee 1: self-grants happen
    sites = [site, other_site]
    gateways = [gateway, other_gateway]
    view = web3.eth.contract(address=consent.address, abi=consent.abi)
    root = keccak(b"content")

    def latest() -> int:
        return int(web3.eth.get_block("latest").timestamp)

    def send(fn, *args, sender):
        """Send; return (receipt, None) or (receipt, error name) for a revert."""
        try:
            return fn(*args, {"from": sender} | TX), None
        except brownie.exceptions.VirtualMachineError as exc:
            return exc.txid and chain.get_transaction(exc.txid), (exc.revert_msg or "").split(":")[
                0
            ]

    class ConsentMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            chain.snapshot()
            self.model = Model()
            self.signed: list[Signed] = []
            self.requests = 0

        def teardown(self):
            chain.revert()

        def expect(self, outcome, error):
            tx, got = outcome
            assert got == error, (got, error)
            return tx

        # --- direct changes by the patient -------------------------------------------------

        @rule(
            p=st.integers(0, 1),
            g=st.integers(0, 1),
            scope=st.sampled_from(SCOPES),
            purposes=st.sampled_from([0b1, 0b100, 0b101, 0x7F, 0, 0x80]),
            identified=st.booleans(),
            starts_in=st.sampled_from([0, 0, 20]),
            lasts=st.sampled_from([0, 0, 30, 300]),
        )
        def grant(self, p, g, scope, purposes, identified, starts_in, lasts):
            now = latest()
            nb = now + starts_in if starts_in else 0
            exp = now + starts_in + lasts if lasts else 0
            tx, err = send(
                consent.grant,
                grantees[g],
                scope,
                purposes,
                identified,
                nb,
                exp,
                sender=patients[p],
            )
            expected = self.model.terms_error(False, purposes, nb, exp, tx.timestamp)
            assert err == expected, (err, expected)
            if err is None:
                self.model.slots[(p, g, scope)] = Slot(
                    purposes, identified, nb, exp, tx.timestamp, 0
                )

        @rule(p=st.integers(0, 1), g=st.integers(0, 1), scope=st.sampled_from(SCOPES))
        def revoke(self, p, g, scope):
            tx = self.expect(send(consent.revoke, grantees[g], scope, sender=patients[p]), None)
            self.model.slots[(p, g, scope)] = Slot(issued_at=tx.timestamp)

        @rule(p=st.integers(0, 1), g=st.integers(0, 1), scope=st.sampled_from(SCOPES))
        def cancel_signatures(self, p, g, scope):
            tx = self.expect(
                send(consent.cancelSignatures, grantees[g], scope, sender=patients[p]), None
            )
            key = (p, g, scope)
            self.model.slots[key] = replace(self.model.slot(*key), issued_at=tx.timestamp)

        @rule(p=st.integers(0, 1), key=st.sampled_from(KEYS), excluded=st.booleans())
        def set_exclusion(self, p, key, excluded):
            self.expect(send(consent.setExclusion, key, excluded, sender=patients[p]), None)
            (self.model.excluded.add if excluded else self.model.excluded.discard)((p, key))

        # --- delegates ------------------------------------------------------------------------

        @rule(
            p=st.integers(0, 1),
            d=st.integers(0, 1),
            scope=st.sampled_from(SCOPES),
            lasts=st.sampled_from([0, 60, 600, 6000]),
        )
        def set_delegate(self, p, d, scope, lasts):
            exp = latest() + lasts if lasts else 0
            self.expect(
                send(consent.setDelegate, delegates[d], scope, exp, sender=patients[p]), None
            )
            m = self.model
            old = m.delegations.get((p, d))
            if old:
                m.expiry_of.pop((p, old[2]), None)
            m.count[p] = m.count.get(p, 0) + 1
            m.delegations[(p, d)] = (scope, exp, m.count[p])
            if exp:
                m.expiry_of[(p, m.count[p])] = exp

        @rule(
            p=st.integers(0, 1),
            d=st.integers(0, 1),
            g=st.integers(0, 1),
            scope=st.sampled_from(SCOPES),
            purposes=st.sampled_from([0b1, 0b101, 0]),
            identified=st.booleans(),
            lasts=st.sampled_from([0, 40, 400, 10_000]),
        )
        def grant_for(self, p, d, g, scope, purposes, identified, lasts):
            now = latest()
            exp = now + lasts if lasts else 0
            tx, err = send(
                consent.grantFor,
                patients[p],
                grantees[g],
                scope,
                purposes,
                identified,
                0,
                exp,
                sender=delegates[d],
            )
            m, t = self.model, tx.timestamp
            active = m.active_delegation(p, d, scope, t)
            if active is None:
                expected = "ConsentRegistryNotDelegate"
            elif grantees[g] == delegates[d]:
                expected = "ConsentRegistrySelfGrant"
            elif exp == 0 or exp > active[0]:
                expected = "ConsentRegistryOutsideDelegation"
            else:
                expected = m.terms_error(False, purposes, 0, exp, t)
            assert err == expected, (err, expected)
            if err is None:
                m.slots[(p, g, scope)] = Slot(purposes, identified, 0, exp, t, active[1])

        @rule(
            p=st.integers(0, 1),
            d=st.integers(0, 1),
            g=st.integers(0, 1),
            scope=st.sampled_from(SCOPES),
        )
        def revoke_for(self, p, d, g, scope):
            tx, err = send(consent.revokeFor, patients[p], grantees[g], scope, sender=delegates[d])
            active = self.model.active_delegation(p, d, scope, tx.timestamp)
            assert err == (None if active else "ConsentRegistryNotDelegate"), err
            if err is None:
                self.model.slots[(p, g, scope)] = Slot(issued_at=tx.timestamp)

        # --- signatures: signed now, relayed later, in any order ------------------------------

        @rule(
            kind=st.sampled_from(["Grant", "Grant", "Revoke", "Cancel"]),
            p=st.integers(0, 1),
            g=st.integers(0, 1),
            scope=st.sampled_from(SCOPES),
            purposes=st.sampled_from([0b1, 0b101, 0x7F]),
            identified=st.booleans(),
            lifetime=st.sampled_from([50, 500, MAX_LIFETIME, MAX_LIFETIME + 1]),
        )
        def sign(self, kind, p, g, scope, purposes, identified, lifetime):
            chain.mine(timestamp=latest() + 1)  # a fresh second, as a wallet signing now
            issued_at = latest()
            common = dict(
                patient=patients[p],
                grantee=grantees[g],
                scope=scope,
                issued_at=issued_at,
                deadline=issued_at + lifetime,
            )
            key = patients[p].private_key
            if kind == "Grant":
                sig = sign_grant(consent, key, purposes=purposes, identified=identified, **common)
                terms = (purposes, identified, 0, 0)
            else:
                sig = (sign_revoke if kind == "Revoke" else sign_cancel)(consent, key, **common)
                terms = ()
            self.signed.append(
                Signed(kind, p, g, scope, issued_at, issued_at + lifetime, terms, sig)
            )

        @precondition(lambda self: self.signed)
        @rule(pick=st.integers(0, 1000))
        def relay(self, pick):
            s = self.signed[pick % len(self.signed)]
            who = (patients[s.patient], grantees[s.grantee], s.scope)
            if s.kind == "Grant":
                outcome = send(
                    consent.grantBySig,
                    *who,
                    *s.terms,
                    s.issued_at,
                    s.deadline,
                    s.signature,
                    sender=relayer,
                )
            else:
                fn = consent.revokeBySig if s.kind == "Revoke" else consent.cancelBySig
                outcome = send(fn, *who, s.issued_at, s.deadline, s.signature, sender=relayer)
            tx, err = outcome
            m, t, key = self.model, tx.timestamp, (s.patient, s.grantee, s.scope)
            current = m.slot(*key)
            if t > s.deadline:
                expected = "ConsentRegistryExpiredSignature"
            elif s.deadline > s.issued_at + MAX_LIFETIME:
                expected = "ConsentRegistrySignatureLifetimeTooLong"
            elif s.kind == "Grant" and s.issued_at <= current.issued_at:
                expected = "ConsentRegistrySupersededSignature"
            else:
                expected = None
            assert err == expected, (s.kind, err, expected)
            if err is not None:
                return
            events = [e.name for e in tx.events]
            if s.kind == "Grant":
                m.slots[key] = Slot(*s.terms, s.issued_at, 0)
                assert events == ["ConsentGranted", "SignatureUsed"]
                return
            if s.kind == "Revoke":
                live = current.purposes != 0
                applies = (
                    s.issued_at >= current.issued_at if live else s.issued_at > current.issued_at
                )
                if applies:
                    m.slots[key] = Slot(issued_at=s.issued_at)
                    assert events == ["ConsentRevoked", "SignatureUsed"]
                else:
                    assert events == ["SignatureSuperseded"]
                return
            if s.issued_at > current.issued_at:
                m.slots[key] = replace(current, issued_at=s.issued_at)
                assert events == ["SignaturesCancelled", "SignatureUsed"]
            else:
                assert events == ["SignatureSuperseded"]

        # --- sites, studies and gateways --------------------------------------------------------

        @rule(site_index=st.integers(0, 1), key=st.sampled_from(KEYS), p=st.integers(0, 1))
        def register_study(self, site_index, key, p):
            exists = (site_index, key) in self.model.studies
            self.expect(
                send(
                    study_registry.registerStudy,
                    key,
                    patients[p],
                    root,
                    1,
                    sender=sites[site_index],
                ),
                "StudyRegistryStudyExists" if exists else None,
            )
            if not exists:
                self.model.studies[(site_index, key)] = p

        @rule(
            gw=st.integers(0, 1),
            key=st.sampled_from(KEYS),
            g=st.integers(0, 1),
            purpose=st.sampled_from(PURPOSES),
        )
        def record_access(self, gw, key, g, purpose):
            self.requests += 1
            request = keccak(f"request-{self.requests}".encode())
            tx, err = send(
                access_log.recordAccess, key, grantees[g], purpose, request, sender=gateways[gw]
            )
            p = self.model.studies.get((gw, key))
            assert err == (None if p is not None else "StudyRegistryUnknownStudy"), err
            if err is None:
                expected = self.model.permitted(p, g, key, purpose, tx.timestamp)
                assert tuple(tx.return_value) == expected
                event = tx.events[0]
                assert event.name == ("AccessGranted" if expected[0] else "AccessDenied")
                assert event["patient"] == patients[p]

        # --- time -----------------------------------------------------------------------------

        @rule(seconds=st.sampled_from([1, 15, 45, 200, 900, 8000]))
        def sleep(self, seconds):
            chain.mine(timestamp=latest() + seconds)

        # --- after every step -----------------------------------------------------------------

        @invariant()
        def chain_matches_model(self):
            now = latest()
            calls, expected = [], []
            for p in (0, 1):
                for g in (0, 1):
                    for scope in SCOPES:
                        calls.append(
                            view.functions.getGrant(patients[p].address, grantees[g].address, scope)
                        )
                        s = self.model.slot(p, g, scope)
                        expected.append(
                            (
                                s.purposes,
                                s.identified,
                                s.not_before,
                                s.expires_at,
                                s.issued_at,
                                s.delegation,
                            )
                        )
                        for purpose in PURPOSES:
                            calls.append(
                                view.functions.isPermitted(
                                    patients[p].address, grantees[g].address, scope, purpose
                                )
                            )
                            expected.append(self.model.permitted(p, g, scope, purpose, now))
            with web3.batch_requests() as batch:
                for call in calls:
                    batch.add(call)
                results = batch.execute()
            got = [tuple(r) if isinstance(r, (list, tuple)) else r for r in results]
            assert got == expected

    ConsentMachine.TestCase.settings = settings(
        max_examples=int(os.environ.get("SM_EXAMPLES", 10)),
        stateful_step_count=int(os.environ.get("SM_STEPS", 50)),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    ConsentMachine.TestCase().runTest()
