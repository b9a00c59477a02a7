"""Break-glass over HTTP: what the clinician signs, and the headers that carry it.

1. The emergency clinician's tool, signed in, asks ``POST /break-glass`` with ``{"study": UID,
   "reason": TEXT}``. The server answers the EIP-712 ``BreakGlass`` typed data to sign: this
   site, the study's key and the reason's keyed commitment (both need the site pepper, which
   never leaves the server), a fresh request id and a deadline (chain time).
2. The tool signs it with the clinician's own key (``eth_signTypedData_v4``, or an EIP-1271
   wallet) and sends the retrieval with two headers: ``X-Break-Glass`` (:func:`header_value`
   of the typed data and signature) and ``X-Break-Glass-Reason`` (the same reason,
   percent-encoded UTF-8).
3. The gate checks the signature against the requester (the token's address), this site and
   study, and the commitment of the reason sent; only a clinician the site appointed for
   emergencies passes. The access is recorded with ``recordBreakGlass`` (always on chain at
   once, flagged for the patient) under the signed request id, which cannot be used twice.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import unquote

from eth_typing import ChecksumAddress

from imaging_consent.access_log.break_glass import (
    BREAK_GLASS_LIFETIME,
    BreakGlass,
    break_glass_typed_data,
    reason_commitment,
)
from imaging_consent.contracts.calls import block_time
from imaging_consent.errors import BadRequestError
from imaging_consent.gateway import ImageGateway

__all__ = ["HEADER", "REASON_HEADER", "header_value", "parse_headers", "typed_data"]

HEADER = "X-Break-Glass"
REASON_HEADER = "X-Break-Glass-Reason"


def typed_data(gateway: ImageGateway, study_key: bytes, reason: str) -> dict[str, Any]:
    """The ``BreakGlass`` typed data a clinician signs for this site's study and reason.

    Raises:
        BadRequestError: If the reason is empty.
        ChainUnavailableError: If the chain cannot be reached.
    """
    if not reason.strip():
        raise BadRequestError("a break-glass access needs a reason")
    suite = gateway.suite
    return break_glass_typed_data(
        suite.access_log.eip712_domain(),
        suite.session.chain_id,
        gateway.site,
        study_key,
        os.urandom(32),
        reason_commitment(gateway.pepper, reason),
        block_time(suite.session) + BREAK_GLASS_LIFETIME,
    )


def header_value(data: dict[str, Any], signature: bytes) -> str:
    """The ``X-Break-Glass`` value for signed typed data (what the clinician's tool sends)."""
    message = data["message"]
    document = {
        "requestId": message["requestId"],
        "deadline": int(message["deadline"]),
        "signature": "0x" + signature.hex(),
    }
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def _hex(value: object, size: int | None, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise BadRequestError(f"{HEADER}: {what} must be 0x-hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise BadRequestError(f"{HEADER}: {what} is not hex") from None
    if size is not None and len(raw) != size:
        raise BadRequestError(f"{HEADER}: {what} must be {size} bytes")
    return raw


def parse_headers(
    value: str,
    reason: str | None,
    clinician: ChecksumAddress,
    gateway: ImageGateway,
    study_key: bytes,
) -> BreakGlass:
    """The signed break-glass request carried by the headers, for the requester and study.

    Raises:
        BadRequestError: If the header is malformed or the reason missing.
    """
    if reason is None or not unquote(reason).strip():
        raise BadRequestError(f"break-glass needs {REASON_HEADER} (the documented reason)")
    try:
        padded = value.strip() + "=" * (-len(value.strip()) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        raise BadRequestError(f"{HEADER} is not base64url JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("deadline"), int):
        raise BadRequestError(f"{HEADER} must hold requestId, deadline and signature")
    return BreakGlass(
        clinician=clinician,
        site=gateway.site,
        study_key=study_key,
        request_id=_hex(document.get("requestId"), 32, "requestId"),
        reason_commitment=reason_commitment(gateway.pepper, unquote(reason)),
        deadline=document["deadline"],
        signature=_hex(document.get("signature"), None, "signature"),
    )
