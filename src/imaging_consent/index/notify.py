"""Break-glass notifications: a webhook POST for each break-glass record once it is final.

The index holds only blocks ``confirmations`` deep, so every break-glass record it lists has
its confirmations. :class:`BreakGlassNotifier` POSTs each one not yet delivered, as JSON, with
the header ``Idempotency-Key: <tx hash>:<log index>`` (the same key on every retry, so the
receiver can drop repeats): delivery is at least once. A failed POST (no answer, or a status
other than 2xx) is retried with exponential backoff; a record still undelivered after the last
attempt stays pending and is tried again at the next :meth:`~BreakGlassNotifier.deliver`.
Every attempt is recorded in the index's ``deliveries`` table.

The body carries only what the chain holds: patient and clinician addresses, the study key,
the reason's commitment (never the reason), the gateway, the block, its time and the
transaction.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from imaging_consent.access_log.history import AccessEvent
from imaging_consent.consent.inputs import iso_time
from imaging_consent.errors import WebhookError
from imaging_consent.index.store import AuditIndex
from imaging_consent.net import is_plain_http_to_remote, redact_url

__all__ = ["BreakGlassNotifier", "DeliveryReport", "idempotency_key", "payload"]

logger = logging.getLogger(__name__)


def idempotency_key(event: AccessEvent) -> str:
    """``<tx hash>:<log index>``: one per break-glass record, the same on every retry."""
    return f"{event.tx_hash}:{event.log_index}"


def payload(event: AccessEvent) -> dict[str, object]:
    """The JSON body of one notification (chain data only)."""
    return {
        "type": "break_glass",
        "idempotency_key": idempotency_key(event),
        "patient": event.patient,
        "study_key": "0x" + event.study_key.hex(),
        "clinician": event.accessor,
        "gateway": event.gateway,
        "reason_commitment": (
            "0x" + event.reason_commitment.hex() if event.reason_commitment else None
        ),
        "request_id": "0x" + event.request_id.hex(),
        "block_number": event.block_number,
        "tx_hash": event.tx_hash,
        "log_index": event.log_index,
        "time": iso_time(event.timestamp),
    }


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one :meth:`BreakGlassNotifier.deliver` did.

    Attributes:
        delivered: Records delivered now.
        pending: Records still undelivered (the endpoint failed every attempt).
    """

    delivered: int
    pending: int


class BreakGlassNotifier:
    """Delivers the index's break-glass records to a webhook, at least once each.

    Args:
        index: The audit index.
        url: The webhook (``https://``, or ``http://`` on loopback only).
        attempts: POSTs per record and per :meth:`deliver` before it is left pending.
        backoff: Seconds before the second attempt; doubled before each next one.
        timeout: Seconds to wait for each answer.
        sleep: How to wait (tests pass a recorder).

    Raises:
        WebhookError: If the URL is not HTTP(S), or is plain HTTP to a remote host.
    """

    def __init__(
        self,
        index: AuditIndex,
        url: str,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise WebhookError(f"the break-glass webhook must be an http(s) URL: {redact_url(url)}")
        if is_plain_http_to_remote(url):
            raise WebhookError(
                f"the break-glass webhook {redact_url(url)} is plain http to a remote host; "
                "use https"
            )
        self.index = index
        self.url = url
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = timeout
        self._sleep = sleep
        self._http = requests.Session()

    def deliver(self) -> DeliveryReport:
        """POST every undelivered break-glass record, oldest first."""
        found = self.index.accesses(kinds=["break_glass"])
        done = self.index.delivered(idempotency_key(e) for e in found)
        delivered = pending = 0
        for event in found:
            key = idempotency_key(event)
            if key in done:
                continue
            if self._post(event, key):
                delivered += 1
            else:
                pending += 1
        return DeliveryReport(delivered, pending)

    def _post(self, event: AccessEvent, key: str) -> bool:
        body = json.dumps(payload(event), separators=(",", ":"))
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            error: str | None = None
            try:
                answer = self._http.post(self.url, data=body, headers=headers, timeout=self.timeout)
                if 200 <= answer.status_code < 300:
                    self.index.note_delivery(key, delivered_at=int(time.time()), error=None)
                    return True
                error = f"HTTP {answer.status_code}"
            except requests.RequestException as exc:
                error = type(exc).__name__
            self.index.note_delivery(key, delivered_at=None, error=error)
            logger.warning(
                "break-glass webhook %s failed (%s), attempt %d of %d",
                redact_url(self.url), error, attempt, self.attempts,
            )  # fmt: skip
            if attempt < self.attempts:
                self._sleep(delay)
                delay *= 2
        return False
