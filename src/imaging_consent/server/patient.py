"""The patient's page: ``/patient`` and its API, for a patient signed in with their own wallet.

Routes (docs/patient-page.md):

- ``GET /patient``: the page built by ``make patient-page`` (503 problem+json if it is not
  built), with this deployment's settings in it; ``GET /patient/app.js``, ``/patient/style.css``.
- ``GET /patient/api/studies``: the patient's studies at this site.
- ``GET /patient/api/history``: their grants, guardians, consent changes and accesses (one
  :func:`~imaging_consent.index.trail_from_chain` call).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_typing import ChecksumAddress
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from imaging_consent.consent import ConsentClient
from imaging_consent.consent.relay import DEFAULT_SIGNATURE_LIFETIME
from imaging_consent.consent.signing import SignedConsent
from imaging_consent.errors import ImagingConsentError
from imaging_consent.gateway import ImageGateway
from imaging_consent.index import trail_from_chain
from imaging_consent.index.sync import Indexer
from imaging_consent.server.auth import Principal
from imaging_consent.server.patient_view import patient_studies, purposes_json, trail_json
from imaging_consent.server.problems import problem
from imaging_consent.server.relayer import PatientRequestError, Relayer, refusal

__all__ = ["PAGE_DIR", "PatientSettings", "on_patient_problem", "patient_router"]

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


@dataclass(frozen=True, slots=True)
class PatientSettings:
    """The patient page's settings.

    Attributes:
        page_dir: The built page (``index.html``, ``app.js``, ``style.css``).
        tx_link: The network's transaction link, with ``{tx}`` where the hash goes
            (``https://sepolia.etherscan.io/tx/{tx}``); None on a local chain (plain hash).
        network_name: The chain's name as patients know it (default: ``chain <id>``).
        relay_per_hour: Consent changes the gateway relays per patient per sliding hour.
        labels: Names the site knows accounts by, as (address, label) pairs.

    Raises:
        ValueError: On a link without ``{tx}`` or not http(s), or a limit below 1.
    """

    page_dir: Path = PAGE_DIR
    tx_link: str | None = None
    network_name: str | None = None
    relay_per_hour: int = 10
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.tx_link is not None and (
            "{tx}" not in self.tx_link or not self.tx_link.startswith(("https://", "http://"))
        ):
            raise ValueError("the transaction link must be an http(s) URL containing {tx}")
        if self.relay_per_hour < 1:
            raise ValueError("the relay limit must be at least 1 per hour")


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

    @router.get("/patient/api/history")
    def history(caller: Caller) -> dict[str, Any]:
        if index is not None:
            trail = index.trail(caller.address)
        else:
            trail = trail_from_chain(suite, caller.address)
        return trail_json(trail, patient_studies(gateway, caller.address), labels)

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
