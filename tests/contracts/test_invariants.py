"""Invariants of ConsentRegistry across many calls.

- A revoked or expired grant is never honoured, and one (patient, grantee, scope) never affects
  another: a model-based state machine drives random grants, updates, revocations (directly, by
  delegate and by signature) and time travel, and after every step compares `isPermitted`,
  `getGrant` and `nonces` for every combination with a plain Python model.
- Only the patient or their current delegate changes the patient's grants: every caller role
  against every changing function.
"""

from __future__ import annotations

from dataclasses import dataclass

import brownie
import pytest
from brownie import chain, web3
from brownie.exceptions import VirtualMachineError
from consent_values import ALL_STUDIES, HRESCH, KNOWN_PURPOSES, STUDY_A, STUDY_B, TREAT, stored
from eip712_messages import sign_grant, sign_revoke
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

SCOPES = (STUDY_A, STUDY_B, ALL_STUDIES)
PURPOSES = (TREAT, HRESCH)
FAR = 2**40
# After each step: stay, jump exactly to (or just before) the next grant boundary, or sleep.
TIME_STEPS = st.sampled_from(
    ["stay", "edge", "edge", "just before edge", 60, 600]
)  # signature deadline that never passes in a test


@dataclass(frozen=True)
class ModelGrant:
    purposes: int
    identified: bool
    not_before: int
    expires_at: int

    def permits(self, bit: int, now: int) -> bool:
        return (
            self.purposes & bit != 0
            and now >= self.not_before
            and (self.expires_at == 0 or now < self.expires_at)
        )


def expected_permission(grants, patient, grantee, key, purpose, now):
    """What isPermitted must answer, from the model alone."""
    bit = 1 << purpose

    def check(scope):
        g = grants.get((patient, grantee, scope))
        ok = g is not None and g.permits(bit, now)
        return ok, ok and g.identified

    if key == ALL_STUDIES:
        return check(ALL_STUDIES)
    study, everything = check(key), check(ALL_STUDIES)
    return study[0] or everything[0], study[1] or everything[1]


def latest_timestamp() -> int:
    return int(web3.eth.get_block("latest").timestamp)


def test_consent_model_revoked_or_expired_never_honoured(
    consent, accounts, admin, grantee, stranger, delegate, relayer
):
    patients = [accounts.add(), accounts.add()]
    for p in patients:
        admin.transfer(p, "1 ether")
        consent.setDelegate(delegate, True, {"from": p})
    grantees = [grantee, stranger]
    view = web3.eth.contract(address=consent.address, abi=consent.abi)

    class ConsentMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            chain.snapshot()
            self.grants: dict[tuple[str, str, bytes], ModelGrant] = {}
            self.nonces = {p.address: 0 for p in patients}

        def teardown(self):
            chain.revert()

        def _send(self, via, patient, direct, by_delegate, by_sig):
            """Send one change three ways; return the error message or None."""
            try:
                if via == "patient":
                    direct({"from": patient})
                elif via == "delegate":
                    by_delegate({"from": delegate})
                else:
                    by_sig({"from": relayer})
            except VirtualMachineError as exc:
                return exc.revert_msg
            if via == "sig":
                self.nonces[patient.address] += 1
            return None

        @rule(
            p=st.integers(0, 1),
            g=st.integers(0, 1),
            s=st.integers(0, 2),
            purposes=st.sampled_from([0b1, 0b100, 0b101, KNOWN_PURPOSES, 0b1, 0b100, 0, 0x80]),
            identified=st.booleans(),
            start=st.sampled_from([None, None, -600, 60, 400]),
            end=st.sampled_from([120, 600, 3000, None, -60]),
            via=st.sampled_from(["patient", "delegate", "sig"]),
            then=TIME_STEPS,
        )
        def grant(self, p, g, s, purposes, identified, start, end, via, then):
            patient, who, scope = patients[p], grantees[g], SCOPES[s]
            now = chain.time()
            not_before = 0 if start is None else now + start
            expires_at = 0 if end is None else now + end
            values = (purposes, identified, not_before, expires_at)
            sig = sign_grant(
                consent,
                patient.private_key,
                patient=patient,
                grantee=who,
                scope=scope,
                purposes=purposes,
                identified=identified,
                not_before=not_before,
                expires_at=expires_at,
                nonce=self.nonces[patient.address],
                deadline=FAR,
            )

            failure = self._send(
                via,
                patient,
                lambda tx: consent.grant(who, scope, *values, tx),
                lambda tx: consent.grantFor(patient, who, scope, *values, tx),
                lambda tx: consent.grantBySig(patient, who, scope, *values, FAR, sig, tx),
            )

            mined_at = latest_timestamp()  # the block that took the transaction, reverted or not
            valid_purposes = purposes != 0 and purposes & ~KNOWN_PURPOSES == 0
            valid_window = expires_at == 0 or (expires_at > not_before and expires_at > mined_at)
            if not valid_purposes:
                assert failure.startswith("ConsentRegistryInvalidPurposes"), failure
            elif not valid_window:
                assert failure.startswith("ConsentRegistryInvalidWindow"), failure
            else:
                assert failure is None, failure
                self.grants[(patient.address, who.address, scope)] = ModelGrant(*values)
            self._move_time(then)

        @rule(
            p=st.integers(0, 1),
            g=st.integers(0, 1),
            s=st.integers(0, 2),
            via=st.sampled_from(["patient", "delegate", "sig"]),
            then=TIME_STEPS,
        )
        def revoke(self, p, g, s, via, then):
            patient, who, scope = patients[p], grantees[g], SCOPES[s]
            sig = sign_revoke(
                consent,
                patient.private_key,
                patient=patient,
                grantee=who,
                scope=scope,
                nonce=self.nonces[patient.address],
                deadline=FAR,
            )

            failure = self._send(
                via,
                patient,
                lambda tx: consent.revoke(who, scope, tx),
                lambda tx: consent.revokeFor(patient, who, scope, tx),
                lambda tx: consent.revokeBySig(patient, who, scope, FAR, sig, tx),
            )

            key = (patient.address, who.address, scope)
            if key in self.grants:
                assert failure is None, failure
                del self.grants[key]
            else:
                assert failure.startswith("ConsentRegistryGrantNotFound"), failure
            self._move_time(then)

        @rule(step=TIME_STEPS)
        def time_passes(self, step):
            self._move_time(step)

        def _move_time(self, step):
            """Let time pass, often exactly to (or one second before) some grant's start or end."""
            if step == "stay":
                return
            now = latest_timestamp()
            if isinstance(step, int):
                chain.sleep(step)
                chain.mine()
                return
            back = int(step == "just before edge")
            edges = sorted(
                {
                    t - back
                    for g in self.grants.values()
                    for t in (g.not_before, g.expires_at)
                    if t - back > now
                }
            )
            chain.mine(timestamp=edges[0] if edges else now + 1)

        @invariant()
        def chain_matches_model(self):
            now = latest_timestamp()  # eth_call runs at the latest block's timestamp on Ganache
            keys = [(p, w, s) for p in patients for w in grantees for s in SCOPES]
            with web3.batch_requests() as batch:  # one HTTP round trip for every view call
                for patient in patients:
                    batch.add(view.functions.nonces(patient.address))
                for patient, who, scope in keys:
                    batch.add(view.functions.getGrant(patient.address, who.address, scope))
                    for purpose in PURPOSES:
                        batch.add(
                            view.functions.isPermitted(patient.address, who.address, scope, purpose)
                        )
                answers = iter(batch.execute())
            for patient in patients:
                assert next(answers) == self.nonces[patient.address]
            for patient, who, scope in keys:
                g = self.grants.get((patient.address, who.address, scope))
                want = (
                    (0, False, 0, 0)
                    if g is None
                    else (g.purposes, g.identified, g.not_before, g.expires_at)
                )
                assert tuple(next(answers)) == want
                for purpose in PURPOSES:
                    expected = expected_permission(
                        self.grants, patient.address, who.address, scope, purpose, now
                    )
                    assert tuple(next(answers)) == expected, (scope.hex()[:8], purpose, now, g)

    ConsentMachine.TestCase.settings = settings(
        max_examples=20, stateful_step_count=12, deadline=None
    )

    ConsentMachine.TestCase().runTest()


