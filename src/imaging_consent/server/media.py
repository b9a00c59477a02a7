"""Request checks shared by the DICOMweb routes: UIDs, purposes of use and Accept headers."""

from __future__ import annotations

import re

from imaging_consent.consent.purposes import Purpose
from imaging_consent.errors import BadRequestError, NotAcceptableError

__all__ = [
    "DICOM_JSON",
    "MULTIPART_DICOM",
    "PURPOSE_HEADER",
    "check_uid",
    "json_accepted",
    "multipart_transfer_syntax",
    "purpose_of_use",
]

DICOM_JSON = "application/dicom+json"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"'
PURPOSE_HEADER = "X-Purpose-Of-Use"
#: DICOM UI (PS3.5 9.1): digit components without leading zeros, dot-separated, <= 64 chars.
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def check_uid(value: str, what: str) -> str:
    """``value`` if it is a well-formed DICOM UID.

    Raises:
        BadRequestError: If it is not (digits and dots, at most 64 characters).
    """
    if len(value) > 64 or not _UID.match(value):
        raise BadRequestError(f"{what} is not a DICOM UID (digits and dots, at most 64 characters)")
    return value


def purpose_of_use(header: str | None) -> Purpose:
    """The purpose of use named by ``X-Purpose-Of-Use`` (TREAT when absent).

    Raises:
        UnknownPurposeError: If it names no HL7 v3 PurposeOfUse code the registry knows.
    """
    return Purpose.parse(header if header and header.strip() else "TREAT")


def _ranges(accept: str | None) -> list[tuple[str, dict[str, str]]]:
    """The media ranges of an Accept header (q=0 ones dropped), ``*/*`` when absent."""
    if accept is None or not accept.strip():
        return [("*/*", {})]
    ranges = []
    for item in accept.split(","):
        kind, *raw = (part.strip() for part in item.split(";"))
        params = {}
        for param in raw:
            name, _, value = param.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        if params.get("q", "1").strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        ranges.append((kind.lower(), params))
    return ranges


def json_accepted(accept: str | None) -> None:
    """Check the caller accepts DICOM JSON.

    Raises:
        NotAcceptableError: If it accepts neither application/dicom+json nor application/json.
    """
    wanted = {"*/*", "application/*", DICOM_JSON, "application/json"}
    if not any(kind in wanted for kind, _ in _ranges(accept)):
        raise NotAcceptableError(f"this resource is served as {DICOM_JSON} only")


def multipart_transfer_syntax(accept: str | None) -> str | None:
    """The transfer syntax a multipart DICOM retrieval asks for (None or ``*``: as stored).

    Raises:
        NotAcceptableError: If it accepts no ``multipart/related; type="application/dicom"``.
    """
    for kind, params in _ranges(accept):
        if kind in ("*/*", "multipart/*") or (
            kind == "multipart/related" and params.get("type", "application/dicom").lower()
            in ("application/dicom", "application/*", "*/*")
        ):  # fmt: skip
            return params.get("transfer-syntax")
    raise NotAcceptableError(
        f"instances are served as {MULTIPART_DICOM} only, in their stored transfer syntax"
    )
