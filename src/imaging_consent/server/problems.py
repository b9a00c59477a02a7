"""Errors as RFC 9457 ``application/problem+json`` answers, one status per error type.

Every error the gate or the service raises is mapped here; anything else becomes a 500 whose
body names no detail. No stack trace ever reaches a client. Messages of the typed errors name
what was wrong but no personal data (see :mod:`imaging_consent.errors`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imaging_consent import errors

__all__ = ["PROBLEM_JSON", "STATUSES", "problem", "problem_for", "status_of"]

PROBLEM_JSON = "application/problem+json"

logger = logging.getLogger(__name__)

#: Error types, most specific first, with their status, title and the detail shown: None shows
#: the error's own message (only for errors whose messages this service writes, or which name no
#: study, patient or key); the gate's messages name study keys, so a fixed text stands in.
STATUSES: tuple[tuple[type[BaseException], int, str, str | None], ...] = (
    (errors.AuthenticationError, 401, "Not signed in", None),
    (errors.BadRequestError, 400, "Bad request", None),
    (errors.UnknownPurposeError, 400, "Unknown purpose of use", None),
    (errors.NotAcceptableError, 406, "Not acceptable", None),
    (
        errors.ConsentDeniedError, 403, "Consent does not permit this access",
        "no consent on chain permits this access for this purpose; the refusal is recorded",
    ),
    (
        errors.NotEmergencyError, 403, "Not an emergency clinician of this site",
        "break-glass is only for this site's emergency clinicians; the refusal is recorded",
    ),
    (
        errors.BreakGlassLimitError, 403, "Break-glass limit reached",
        "the clinician has used up this site's break-glass window",
    ),
    (
        errors.InvalidSignatureError, 403, "Break-glass request not valid",
        "the break-glass signature is not the clinician's for this study, site and reason, "
        "or was used before; the refusal is recorded",
    ),
    (
        errors.SignatureExpiredError, 403, "Break-glass request expired",
        "the break-glass request's deadline has passed: sign a new one",
    ),
    (errors.StudyNotRegisteredError, 404, "No such study", "no such study at this site"),
    (errors.UnknownStudyError, 404, "No such study or series", "no such study or series"),
    (errors.UnknownInstanceError, 404, "No such instance", "no such instance"),
    (
        errors.IntegrityError, 502, "Integrity failure",
        "the site's images do not match their content root on chain; nothing released, "
        "the refusal is recorded",
    ),
    (
        errors.DeidentificationError, 422, "Cannot be de-identified safely",
        "an instance may carry identifying pixels (burned-in text or a recognizable feature) "
        "and the grant allows de-identified data only; nothing released, the refusal is recorded",
    ),
    (errors.StoreError, 502, "Image store unavailable", "the image store could not answer"),
    (
        errors.ChainUnavailableError, 503, "Chain unavailable",
        "the chain cannot be reached or answers unclearly; nothing released",
    ),
    (
        errors.TransactionError, 503, "Access not recorded",
        "the access could not be recorded on chain; nothing released",
    ),
    (
        errors.ReleaseError, 503, "Release not possible",
        "the release could not be completed; nothing released",
    ),
)  # fmt: skip
_HIDDEN = (500, "Internal error", "the server could not answer; nothing was released")


def status_of(exc: BaseException) -> tuple[int, str, str]:
    """The status, title and detail of an error (a bare 500 if it is not a known type)."""
    for kind, status, title, detail in STATUSES:
        if isinstance(exc, kind):
            return status, title, detail if detail is not None else " ".join(str(exc).split())
    return _HIDDEN


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def problem_for(exc: BaseException) -> JSONResponse:
    """The answer to an error: its typed status and detail, or a bare 500."""
    status, title, detail = status_of(exc)
    if (status, title, detail) == _HIDDEN:
        logger.error("unexpected %s answering a request", type(exc).__name__, exc_info=exc)
        return problem(status, title, detail)
    headers: dict[str, str] = {}
    extra: dict[str, str] = {}
    request_id = getattr(exc, "request_id", None)
    if isinstance(request_id, bytes):
        extra["requestId"] = headers["X-Request-Id"] = "0x" + request_id.hex()
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="dicom-web"'
    if status >= 500:
        logger.warning("request refused: %s", type(exc).__name__)
    return problem(status, title, detail, headers or None, **extra)


async def _on_error(_request: Request, exc: Exception) -> JSONResponse:
    return problem_for(exc)


async def _on_http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    return problem(exc.status_code, str(exc.detail), headers=headers or None)


async def _on_validation(_request: Request, exc: Exception) -> JSONResponse:
    return problem(400, "Bad request", "the request's parameters or body are malformed")


HANDLERS = {
    errors.ImagingConsentError: _on_error,
    StarletteHTTPException: _on_http,
    RequestValidationError: _on_validation,
    Exception: _on_error,
}
