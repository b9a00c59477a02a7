"""The fastapi application: Sign-In with Ethereum, DICOMweb (QIDO-RS, WADO-RS), proofs.

Routes (docs/ARCHITECTURE.md, "DICOMweb service"):

- ``POST /auth/nonce``, ``POST /auth/login``: :mod:`.auth`.
- ``GET /dicom-web/studies``, ``.../studies/{study}/series``,
  ``.../studies/{study}/series/{series}/instances``: searches, as ``application/dicom+json``.
- ``GET /dicom-web/studies/{study}[/series/{series}[/instances/{instance}]]``: retrievals, as
  ``multipart/related; type="application/dicom"``; with ``/metadata``: the released files'
  attributes as ``application/dicom+json``.
- ``GET /proofs/{request_id}``: the release's ``proof.json``, for its requester only.
- ``POST /break-glass``: the typed data an emergency clinician signs (:mod:`.break_glass`).
- ``/patient`` and ``/patient/api/...``: the patient's page (:mod:`.patient`).

Every route but the first two needs ``Authorization: Bearer <token>``. The purpose of use is
``X-Purpose-Of-Use`` (default TREAT). Errors are ``application/problem+json``
(:mod:`.problems`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from imaging_consent.dicom import study_key
from imaging_consent.errors import AuthenticationError
from imaging_consent.gateway import ImageGateway, Release
from imaging_consent.index.notify import BreakGlassNotifier
from imaging_consent.index.sync import Indexer
from imaging_consent.server import break_glass
from imaging_consent.server.auth import Principal, SiweAuth
from imaging_consent.server.dicomweb import (
    Service,
    StudyQuery,
    metadata,
    stream_multipart,
)
from imaging_consent.server.flusher import IndexFollower, OutboxFlusher
from imaging_consent.server.media import (
    DICOM_JSON,
    MULTIPART_DICOM,
    PURPOSE_HEADER,
    check_uid,
    json_accepted,
    multipart_transfer_syntax,
    purpose_of_use,
)
from imaging_consent.server.patient import PatientSettings, on_patient_problem, patient_router
from imaging_consent.server.problems import HANDLERS
from imaging_consent.server.relayer import PatientRequestError
from imaging_consent.server.settings import ServerSettings

__all__ = ["create_app"]

_EXPOSED = ["X-Request-Id", "X-Access-Log", "X-Release", "Link"]
_ALLOWED_HEADERS = [
    "Authorization",
    "Accept",
    "Content-Type",
    PURPOSE_HEADER,
    break_glass.HEADER,
    break_glass.REASON_HEADER,
]


@dataclass(frozen=True, slots=True)
class RetrievalHeaders:
    """The request headers a retrieval reads."""

    purpose: str | None
    accept: str | None
    break_glass: str | None
    reason: str | None


class LoginBody(BaseModel):
    """``POST /auth/login``."""

    message: str
    signature: str


class BreakGlassBody(BaseModel):
    """``POST /break-glass``."""

    study: str
    reason: str


def _access_log(gateway: ImageGateway) -> str:
    suite = gateway.suite
    return f"chain={suite.session.chain_id}; contract={suite.access_log.address}"


def _release_headers(gateway: ImageGateway, release: Release) -> dict[str, str]:
    where = f"tx={release.log_tx}" if release.log_tx else "outbox=batched"
    rid = "0x" + release.request_id.hex()
    headers = {
        "X-Request-Id": rid,
        "X-Access-Log": f"{_access_log(gateway)}; {where}",
        "X-Release": "identified" if release.identified else "de-identified",
        "Link": f'</proofs/{rid}>; rel="proof"',
    }
    if release.break_glass:
        headers["X-Release"] += "; break-glass"
    return headers


def _principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The signed-in caller (``Authorization: Bearer <token>``).

    Raises:
        AuthenticationError: If the token is missing, expired, forged or for another server.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("sign in first: Authorization: Bearer <token> is missing")
    auth: SiweAuth = request.app.state.auth
    return auth.principal(token.strip())


Caller = Annotated[Principal, Depends(_principal)]
PurposeHeader = Annotated[str | None, Header(alias=PURPOSE_HEADER)]
AcceptHeader = Annotated[str | None, Header(alias="Accept")]


def _retrieval_headers(
    purpose: PurposeHeader = None,
    accept: AcceptHeader = None,
    signed: Annotated[str | None, Header(alias=break_glass.HEADER)] = None,
    reason: Annotated[str | None, Header(alias=break_glass.REASON_HEADER)] = None,
) -> RetrievalHeaders:
    return RetrievalHeaders(purpose, accept, signed, reason)


Headers = Annotated[RetrievalHeaders, Depends(_retrieval_headers)]


def create_app(
    settings: ServerSettings,
    gateway: ImageGateway,
    *,
    clock: Callable[[], float] = time.time,
    patient: PatientSettings | None = None,
    index: Indexer | None = None,
    notifier: BreakGlassNotifier | None = None,
) -> FastAPI:
    """The DICOMweb service in front of ``gateway``.

    The outbox is flushed every ``settings.flush_interval`` seconds while the app runs and once
    when it stops. The gateway stays open (its owner closes it).

    Args:
        settings: The service's identity and limits.
        gateway: The release gate (with its store, chain and outbox).
        clock: Unix time for sign-in and tokens (default ``time.time``).
        patient: The patient page's settings (default :class:`PatientSettings`).
        index: An audit index to keep in sync (every ``flush_interval``) and to read the
            patient's history from; its owner closes it.
        notifier: Break-glass webhook deliveries, run after each sync of ``index``.
    """
    service = Service(gateway, settings.work_dir)
    auth = SiweAuth(settings, gateway.suite.session, clock=clock)
    flusher = OutboxFlusher(gateway, settings.flush_interval)
    follower = (
        IndexFollower(index, settings.flush_interval, notifier) if index is not None else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.clean()
        flusher.start()
        if follower is not None:
            follower.start()
        try:
            yield
        finally:
            if follower is not None:
                follower.stop()
            flusher.stop()
            service.clean()

    app = FastAPI(
        title="imaging-consent DICOMweb gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.auth = auth
    for kind, handler in HANDLERS.items():
        app.add_exception_handler(kind, handler)
    app.add_exception_handler(PatientRequestError, on_patient_problem)
    app.include_router(
        patient_router(patient or PatientSettings(), gateway, _principal, clock, index)
    )
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_credentials=False,
            allow_methods=["GET", "POST"],
            allow_headers=_ALLOWED_HEADERS,
            expose_headers=_EXPOSED,
        )

    @app.post("/auth/nonce")
    def nonce() -> dict[str, Any]:
        value, _issued = auth.nonces.issue()
        return {"nonce": value, "expires_in": settings.nonce_lifetime}

    @app.post("/auth/login")
    def login(body: LoginBody) -> dict[str, Any]:
        token = auth.login(body.message, body.signature)
        return {"access_token": token.token, "token_type": "bearer", "expires_in": token.expires_in}

    @app.post("/break-glass")
    def break_glass_typed_data(body: BreakGlassBody, caller: Caller) -> dict[str, Any]:
        key = study_key(gateway.pepper, check_uid(body.study, "study"))
        return {"typedData": break_glass.typed_data(gateway, key, body.reason)}

    def dicom_json(results: list[dict[str, Any]]) -> JSONResponse:
        headers = {"X-Access-Log": _access_log(gateway)}
        return JSONResponse(results, media_type=DICOM_JSON, headers=headers)

    @app.get("/dicom-web/studies")
    def search_studies(
        request: Request, caller: Caller, purpose: PurposeHeader = None, accept: AcceptHeader = None
    ) -> JSONResponse:
        query = StudyQuery.parse(request.query_params)
        chosen = purpose_of_use(purpose)
        json_accepted(accept)
        return dicom_json(service.search_studies(caller, chosen, query))

    @app.get("/dicom-web/studies/{study}/series")
    def search_series(
        request: Request,
        study: str,
        caller: Caller,
        purpose: PurposeHeader = None,
        accept: AcceptHeader = None,
    ) -> JSONResponse:
        check_uid(study, "study")
        chosen = purpose_of_use(purpose)
        json_accepted(accept)
        found = service.search_within(caller, chosen, study, None, request.query_params)
        return dicom_json(found)

    @app.get("/dicom-web/studies/{study}/series/{series}/instances")
    def search_instances(
        request: Request,
        study: str,
        series: str,
        caller: Caller,
        purpose: PurposeHeader = None,
        accept: AcceptHeader = None,
    ) -> JSONResponse:
        check_uid(study, "study")
        check_uid(series, "series")
        chosen = purpose_of_use(purpose)
        json_accepted(accept)
        found = service.search_within(caller, chosen, study, series, request.query_params)
        return dicom_json(found)

    def retrieve(
        caller: Principal,
        selection: tuple[str, str | None, str | None],
        headers: RetrievalHeaders,
        as_metadata: bool,
    ) -> Response:
        for uid, what in zip(selection, ("study", "series", "instance"), strict=True):
            if uid is not None:
                check_uid(uid, what)
        chosen = purpose_of_use(headers.purpose)
        if as_metadata:
            json_accepted(headers.accept)
            syntax = None
        else:
            syntax = multipart_transfer_syntax(headers.accept)
        retrieval = service.retrieve(
            caller, chosen, selection, syntax, (headers.break_glass, headers.reason)
        )
        release_headers = _release_headers(gateway, retrieval.release)
        if as_metadata:
            return JSONResponse(metadata(retrieval), media_type=DICOM_JSON, headers=release_headers)
        boundary = secrets.token_hex(16)
        return StreamingResponse(
            stream_multipart(retrieval, boundary),
            media_type=f"{MULTIPART_DICOM}; boundary={boundary}",
            headers=release_headers,
        )

    @app.get("/dicom-web/studies/{study}")
    def retrieve_study(study: str, caller: Caller, headers: Headers) -> Response:
        return retrieve(caller, (study, None, None), headers, as_metadata=False)

    @app.get("/dicom-web/studies/{study}/metadata")
    def retrieve_study_metadata(study: str, caller: Caller, headers: Headers) -> Response:
        return retrieve(caller, (study, None, None), headers, as_metadata=True)

    @app.get("/dicom-web/studies/{study}/series/{series}")
    def retrieve_series(study: str, series: str, caller: Caller, headers: Headers) -> Response:
        return retrieve(caller, (study, series, None), headers, as_metadata=False)

    @app.get("/dicom-web/studies/{study}/series/{series}/metadata")
    def retrieve_series_metadata(
        study: str, series: str, caller: Caller, headers: Headers
    ) -> Response:
        return retrieve(caller, (study, series, None), headers, as_metadata=True)

    @app.get("/dicom-web/studies/{study}/series/{series}/instances/{instance}")
    def retrieve_instance(
        study: str, series: str, instance: str, caller: Caller, headers: Headers
    ) -> Response:
        return retrieve(caller, (study, series, instance), headers, as_metadata=False)

    @app.get("/dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata")
    def retrieve_instance_metadata(
        study: str, series: str, instance: str, caller: Caller, headers: Headers
    ) -> Response:
        return retrieve(caller, (study, series, instance), headers, as_metadata=True)

    @app.get("/proofs/{request_id}")
    def proof(request_id: str, caller: Caller) -> JSONResponse:
        return JSONResponse(service.proof(caller, request_id))

    return app
