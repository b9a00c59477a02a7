"""Where a release's time goes: timers wrapped around the functions the gateway calls.

:func:`release_timers` replaces, for the duration of a ``with`` block, the module attributes a
release looks up at call time with timed wrappers, and restores them afterwards:

- ``check``: :meth:`AccessLog.check_access_confirmed` (encode, one ``eth_call``, decode);
- ``read``: opening and reading each file from the store;
- ``walk``: :func:`dicom.walk.walk_dicom` (the structural walk, the UIDs, and the hashes), with
  ``hash`` (the three sha256 hashes of content protocol v2) timed inside it;
- ``deid``: de-identification, when the release is de-identified;
- ``merkle``: instance keys, leaves, the content tree and its proofs (``instance_key``,
  ``content_leaf``, ``MerkleTree.of``, ``MerkleTree.proof``);
- ``stage``: writing each file into the release folder's staging area, and the commit;
- ``outbox``: :meth:`Outbox.add` (the durable SQLite insert of every record, both modes);
- ``record_tx``: the ``recordAccess`` transaction of a sync release, mined and decoded.

Each wrapper costs about a microsecond, so the split is of the real, unprofiled release. Files
are read by two threads at once, so the per-file parts are summed over both threads and can add
up to more than the release's wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Timers", "release_timers", "split"]


class Timers:
    """Accumulated seconds and calls per label, around wrapped functions."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def clear(self) -> None:
        """Forget what was timed so far."""
        self.seconds.clear()

    def wrap(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, adding its duration to ``label`` at every call."""
        seconds = self.seconds

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - start

        return timed


@contextmanager
def release_timers() -> Iterator[Timers]:
    """Time the parts of every release made inside the block (see the module docstring)."""
    from imaging_consent.access_log import recorder
    from imaging_consent.access_log.outbox import Outbox
    from imaging_consent.contracts.access_log import AccessLog
    from imaging_consent.dicom import walk
    from imaging_consent.provenance import instances
    from imaging_consent.provenance.merkle import MerkleTree
    from imaging_consent.provenance.verify import ReleaseFolder

    timers = Timers()
    patches: list[tuple[Any, str, str, bool]] = [
        (AccessLog, "check_access_confirmed", "check", False),
        (instances, "_read", "read", False),
        (instances, "walk_dicom", "walk", False),
        (walk, "_digest", "hash", False),
        (instances, "_deidentified", "deid", False),
        (instances, "instance_key", "merkle", False),
        (instances, "content_leaf", "merkle", False),
        (MerkleTree, "of", "merkle", True),
        (MerkleTree, "proof", "merkle", False),
        (ReleaseFolder, "stage", "stage", False),
        (ReleaseFolder, "commit", "stage", False),
        (Outbox, "add", "outbox", False),
        (recorder._Recorder, "_send_record_access", "record_tx", False),
    ]
    saved = [(owner, name, vars(owner)[name]) for owner, name, _label, _static in patches]
    try:
        for owner, name, label, static in patches:
            timed = timers.wrap(label, getattr(owner, name))
            setattr(owner, name, staticmethod(timed) if static else timed)
        yield timers
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def split(seconds: dict[str, float], total: float, releases: int = 1) -> dict[str, float]:
    """Milliseconds per release of each part, from timers accumulated over ``releases``.

    ``walk`` is the structural walk without its hashing; ``other`` is the release's wall time
    outside every timed part (negative when the two reading threads overlap more than that).
    """
    part = {label: seconds.get(label, 0.0) for label in ("check", "read", "walk", "hash")}
    rows = {
        "check_access_call": part["check"],
        "read_files": part["read"],
        "walk": part["walk"] - part["hash"],
        "hashing_sha256": part["hash"],
        "deid": seconds.get("deid", 0.0),
        "merkle": seconds.get("merkle", 0.0),
        "stage_write": seconds.get("stage", 0.0),
        "outbox": seconds.get("outbox", 0.0),
        "record_tx": seconds.get("record_tx", 0.0),
    }
    rows["other"] = total - sum(rows.values())
    rows["total"] = total
    return {k: round(v * 1000 / releases, 4) for k, v in rows.items()}
