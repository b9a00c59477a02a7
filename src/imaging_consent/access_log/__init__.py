"""The Python side of AccessLog: records, recorders, the outbox and the access history.

- :mod:`.record`: :class:`AccessRecord`, its batch leaf and its JSON form.
- :mod:`.recorder`: the :class:`Recorder` protocol, :class:`SyncRecorder`, :class:`BatchedRecorder`.
- :mod:`.outbox`: the durable outbox of batched records.
- :mod:`.history`: :func:`access_history`, every recorded access to a patient's studies.
"""

from imaging_consent.access_log.history import AccessEvent, access_history
from imaging_consent.access_log.outbox import Batch, Outbox
from imaging_consent.access_log.record import AccessRecord
from imaging_consent.access_log.recorder import (
    AccessRequest,
    BatchedRecorder,
    LogMode,
    Recorder,
    SyncRecorder,
)

__all__ = [
    "AccessEvent",
    "AccessRecord",
    "AccessRequest",
    "Batch",
    "BatchedRecorder",
    "LogMode",
    "Outbox",
    "Recorder",
    "SyncRecorder",
    "access_history",
]
