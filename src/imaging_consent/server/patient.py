"""The patient's page: ``/patient`` and its API, for a patient signed in with their own wallet.

Routes (docs/patient-page.md):

- ``GET /patient``: the page built by ``make patient-page`` (503 problem+json if it is not
  built), with this deployment's settings in it; ``GET /patient/app.js``, ``/patient/style.css``.
- ``GET /patient/api/studies``: the patient's studies at this site.
- ``GET /patient/api/history``: their grants, guardians, consent changes and accesses, from
  the audit index if the server keeps one, else from the chain's logs; with where it was read
  and how many blocks it is behind the chain.
- ``GET /patient/api/report.html``, ``/patient/api/report.fhir.json``: the same trail as a file
  to keep (:func:`~imaging_consent.audit.audit_html`, :func:`~imaging_consent.audit.audit_fhir`).
- ``POST /patient/api/typed-data``: the EIP-712 Grant or Revoke for the wallet to sign, exactly
  as ``imaging-consent consent sign`` builds it.
- ``POST /patient/api/relay``: the signed consent, sent with the gateway's key
  (:mod:`.relayer`); answers 202 with the transaction hash at once.
- ``GET /patient/api/tx/{hash}``: pending, mined or failed (with the reason in words).

Every API call needs ``Authorization: Bearer <token>`` from Sign-In with Ethereum; the patient
is the token's address and sees and changes only their own consent.
"""

# No `from __future__ import annotations`: the routes annotate with `Caller`, a local alias
# fastapi must resolve when they are defined.

import json
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from eth_typing import ChecksumAddress
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from imaging_consent.audit import audit_fhir, audit_html
from imaging_consent.consent import ConsentClient
from imaging_consent.consent.inputs import parse_address
from imaging_consent.consent.relay import DEFAULT_SIGNATURE_LIFETIME
from imaging_consent.consent.signing import SignedConsent
from imaging_consent.errors import ImagingConsentError
from imaging_consent.gateway import ImageGateway
from imaging_consent.index import AuditTrail, trail_from_chain
from imaging_consent.index.sync import Indexer
from imaging_consent.server.auth import Principal
from imaging_consent.server.patient_view import patient_studies, purposes_json, trail_json
from imaging_consent.server.problems import problem
from imaging_consent.server.relayer import PatientRequestError, Relayer, refusal

__all__ = ["PAGE_DIR", "PatientSettings", "on_patient_problem", "parse_label", "patient_router"]

#: Where ``make patient-page`` puts the built page.
PAGE_DIR = Path(__file__).resolve().parent / "static" / "patient"
_ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
_CONFIG_SLOT = "__PATIENT_PAGE_CONFIG__"
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
_KEY = re.compile(r"^0x[0-9a-fA-F]{64}$")
#: The page loads nothing from elsewhere: scripts, styles and calls stay on this origin.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: The downloaded report runs nothing and loads nothing: inline style and its own plot only.
_REPORT_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; sandbox"
)
_LABEL_LENGTH = 80


@dataclass(frozen=True, slots=True)
class PatientSettings:
    """The patient page's settings.

    Attributes:
        page_dir: The built page (``index.html``, ``app.js``, ``style.css``).
        tx_link: The network's transaction link, with ``{tx}`` where the hash goes
            (``https://sepolia.etherscan.io/tx/{tx}``); None on a local chain (plain hash).
        network_name: The chain's name as patients know it (default: ``chain <id>``).
        relay_per_hour: Consent changes the gateway relays per patient per sliding hour.
        labels: Names the site knows accounts by, as (address, label) pairs (see
            :func:`parse_label`).

    Raises:
        ValueError: On a link that is not ``https://host/...`` with exactly one ``{tx}``, an
            empty network name, a limit below 1, or a label that is not an address and a name.
    """

    page_dir: Path = PAGE_DIR
    tx_link: str | None = None
    network_name: str | None = None
    relay_per_hour: int = 10
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.tx_link is not None:
            _check_tx_link(self.tx_link)
        if self.network_name is not None and not _printable(self.network_name):
            raise ValueError("the network name must be printable text of 1 to 80 characters")
        if self.relay_per_hour < 1:
            raise ValueError("the relay limit must be at least 1 per hour")
        for address, label in self.labels:
            parse_label(f"{address}={label}")


