"""The audit trail as FHIR R4B (``audit --format fhir``): a ``Bundle`` of type collection.

Each ``ConsentGranted`` event is a ``Consent`` and each access record an ``AuditEvent``, built
with fhir.resources' R4B models (constructing one validates it). Only what the chain holds goes
in: accounts are Ethereum addresses (identifier system :data:`ADDRESS_SYSTEM`), studies their
opaque keys (:data:`STUDY_KEY_SYSTEM`), events their transaction hash and log index
(:data:`EVENT_SYSTEM`). The choices, one by one, are in docs/cli.md ("FHIR").
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from imaging_consent.access_log import AccessEvent
from imaging_consent.audit.events import iso_utc, refusal_reason
from imaging_consent.consent import ALL_STUDIES, ConsentEvent, Purpose
from imaging_consent.index import AuditTrail

if TYPE_CHECKING:
    from fhir.resources.R4B.bundle import Bundle

__all__ = [
    "ADDRESS_SYSTEM",
    "DETAILS",
    "EVENT_SYSTEM",
    "PURPOSE_SYSTEM",
    "STUDY_KEY_SYSTEM",
    "audit_bundle",
    "audit_fhir",
]

#: Identifier system of Ethereum accounts (value: the checksummed 0x address).
ADDRESS_SYSTEM = "urn:imaging-consent:ethereum-address"
#: Identifier system of study keys (value: the 32-byte key, 0x-hex).
STUDY_KEY_SYSTEM = "urn:imaging-consent:study-key"
#: Identifier system of chain events (value: ``<tx hash>:<log index>``; a batched record adds
#: ``:<request id>``, since a batch's records share their anchor's transaction and log).
EVENT_SYSTEM = "urn:imaging-consent:chain-event"
#: HL7 v3 ActReason, where PurposeOfUse (TREAT, ETREAT, HRESCH, ...) and BTG live.
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#: ``AuditEvent.entity.detail`` types on the study entity: always ``chain-event`` (the
#: :data:`EVENT_SYSTEM` value; R4B AuditEvent has no identifier) and ``request-id``; then
#: ``reason-commitment`` (break-glass), ``refusal-reason`` (a gateway's reason for a batched
#: refusal) and, for a batched record, ``batched``, ``batch-id``, ``batch-root``, ``batch-proof``
#: (the proof's 0x-hex steps, comma-separated, OpenZeppelin ``MerkleProof`` order).
DETAILS = (
    "chain-event",
    "request-id",
    "reason-commitment",
    "refusal-reason",
    "batched",
    "batch-id",
    "batch-root",
    "batch-proof",
)

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_LOINC = "http://loinc.org"
_NAMESPACE = uuid.UUID("5b0f3a5e-6c1d-4f0e-9a43-6b1d2f1c9e77")
_EXPORT = {"system": _DCM, "code": "110106", "display": "Export"}
_ACCESSED = {"system": _DCM, "code": "110103", "display": "DICOM Instances Accessed"}
_EMERGENCY = {"system": _DCM, "code": "110127", "display": "Emergency Override Started"}
_DESTINATION = {"system": _DCM, "code": "110152", "display": "Destination Role ID"}
_SOURCE = {"system": _DCM, "code": "110153", "display": "Source Role ID"}
_BTG = {"system": PURPOSE_SYSTEM, "code": "BTG", "display": "break the glass"}
#: AuditEvent.outcome: 0 success (a release, break-glass included); 4 minor failure (a refusal:
#: the request was refused as the rules say, nothing failed; 8 would mean a fault).
_OUTCOME = {"granted": "0", "denied": "4", "break_glass": "0"}


def _address(value: str) -> dict[str, Any]:
    return {"identifier": {"system": ADDRESS_SYSTEM, "value": value}}


def _purpose(purpose: Purpose) -> dict[str, Any]:
    return {"system": PURPOSE_SYSTEM, "code": purpose.name, "display": purpose.display}


def _event_id(tx_hash: str, log_index: int, request_id: bytes | None = None) -> str:
    value = f"{tx_hash}:{log_index}"
    return value if request_id is None else f"{value}:0x{request_id.hex()}"


def _uuid(identifier: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, identifier))


def _superseded(trail: AuditTrail) -> set[tuple[str, int]]:
    """The ConsentGranted events a later grant or revocation of the same key replaced."""
    latest: dict[tuple[str, str, bytes], ConsentEvent] = {}
    replaced: set[tuple[str, int]] = set()
    for event in trail.consents:
        if event.kind not in ("granted", "revoked"):
            continue
        key = (event.patient, event.grantee, event.scope)
        if key in latest:
            replaced.add((latest[key].tx_hash, latest[key].log_index))
        latest[key] = event
    return replaced


def _consent(event: ConsentEvent, active: bool) -> dict[str, Any]:
    period: dict[str, str] = {"start": iso_utc(event.not_before or event.timestamp)}
    if event.expires_at:
        period["end"] = iso_utc(event.expires_at)
    provision: dict[str, Any] = {
        "type": "permit",
        "period": period,
        "actor": [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                            "display": "information recipient",
                        }
                    ]
                },
                "reference": _address(event.grantee),
            }
        ],
        "purpose": [_purpose(p) for p in sorted(event.purposes, key=lambda p: p.value)],
    }
    if event.scope != ALL_STUDIES:  # no data element: all of the patient's studies
        provision["data"] = [
            {
                "meaning": "instance",
                "reference": {
                    "identifier": {"system": STUDY_KEY_SYSTEM, "value": "0x" + event.scope.hex()}
                },
            }
        ]
    if not event.identified:
        provision["securityLabel"] = [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                "code": "DEID",
                "display": "deidentified",
            }
        ]
    identifier = _event_id(event.tx_hash, event.log_index)
    return {
        "resourceType": "Consent",
        "id": _uuid(identifier),
        "identifier": [{"system": EVENT_SYSTEM, "value": identifier}],
        "status": "active" if active else "inactive",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                    "display": "Privacy Consent",
                }
            ]
        },
        "category": [{"coding": [{"system": _LOINC, "code": "59284-0", "display": "Consent"}]}],
        "patient": _address(event.patient),
        "dateTime": iso_utc(event.timestamp),
        "performer": [_address(event.actor or event.patient)],
        "policyRule": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "OPTIN",
                    "display": "opt-in",
                }
            ]
        },
        "provision": provision,
    }


def _details(event: AccessEvent) -> list[dict[str, str]]:
    details: list[dict[str, str]] = [
        {"type": "request-id", "valueString": "0x" + event.request_id.hex()}
    ]
    if event.reason_commitment is not None:
        details.append(
            {"type": "reason-commitment", "valueString": "0x" + event.reason_commitment.hex()}
        )
    if event.reason is not None:
        details.append({"type": "refusal-reason", "valueString": event.reason})
    if event.batched:
        details += [
            {"type": "batched", "valueString": "true"},
            {"type": "batch-id", "valueString": "0x" + (event.batch_id or b"").hex()},
            {"type": "batch-root", "valueString": "0x" + (event.batch_root or b"").hex()},
            {
                "type": "batch-proof",
                "valueString": ",".join("0x" + step.hex() for step in event.proof),
            },
        ]
    return details


def _audit_event(event: AccessEvent) -> dict[str, Any]:
    identifier = _event_id(
        event.tx_hash, event.log_index, event.request_id if event.batched else None
    )
    emergency = event.kind == "break_glass"
    purposes: list[dict[str, Any]] = []
    if event.purpose is not None:
        purposes.append({"coding": [_purpose(event.purpose)]})
    if emergency:
        purposes.append({"coding": [_BTG]})
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": _uuid(identifier),
        "type": _ACCESSED if event.kind == "denied" else _EXPORT,
        "subtype": [_EMERGENCY] if emergency else [],
        "action": "R",
        "recorded": iso_utc(event.timestamp),
        "outcome": _OUTCOME[event.kind],
        "outcomeDesc": refusal_reason(event) if event.kind == "denied" else None,
        "purposeOfEvent": purposes,
        "agent": [
            {
                "type": {"coding": [_DESTINATION]},
                "who": _address(event.accessor),
                "requestor": True,
                "purposeOfUse": purposes,
            },
            {"type": {"coding": [_SOURCE]}, "who": _address(event.gateway), "requestor": False},
        ],
        "source": {
            "observer": _address(event.gateway),
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": [
            {
                "what": {
                    "identifier": {
                        "system": STUDY_KEY_SYSTEM,
                        "value": "0x" + event.study_key.hex(),
                    }
                },
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "2",
                    "display": "System Object",
                },
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "3",
                    "display": "Report",
                },
                "securityLabel": [_BTG] if emergency else [],
                "detail": [{"type": "chain-event", "valueString": identifier}, *_details(event)],
            },
            {
                "what": _address(event.patient),
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "1",
                    "display": "Person",
                },
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "1",
                    "display": "Patient",
                },
            },
        ],
    }
    if emergency:
        resource["meta"] = {"security": [_BTG]}
    pruned: dict[str, Any] = _pruned(resource)
    return pruned


def _pruned(value: Any) -> Any:
    """``value`` without None and empty lists (FHIR has no empty elements)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def audit_bundle(trail: AuditTrail, generated_at: int | None = None) -> Bundle:
    """The trail as a validated R4B ``Bundle`` (type collection): grants, then accesses.

    Args:
        trail: The patient's audit trail.
        generated_at: The bundle's timestamp (unix seconds); default the trail's ``now``.

    Raises:
        pydantic.ValidationError: If a resource breaks its R4B model (a bug, not bad input).
    """
    from fhir.resources.R4B.bundle import Bundle as Model  # imported here: a quarter of a second

    replaced = _superseded(trail)
    resources = [
        _consent(e, (e.tx_hash, e.log_index) not in replaced and _unexpired(e, trail.now))
        for e in trail.consents
        if e.kind == "granted"
    ]
    resources += [_audit_event(e) for e in trail.accesses]
    return Model.model_validate(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": iso_utc(trail.now if generated_at is None else generated_at),
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
        }
    )


def _unexpired(event: ConsentEvent, now: int) -> bool:
    return event.expires_at == 0 or now < event.expires_at


def audit_fhir(trail: AuditTrail, generated_at: int | None = None) -> str:
    """:func:`audit_bundle` as FHIR JSON text (indented, one final newline)."""
    return audit_bundle(trail, generated_at).model_dump_json(indent=2) + "\n"