# --- Only the patient or their current delegate changes the patient's grants ------------------

ROLES = [
    "patient",
    "delegate",
    "removed_delegate",
    "other_patients_delegate",
    "grantee",
    "stranger",
]
MAY_CHANGE = {
    "grant": {"patient"},
    "revoke": {"patient"},
    "grantFor": {"delegate"},
    "revokeFor": {"delegate"},
}


@pytest.mark.parametrize("action", sorted(MAY_CHANGE))
@pytest.mark.parametrize("role", ROLES)
def test_only_patient_or_delegate_changes_grants(
    consent, accounts, patient, grantee, delegate, stranger, role, action
):
    removed, other_delegate = accounts[6], accounts[7]
    consent.grant(grantee, STUDY_A, 0b1, True, 0, 0, {"from": patient})
    consent.setDelegate(delegate, True, {"from": patient})
    consent.setDelegate(removed, True, {"from": patient})
    consent.setDelegate(removed, False, {"from": patient})
    consent.setDelegate(other_delegate, True, {"from": stranger})
    caller = {
        "patient": patient,
        "delegate": delegate,
        "removed_delegate": removed,
        "other_patients_delegate": other_delegate,
        "grantee": grantee,
        "stranger": stranger,
    }[role]
    before = stored(consent, patient, grantee, STUDY_A)
    call = {
        "grant": lambda: consent.grant(grantee, STUDY_A, 0b10, False, 0, 0, {"from": caller}),
        "revoke": lambda: consent.revoke(grantee, STUDY_A, {"from": caller}),
        "grantFor": lambda: consent.grantFor(
            patient, grantee, STUDY_A, 0b10, False, 0, 0, {"from": caller}
        ),
        "revokeFor": lambda: consent.revokeFor(patient, grantee, STUDY_A, {"from": caller}),
    }[action]

    if role in MAY_CHANGE[action]:
        call()
    elif action.endswith("For"):
        with brownie.reverts(revert_pattern=r"ConsentRegistryNotDelegate: .*"):
            call()
    else:
        try:  # acts on the caller's own grants, never on the patient's
            call()
        except VirtualMachineError as exc:
            assert exc.revert_msg.startswith("ConsentRegistryGrantNotFound")

    changed = stored(consent, patient, grantee, STUDY_A) != before
    assert changed == (role in MAY_CHANGE[action])