def _check_tx_link(link: str) -> None:
    """Refuse a transaction link a patient's browser should not be sent to.

    Raises:
        ValueError: If it is not ``https://host/...`` with ``{tx}`` exactly once (outside the
            host) and no other braces, whitespace or control characters.
    """
    parts = urlsplit(link)
    rest = link.replace("{tx}", "", 1)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or "{" in parts.netloc
        or link.count("{tx}") != 1
        or any(c in rest for c in "{} ")
        or not _printable(link, 2000)
    ):
        raise ValueError(
            "the transaction link must be an https:// URL with {tx} exactly once where the "
            "transaction hash goes, e.g. https://sepolia.etherscan.io/tx/{tx}"
        )


def _printable(text: str, longest: int = _LABEL_LENGTH) -> bool:
    """Non-blank text of at most ``longest`` characters with no control characters."""
    return (
        0 < len(text) <= longest
        and bool(text.strip())
        and not any(unicodedata.category(c).startswith("C") for c in text)
    )


def parse_label(text: str) -> tuple[str, str]:
    """``ADDRESS=NAME``: the name the site knows an account by, as (checksummed address, name).

    Raises:
        ValueError: If it is not an address, ``=`` and a name of 1 to 80 printable characters
            (an :class:`~imaging_consent.errors.InvalidAddressError` for a bad address).
    """
    address, equals, name = text.partition("=")
    if not equals:
        raise ValueError("a label is ADDRESS=NAME, for example 0x5B38...ddC4=Dr Lee, radiology")
    name = name.strip()
    if not _printable(name):
        raise ValueError(f"a label's name must be 1 to {_LABEL_LENGTH} printable characters")
    return parse_address(address.strip(), "label"), name


class TypedDataBody(BaseModel):
    """``POST /patient/api/typed-data``: what the patient wants to sign."""

    kind: Literal["grant", "revoke"]
    grantee: str
    scope: str | None = None
    purposes: list[str] = []
    identified: bool = False
    expiresAt: int = 0  # noqa: N815 (the page's JSON names)
    notBefore: int = 0  # noqa: N815


class RelayBody(BaseModel):
    """``POST /patient/api/relay``: the typed data and the wallet's signature."""

    kind: Literal["grant", "revoke"]
    typedData: dict[str, Any]  # noqa: N815
    signature: str


async def on_patient_problem(_request: Request, exc: Exception) -> JSONResponse:
    """The problem+json answer of a :class:`PatientRequestError`."""
    assert isinstance(exc, PatientRequestError)
    return problem(exc.status, exc.title, exc.detail, exc.headers or None)


def _scope(value: str | None) -> bytes | None:
    if value is None or value == "all":
        return None
    if not _KEY.match(value):
        raise PatientRequestError(422, "Bad study", "choose all studies or one of your studies")
    return bytes.fromhex(value[2:])


