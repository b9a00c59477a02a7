"""Stateful: across random grants, revokes, expiries, registrations and accesses, every
recordAccess emits exactly one of AccessGranted / AccessDenied, the one ConsentRegistry.isPermitted
gives at that block, and returns the same (permitted, identified) answer.

A plain hypothesis RuleBasedStateMachine: brownie 1.22.2's own `state_machine` fixture is broken
(see the toolchain notes). Each example starts from a chain snapshot and reverts to it.
"""

import brownie
from brownie import chain
from eth_hash.auto import keccak
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

ALL_STUDIES = bytes(32)
STUDIES = [keccak(f"study-{i}".encode()) for i in range(3)]
PURPOSES = st.integers(min_value=0, max_value=3)


def test_record_access_matches_is_permitted(
    access_log, consent, study_registry, site, gateway, accounts
):
    patients = [accounts[1], accounts[5]]
    grantees = [accounts[2], accounts[3], accounts[4]]
    root = keccak(b"content")

    class AccessMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            chain.snapshot()
            self.patient_of = {}
            self.recorded = 0
            for i in (0, 1):
                study_registry.registerStudy(STUDIES[i], patients[i], root, 1, {"from": site})
                self.patient_of[STUDIES[i]] = patients[i]

        def teardown(self):
            chain.revert()

        @rule(study=st.integers(0, 2), patient=st.integers(0, 1))
        def register(self, study, patient):
            key = STUDIES[study]
            if key in self.patient_of:
                return
            study_registry.registerStudy(key, patients[patient], root, 1, {"from": site})
            self.patient_of[key] = patients[patient]

        grants = Bundle("grants")

        @rule(
            target=grants,
            scope=st.integers(0, 3),
            patient=st.integers(0, 1),
            grantee=st.integers(0, 2),
            purposes=st.integers(1, 15),
            identified=st.booleans(),
            starts_in=st.sampled_from([0, 0, 30]),
            lasts=st.sampled_from([0, 20, 100]),
        )
        def grant(self, scope, patient, grantee, purposes, identified, starts_in, lasts):
            """Grant, mostly by the study's own patient; returns a study the grant may cover."""
            key = ALL_STUDIES if scope == 3 else STUDIES[scope]
            owner = self.patient_of.get(key, patients[patient])
            now = chain.time()
            not_before = now + starts_in if starts_in else 0
            expires_at = now + starts_in + lasts if lasts else 0
            consent.grant(
                grantees[grantee],
                key,
                purposes,
                identified,
                not_before,
                expires_at,
                {"from": owner},
            )
            covered = [
                k for k, p in self.patient_of.items() if p == owner and key in (k, ALL_STUDIES)
            ]
            bits = [b for b in range(4) if purposes >> b & 1]
            return (covered[0] if covered else STUDIES[scope % 3], grantee, bits)

        @rule(grant=grants, pick=st.integers(0, 3))
        def access_under_grant(self, grant, pick):
            """Access for a purpose the grant names: permitted unless revoked, early or expired."""
            key, grantee, bits = grant
            self.access(STUDIES.index(key), grantee, bits[pick % len(bits)])

        @rule(patient=st.integers(0, 1), grantee=st.integers(0, 2), scope=st.integers(0, 3))
        def revoke(self, patient, grantee, scope):
            key = ALL_STUDIES if scope == 3 else STUDIES[scope]
            if consent.getGrant(patients[patient], grantees[grantee], key)[0] == 0:
                return
            consent.revoke(grantees[grantee], key, {"from": patients[patient]})

        @rule(seconds=st.sampled_from([10, 25, 60, 150]))
        def sleep(self, seconds):
            chain.sleep(seconds)
            chain.mine()

        @rule(study=st.integers(0, 2), grantee=st.integers(0, 2), purpose=PURPOSES)
        def access_unknown_study_reverts(self, study, grantee, purpose):
            key = STUDIES[study]
            if key in self.patient_of:
                return
            with brownie.reverts(revert_pattern=r"StudyRegistryUnknownStudy: .*"):
                access_log.recordAccess(
                    key, grantees[grantee], purpose, keccak(b"r"), {"from": gateway}
                )

        @rule(study=st.integers(0, 2), grantee=st.integers(0, 2), purpose=PURPOSES)
        def access(self, study, grantee, purpose):
            key, accessor = STUDIES[study], grantees[grantee]
            if key not in self.patient_of:
                return
            request = keccak(f"request-{self.recorded}".encode())

            tx = access_log.recordAccess(key, accessor, purpose, request, {"from": gateway})

            self.recorded += 1
            permitted, identified = consent.isPermitted(
                self.patient_of[key], accessor, key, purpose, block_identifier=tx.block_number
            )
            names = [e.name for e in tx.events]
            assert names == ["AccessGranted" if permitted else "AccessDenied"]
            assert tuple(tx.return_value) == (permitted, identified)
            if permitted:
                assert tx.events[0]["identified"] == identified
            event = tx.events[0]
            assert (event["patient"], event["accessor"], event["purpose"]) == (
                self.patient_of[key],
                accessor,
                purpose,
            )
            assert event["requestId"] == "0x" + request.hex()

        @invariant()
        def studies_keep_their_patient(self):
            for key, patient in self.patient_of.items():
                assert study_registry.patientOf(site, key) == patient

    AccessMachine.TestCase.settings = settings(
        max_examples=15, stateful_step_count=15, deadline=None
    )
    AccessMachine.TestCase().runTest()
