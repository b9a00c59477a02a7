"""What the patient page shows, as JSON: the patient's studies, grants, guardians and history.

Studies are the site's own records (modality, date and description read from the store; the
chain holds none of it), listed when the study's on-chain registration at this site names the
patient. Grants, guardians and the history come from one :class:`~imaging_consent.index.AuditTrail`.
Every purpose is shown in plain words with its HL7 code beside it; study keys are shown as the
study's description where the patient has that study here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_typing import ChecksumAddress

from imaging_consent.access_log import AccessEvent
from imaging_consent.consent import ConsentEvent, Grant, Purpose
from imaging_consent.contracts.consent_registry import ALL_STUDIES
from imaging_consent.dicom import read_dicom, study_key
from imaging_consent.errors import StudyNotRegisteredError
from imaging_consent.gateway import ImageGateway
from imaging_consent.index import AuditTrail

__all__ = ["PURPOSE_WORDS", "PatientStudy", "patient_studies", "purposes_json", "trail_json"]

#: Each purpose of use in a patient's words (the HL7 v3 PurposeOfUse code is shown beside it).
PURPOSE_WORDS: dict[Purpose, tuple[str, str]] = {
    Purpose.TREAT: ("Treatment", "doctors and nurses caring for you"),
    Purpose.ETREAT: ("Emergency treatment", "care when you are brought in as an emergency"),
    Purpose.HRESCH: ("Research", "health research studies"),
    Purpose.PATRQT: ("Your own request", "sent where you ask, for example to a second opinion"),
    Purpose.HPAYMT: ("Payment", "your insurer or the billing office, to pay for your care"),
    Purpose.HOPERAT: ("Hospital operations", "the hospital's own quality checks and planning"),
    Purpose.PUBHLTH: ("Public health", "health authorities tracking disease"),
}

_BREAK_GLASS = (
    "Emergency access without your consent (break-glass): an emergency clinician of the site "
    "opened your images because you could not be asked. The reason is kept at the site, and "
    "this access is always recorded so that it can be reviewed."
)
_BATCHED = (
    "Recorded in a batch: the gateway wrote this access to a batch whose fingerprint is on the "
    "chain, so it can be proven later, but it did not get its own transaction."
)


@dataclass(frozen=True, slots=True)
class PatientStudy:
    """One of the patient's studies at this site, as the site knows it."""

    key: bytes
    modalities: tuple[str, ...]
    date: str
    description: str
    series: int
    instances: int

    def to_json(self) -> dict[str, Any]:
        """The page's JSON for the study."""
        return {
            "key": "0x" + self.key.hex(),
            "modalities": list(self.modalities),
            "date": self.date,
            "description": self.description,
            "series": self.series,
            "instances": self.instances,
        }


def patient_studies(gateway: ImageGateway, patient: ChecksumAddress) -> list[PatientStudy]:
    """The store's studies whose registration at this site names ``patient``, by date.

    Raises:
        ChainUnavailableError: If the chain cannot answer.
        StoreError: If the store cannot answer.
    """
    found = []
    for uid in gateway.store.studies():
        key = study_key(gateway.pepper, uid)
        try:
            record = gateway.suite.studies.study(gateway.site, key)
        except StudyNotRegisteredError:
            continue
        if record.patient == patient:
            found.append(_study(gateway, uid, key))
    return sorted(found, key=lambda s: (s.date, s.description))


def _study(gateway: ImageGateway, uid: str, key: bytes) -> PatientStudy:
    records = gateway.store.instances(uid)
    with gateway.store.open(records[0].sop_instance_uid) as fp:
        ds = read_dicom(fp, stop_before_pixels=True)
    raw = str(ds.get("StudyDate", "") or "")
    date = f"{raw[:4]}-{raw[4:6]}-{raw[6:8]}" if len(raw) == 8 and raw.isdigit() else ""
    modalities = tuple(sorted({r.modality for r in records if r.modality}))
    description = str(ds.get("StudyDescription", "") or "").strip()
    return PatientStudy(
        key,
        modalities,
        date,
        description or f"{' and '.join(modalities) or 'Imaging'} study",
        len({r.series_instance_uid for r in records}),
        len(records),
    )