def patient_router(
    settings: PatientSettings,
    gateway: ImageGateway,
    principal: Callable[..., Principal],
    clock: Callable[[], float] = time.time,
    index: Indexer | None = None,
) -> APIRouter:
    """The page and its API, for ``gateway``'s site.

    Args:
        settings: The page's settings.
        gateway: The release gate (its suite, store, pepper and sender, which relays).
        principal: The dependency that yields the signed-in caller (401 otherwise).
        clock: Unix time, for the relay rate limit.
        index: The audit index the history is read from (with the gateway's batched records);
            None: read from the chain's logs.
    """
    router = APIRouter()
    suite = gateway.suite
    relayer = Relayer(suite, gateway.sender, settings.relay_per_hour, clock)
    labels = dict(settings.labels)
    Caller = Annotated[Principal, Depends(principal)]

    def config() -> dict[str, Any]:
        chain_id = suite.session.chain_id
        return {
            "chainId": chain_id,
            "networkName": settings.network_name or f"chain {chain_id}",
            "registry": suite.consent.address,
            "txLink": settings.tx_link,
            "relayPerHour": settings.relay_per_hour,
            "signatureLifetime": DEFAULT_SIGNATURE_LIFETIME,
            "purposes": purposes_json(),
            "labels": [{"address": a, "label": label} for a, label in settings.labels],
        }

    @router.get("/patient", include_in_schema=False)
    @router.get("/patient/", include_in_schema=False)
    def page() -> Response:
        index = settings.page_dir / "index.html"
        if not index.is_file():
            return problem(
                503,
                "Patient page not built",
                "the patient page has not been built on this server: run `make patient-page`",
            )
        text = json.dumps(config()).replace("<", "\\u003c")
        html = index.read_text(encoding="utf-8").replace(_CONFIG_SLOT, text)
        return HTMLResponse(html, headers={"Content-Security-Policy": _CSP})

    @router.get("/patient/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        path = settings.page_dir / name
        if name not in _ASSETS or not path.is_file():
            return problem(404, "Not found", "no such file of the patient page")
        return FileResponse(path, media_type=_ASSETS[name], headers={"Cache-Control": "no-cache"})

    @router.get("/patient/api/studies")
    def studies(caller: Caller) -> dict[str, Any]:
        found = patient_studies(gateway, caller.address)
        return {"patient": caller.address, "studies": [s.to_json() for s in found]}

    def trail_of(patient: ChecksumAddress) -> AuditTrail:
        return index.trail(patient) if index is not None else trail_from_chain(suite, patient)

    @router.get("/patient/api/history")
    def history(caller: Caller) -> dict[str, Any]:
        trail = trail_of(caller.address)
        return trail_json(trail, patient_studies(gateway, caller.address), labels)

    @router.get("/patient/api/report.html")
    def report_html(caller: Caller) -> Response:
        text = audit_html(trail_of(caller.address), int(clock()))
        return _report(text, "text/html; charset=utf-8", "imaging-audit-report.html")

    @router.get("/patient/api/report.fhir.json")
    def report_fhir(caller: Caller) -> Response:
        text = audit_fhir(trail_of(caller.address), int(clock()))
        return _report(text, "application/fhir+json", "imaging-audit-report.fhir.json")

    @router.post("/patient/api/typed-data")
    def typed_data(body: TypedDataBody, caller: Caller) -> dict[str, Any]:
        signed = _unsigned(ConsentClient(suite), caller.address, body)
        return {"kind": signed.kind, "typedData": signed.typed_data}

    @router.post("/patient/api/relay", status_code=202)
    def relay(body: RelayBody, caller: Caller) -> dict[str, Any]:
        signed = _signed(body)
        try:
            tx_hash = relayer.relay(caller.address, signed)
        except ImagingConsentError as exc:
            raise refusal(exc) from None
        return {"txHash": tx_hash, "phase": "pending"}

    @router.get("/patient/api/tx/{tx_hash}")
    def tx_status(tx_hash: str, caller: Caller) -> dict[str, Any]:
        if not _HASH.match(tx_hash):
            raise PatientRequestError(400, "Bad transaction hash", "not a transaction hash")
        view = relayer.status(caller.address, tx_hash.lower())
        link = settings.tx_link.replace("{tx}", view.tx_hash) if settings.tx_link else None
        return {
            "txHash": view.tx_hash,
            "phase": view.phase,
            "block": view.block_number,
            "reason": view.reason,
            "effect": view.effect,
            "link": link,
        }

    return router


def _report(text: str, media_type: str, filename: str) -> Response:
    """The patient's audit report as a file to save, which runs and loads nothing if opened."""
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Security-Policy": _REPORT_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    return Response(text, media_type=media_type, headers=headers)


def _signed(body: RelayBody) -> SignedConsent:
    """The signed consent in a relay request.

    Raises:
        PatientRequestError: 422 if it is malformed.
    """
    text = json.dumps({"kind": body.kind, "typedData": body.typedData, "signature": None})
    try:
        signed = SignedConsent.from_json(text).with_signature(body.signature)
        fields = signed.message
        _ = (signed.patient, signed.issued_at, signed.deadline, fields["grantee"], fields["scope"])
    except (ImagingConsentError, ValueError, KeyError, TypeError):
        raise PatientRequestError(
            422, "Not a signed consent", "the signed consent is malformed"
        ) from None
    return signed


def _unsigned(client: ConsentClient, patient: ChecksumAddress, body: TypedDataBody) -> Any:
    """The unsigned Grant or Revoke the patient asked for.

    Raises:
        PatientRequestError: 422 if it is not valid (no end date, a bad address, no purpose...).
    """
    scope = _scope(body.scope)
    try:
        if body.kind == "revoke":
            return client.sign_revoke(patient, body.grantee, scope)
        if body.expiresAt <= 0:
            raise PatientRequestError(422, "End date required", "choose when this access ends")
        return client.sign_grant(
            patient,
            body.grantee,
            scope,
            body.purposes,
            identified=body.identified,
            not_before=body.notBefore,
            expires_at=body.expiresAt,
        )
    except ImagingConsentError as exc:
        raise refusal(exc) from None
