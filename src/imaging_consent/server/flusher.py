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
from imaging_consent.index.sync import Indexer, SyncResult

__all__ = ["IndexFollower", "OutboxFlusher"]

logger = logging.getLogger(__name__)


class _Background:
    """A daemon thread running :meth:`_run` until :meth:`stop` sets ``_stop``."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its current step and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError


class OutboxFlusher(_Background):
    """Flushes a gateway's outbox every ``interval`` seconds in a background thread.

    Args:
        gateway: The gateway whose outbox is flushed.
        interval: Seconds between flushes.
    """

    def __init__(self, gateway: ImageGateway, interval: float) -> None:
        super().__init__("outbox-flush")
        self._gateway = gateway
        self._interval = interval

    def stop(self) -> None:
        """Stop the timer and flush one last time (what fails stays in the outbox)."""
        super().stop()
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


class IndexFollower(_Background):
    """Keeps an audit index up with the chain in a background thread (:meth:`Indexer.follow`:
    the gateway's anchored batches imported, a failed sync retried), and delivers break-glass
    notifications after each sync. Stopping waits for the current sync: each page is one
    transaction, so nothing is half-written.

    Args:
        indexer: The index and the chain it follows (with the gateway's outbox).
        interval: Seconds between syncs.
        notifier: Delivers break-glass records to a webhook, if configured.
    """

    def __init__(
        self, indexer: Indexer, interval: float, notifier: BreakGlassNotifier | None = None
    ) -> None:
        super().__init__("index-follow")
        self._indexer = indexer
        self._interval = interval
        self._notifier = notifier

    def _run(self) -> None:
        self._indexer.follow(self._stop, interval=self._interval, on_sync=self._notify)

    def _notify(self, _result: SyncResult) -> None:
        if self._notifier is not None:
            self._notifier.deliver()
