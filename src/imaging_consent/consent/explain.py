"""Why the chain permits or refuses access: ``isPermitted``'s answer, with its reason.

:func:`explain` asks ``isPermitted`` (the answer that counts) and reads the grant slots it
looked at (``getGrant`` for the study and for all studies, ``isExcluded``, and for a delegate's
grant ``getDelegation``) to say which grant decided, or why none did: no grant, revoked,
expired, not yet valid, another purpose, de-identified only, the study excluded, or the
delegate who made the grant removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from eth_typing import ChecksumAddress

from imaging_consent.consent.history import grant_history
from imaging_consent.consent.inputs import iso_time, parse_address, parse_scope
from imaging_consent.consent.purposes import Purpose, purposes_from_mask
from imaging_consent.contracts.consent_registry import ALL_STUDIES, GrantTerms
from imaging_consent.contracts.deployment import Suite

__all__ = ["Decision", "Reason", "explain"]

Reason = Literal[
    "permitted",
    "no_grant",
    "revoked",
    "not_yet_valid",
    "expired",
    "delegate_removed",
    "excluded",
    "wrong_purpose",
    "deidentified_only",
]


@dataclass(frozen=True, slots=True)
class Decision:
    """The chain's answer to one access question, and why.

    Attributes:
        permitted: Whether the access asked for is permitted now (with ``identified`` asked:
            identified access).
        identified: Whether identified data may be released (False: de-identified only).
        reason: ``"permitted"``, or why not (see :data:`Reason`).
        scope: The grant that decided or explains the refusal: a study key, or
            :data:`ALL_STUDIES`; None when there is no grant at all.
        purposes: That grant's purposes (empty if none).
        not_before: That grant's start (0: from the start).
        expires_at: That grant's end (0: never).
        changed_at: When that grant slot last changed (chain time; 0: never).
        at: The latest block's time, at which the question was answered.
    """

    permitted: bool
    identified: bool
    reason: Reason
    scope: bytes | None
    purposes: frozenset[Purpose]
    not_before: int
    expires_at: int
    changed_at: int
    at: int

    @property
    def explanation(self) -> str:
        """One sentence saying why (times in ISO 8601 UTC; no addresses, no study keys)."""
        granted = ", ".join(p.name for p in sorted(self.purposes, key=lambda p: p.value))
        where = "the all-studies grant" if self.scope == ALL_STUDIES else "the study's grant"
        return {
            "permitted": f"permitted by {where} ({granted}, "
            f"{'identified' if self.identified else 'de-identified only'})",
            "no_grant": "no grant: the patient has not granted this account access",
            "revoked": f"revoked: {where} was revoked (last change {iso_time(self.changed_at)})",
            "not_yet_valid": f"not yet valid: {where} starts at {iso_time(self.not_before)}",
            "expired": f"expired: {where} ended at {iso_time(self.expires_at)}",
            "delegate_removed": f"{where} was made by a delegate who has since been removed "
            "or whose delegation has ended",
            "excluded": "excluded: the patient keeps this study out of all-studies grants",
            "wrong_purpose": f"wrong purpose: {where} allows {granted} only",
            "deidentified_only": f"de-identified only: {where} does not allow identified data",
        }[self.reason]


def _delegate_still_acts(suite: Suite, patient: ChecksumAddress, grantee: str, scope: bytes,
                         terms: GrantTerms) -> bool:  # fmt: skip
    made = [
        e
        for e in grant_history(suite, patient=patient).events
        if e.kind == "granted" and e.grantee == grantee and e.scope == scope and e.via == "delegate"
    ]
    if not made or made[-1].actor is None:
        return False
    delegation = suite.consent.delegation(patient, made[-1].actor)
    return delegation is not None and delegation.delegation == terms.delegation


def _refusal(
    suite: Suite, patient: ChecksumAddress, grantee: ChecksumAddress, scope: bytes, now: int
) -> tuple[Reason | None, GrantTerms]:
    """Why the slot for ``scope`` is not in force at ``now`` (None: it is), and its terms."""
    terms = suite.consent.get_grant(patient, grantee, scope)
    if not terms.live:
        return ("revoked" if terms.issued_at else "no_grant"), terms
    if now < terms.not_before:
        return "not_yet_valid", terms
    if terms.expires_at and now >= terms.expires_at:
        return "expired", terms
    if terms.delegation and not _delegate_still_acts(suite, patient, grantee, scope, terms):
        return "delegate_removed", terms
    return None, terms


def explain(
    suite: Suite,
    patient: str,
    grantee: str,
    study_key: bytes | None,
    purpose: Purpose | str,
    *,
    identified: bool = False,
) -> Decision:
    """Whether ``grantee`` may access ``study_key`` of ``patient`` for ``purpose`` now, and why.

    The rule is the contract's: the study's own grant if in force, else (unless the patient
    excluded the study) the all-studies grant. ``permitted`` is ``isPermitted``'s answer.

    Args:
        suite: The deployed contracts.
        patient: The patient.
        grantee: The account asking for access.
        study_key: The study (None: ask about the all-studies grant alone).
        purpose: The purpose of use.
        identified: Ask for identified access (a de-identified-only grant is then a refusal).

    Raises:
        InvalidAddressError: If an address is malformed.
        UnknownPurposeError: If ``purpose`` is unknown.
        ChainUnavailableError: If the chain cannot be reached.
    """
    owner, target = parse_address(patient, "patient"), parse_address(grantee, "grantee")
    key, wanted = parse_scope(study_key), Purpose.parse(purpose)
    answer = suite.consent.is_permitted(owner, target, key, wanted.value)
    now = int(suite.session.w3.eth.get_block("latest")["timestamp"])
    candidates: list[tuple[Reason | None, bytes, GrantTerms]] = []
    if key != ALL_STUDIES:
        reason, terms = _refusal(suite, owner, target, key, now)
        candidates.append((reason, key, terms))
        if reason is not None and suite.consent.is_excluded(owner, key):
            candidates.insert(0, ("excluded", key, terms))
    if not candidates or candidates[0][0] not in (None, "excluded"):
        reason, terms = _refusal(suite, owner, target, ALL_STUDIES, now)
        candidates.insert(0 if reason is None else len(candidates), (reason, ALL_STUDIES, terms))
    deciding = next((c for c in candidates if c[0] is None), None)
    if deciding is None:  # explain the most specific slot that holds anything
        deciding = next((c for c in candidates if c[0] != "no_grant"), candidates[0])
    reason, scope, terms = deciding
    purposes = purposes_from_mask(terms.purposes)
    if reason is None:
        reason = "permitted" if wanted in purposes else "wrong_purpose"
    if reason == "permitted" and identified and not answer.identified:
        reason = "deidentified_only"
    return Decision(
        permitted=answer.permitted and (answer.identified or not identified),
        identified=answer.identified,
        reason=reason,
        scope=None if reason == "no_grant" else scope,
        purposes=purposes,
        not_before=terms.not_before,
        expires_at=terms.expires_at,
        changed_at=terms.issued_at,
        at=now,
    )