def purposes_json(purposes: Iterable[Purpose] = Purpose) -> list[dict[str, str | int]]:
    """Purposes as the page shows them: code, name, plain-language description, and the bit
    index ConsentRegistry's ``purposes`` mask uses for it (for a grant the wallet sends)."""
    return [
        {
            "code": p.name,
            "name": PURPOSE_WORDS[p][0],
            "description": PURPOSE_WORDS[p][1],
            "bit": p.value,
        }
        for p in sorted(purposes, key=lambda p: p.value)
    ]


class _Names:
    """Shows accounts with the site's labels and study keys as the patient's studies."""

    def __init__(self, labels: Mapping[str, str], studies: Iterable[PatientStudy]) -> None:
        self._labels = {a.lower(): label for a, label in labels.items()}
        self._studies = {s.key: s for s in studies}

    def account(self, address: str) -> dict[str, str | None]:
        return {"address": address, "label": self._labels.get(address.lower())}

    def scope(self, key: bytes) -> dict[str, Any]:
        if key == ALL_STUDIES:
            return {"all": True, "key": None, "words": "all your studies at this site"}
        study = self._studies.get(key)
        words = (
            f"{study.description} ({', '.join(study.modalities)}, {study.date or 'no date'})"
            if study is not None
            else "one study (not held at this site)"
        )
        return {"all": False, "key": "0x" + key.hex(), "words": words}


def _grant(grant: Grant, names: _Names, now: int) -> dict[str, Any]:
    if grant.is_active(now):
        status = "active"
    elif grant.not_before > now:
        status = "not yet started"
    else:
        status = "ended"
    return {
        "grantee": names.account(grant.grantee),
        "scope": names.scope(grant.scope),
        "purposes": purposes_json(grant.purposes),
        "identified": grant.identified,
        "notBefore": grant.not_before,
        "expiresAt": grant.expires_at,
        "status": status,
    }


def _delegates(events: Iterable[ConsentEvent], names: _Names, now: int) -> list[dict[str, Any]]:
    latest: dict[str, ConsentEvent] = {}
    for event in events:
        if event.kind == "delegate_set":
            latest[event.grantee] = event
    return [
        {
            "delegate": names.account(e.grantee),
            "scope": names.scope(e.scope),
            "expiresAt": e.expires_at,
        }
        for e in latest.values()
        if e.allowed and (e.expires_at == 0 or e.expires_at > now)
    ]


def _consent_event(event: ConsentEvent, names: _Names) -> dict[str, Any]:
    return {
        "what": event.label,
        "who": names.account(event.grantee),
        "scope": names.scope(event.scope),
        "purposes": purposes_json(event.purposes),
        "identified": event.identified,
        "expiresAt": event.expires_at,
        "by": event.acted_by,
        "time": event.timestamp,
        "block": event.block_number,
        "tx": event.tx_hash,
    }


def _access(event: AccessEvent, names: _Names) -> dict[str, Any]:
    if event.kind == "break_glass":
        outcome, explanation = "emergency access", _BREAK_GLASS
    elif event.kind == "granted":
        outcome = "released " + ("with your name" if event.identified else "without your name")
        explanation = "Your consent allowed it."
    else:
        outcome, explanation = "refused", "No consent of yours allowed it, so nothing was sent."
    if event.batched:
        explanation += " " + _BATCHED
    purpose = (
        purposes_json([event.purpose])[0]
        if event.purpose is not None
        else {"code": str(event.purpose_code), "name": "Unknown purpose", "description": ""}
    )
    return {
        "who": names.account(event.accessor),
        "scope": names.scope(event.study_key),
        "purpose": purpose,
        "outcome": outcome,
        "breakGlass": event.kind == "break_glass",
        "identified": event.identified,
        "batched": event.batched,
        "explanation": explanation,
        "time": event.timestamp,
        "block": event.block_number,
        "tx": event.tx_hash,
    }


def trail_json(
    trail: AuditTrail, studies: Iterable[PatientStudy], labels: Mapping[str, str]
) -> dict[str, Any]:
    """The page's JSON for a patient's grants, guardians and history (newest first)."""
    names = _Names(labels, studies)
    return {
        "now": trail.now,
        "source": trail.source,
        "behind": trail.behind,
        "grants": [_grant(g, names, trail.now) for g in trail.grants],
        "delegates": _delegates(trail.consents, names, trail.now),
        "consents": [_consent_event(e, names) for e in reversed(trail.consents)],
        "accesses": [_access(e, names) for e in reversed(trail.accesses)],
        "breakGlass": trail.flagged,
    }
