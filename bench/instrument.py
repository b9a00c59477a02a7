"""Where a release's time goes: timers wrapped around the functions the gateway calls.

:func:`release_timers` replaces, for the duration of a ``with`` block, the module attributes a
release looks up at call time with timed wrappers, and restores them afterwards:

- ``check``: :meth:`AccessLog.check_access_confirmed` (encode, one ``eth_call``, decode);
- ``load``: :func:`provenance.instances.load_instance` (open and read the file, parse, check
  UIDs, hash), with ``parse`` (``read_dicom``) and ``hash`` (``dataset_pixel_hash`` /
  ``pixel_hash``, i.e. sha256) timed inside it;
- ``merkle``: instance keys, leaves, the content tree and its proofs (``instance_key``,
  ``leaf_hash``, ``MerkleTree.of``, ``MerkleTree.proof``);
- ``outbox``: :meth:`Outbox.add` (the durable SQLite insert of every record, both modes);
- ``record_tx``: the ``recordAccess`` transaction of a sync release, mined and decoded.

Each wrapper costs about a microsecond, so the split is of the real, unprofiled release.
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
    from imaging_consent.provenance import instances
    from imaging_consent.provenance.merkle import MerkleTree

    timers = Timers()
    patches: list[tuple[Any, str, str, bool]] = [
        (AccessLog, "check_access_confirmed", "check", False),
        (instances, "load_instance", "load", False),
        (instances, "read_dicom", "parse", False),
        (instances, "dataset_pixel_hash", "hash", False),
        (instances, "pixel_hash", "hash", False),
        (instances, "instance_key", "merkle", False),
        (instances, "leaf_hash", "merkle", False),
        (MerkleTree, "of", "merkle", True),
        (MerkleTree, "proof", "merkle", False),
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

    ``load_parse`` is reading and parsing the file (``load`` without its sha256);
    ``other`` is the release's time outside every timed part.
    """
    part = {label: seconds.get(label, 0.0) for label in ("check", "load", "parse", "hash")}
    rows = {
        "check_access_call": part["check"],
        "load_parse": part["load"] - part["hash"],
        "of_which_parse": part["parse"],
        "of_which_read_and_checks": part["load"] - part["hash"] - part["parse"],
        "hashing_sha256": part["hash"],
        "merkle": seconds.get("merkle", 0.0),
        "outbox": seconds.get("outbox", 0.0),
        "record_tx": seconds.get("record_tx", 0.0),
    }
    timed = sum(v for k, v in rows.items() if not k.startswith("of_which"))
    rows["other"] = total - timed
    rows["total"] = total
    return {k: round(v * 1000 / releases, 4) for k, v in rows.items()}
