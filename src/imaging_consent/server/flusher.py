"""Anchoring the outbox on a timer while the service runs, and once more when it stops.

In batched mode records wait in the durable outbox; :meth:`ImageGateway.flush` anchors them
exactly once (a file lock, and idempotent settling), so a crash at any point loses no record
and anchors none twice: the next flush, here or in another process, finishes the work. In sync
mode a flush settles records whose transaction was sent but not yet seen final.
"""

from __future__ import annotations

import logging
import threading

from imaging_consent.errors import ImagingConsentError
from imaging_consent.gateway import ImageGateway
from imaging_consent.index.notify import BreakGlassNotifier
from imaging_consent.index.sync import Indexer

__all__ = ["IndexFollower", "OutboxFlusher"]

logger = logging.getLogger(__name__)


class OutboxFlusher:
    """Flushes a gateway's outbox every ``interval`` seconds in a background thread.

    Args:
        gateway: The gateway whose outbox is flushed.
        interval: Seconds between flushes.
    """

    def __init__(self, gateway: ImageGateway, interval: float) -> None:
        self._gateway = gateway
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-flush", daemon=True)

    def start(self) -> None:
        """Start flushing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the timer and flush one last time (what fails stays in the outbox)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush()

    def flush(self) -> None:
        """Anchor what waits now; a failure is logged and left for the next flush."""
        try:
            self._gateway.flush()
        except ImagingConsentError as exc:
            logger.warning("the outbox could not be flushed (%s); it is kept", type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()


class IndexFollower:
    """Keeps an audit index up with the chain in a background thread, importing the gateway's
    anchored batches, and delivers break-glass notifications after each sync.

    Args:
        indexer: The index and the chain it follows (with the gateway's outbox).
        interval: Seconds between syncs.
        notifier: Delivers break-glass records to a webhook, if configured.
    """

    def __init__(
        self, indexer: Indexer, interval: float, notifier: BreakGlassNotifier | None = None
    ) -> None:
        self._indexer = indexer
        self._interval = interval
        self._notifier = notifier
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="index-follow", daemon=True)

    def start(self) -> None:
        """Start following."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current sync (each page is one transaction: nothing is half-written)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._indexer.sync()
                if self._notifier is not None:
                    self._notifier.deliver()
            except ImagingConsentError as exc:
                logger.warning("the audit index could not sync (%s); retrying", type(exc).__name__)
            self._stop.wait(self._interval)
