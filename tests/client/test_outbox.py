"""The durable outbox on its own: what it stores, its file modes, its lock and its upgrade.

Anchoring against a chain is tested in test_release_crash.py and test_reorg.py.
"""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest
from eth_hash.auto import keccak

from imaging_consent.access_log.outbox import Outbox
from imaging_consent.errors import ReleaseError
from imaging_consent.provenance.merkle import verify_proof


def _add(outbox: Outbox, n: int, start: int = 0, **kwargs: object) -> list[bytes]:
    ids = []
    for i in range(start, start + n):
        request_id = keccak(b"request-%d" % i)
        outbox.add(request_id, keccak(b"leaf-%d" % i), json.dumps({"i": i}), **kwargs)  # type: ignore[arg-type]
        ids.append(request_id)
    return ids


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_seal_and_prove(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        ids = _add(outbox, 5)

        batch = outbox.seal()

        assert batch is not None and batch.count == 5 and outbox.seal() is None
        found = outbox.batch_of(ids[3])
        assert found is not None
        assert verify_proof(batch.root, keccak(b"leaf-3"), found[1])
        outbox.set_batch_tx(batch.batch_id, b"\x01" * 32, final=False)
        assert outbox.pending_count() == 5  # mined is not final
        outbox.set_batch_tx(batch.batch_id, b"\x01" * 32, final=True)
        assert outbox.pending_count() == 0 and outbox.open_batches() == []


def test_records_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as outbox:
        _add(outbox, 3)

    with Outbox(path) as reopened:
        assert reopened.pending_count() == 3
        assert [json.loads(e.record)["i"] for e in reopened.entries()] == [0, 1, 2]


def test_duplicate_request_id_is_rejected(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        _add(outbox, 1)

        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            _add(outbox, 1)
        assert outbox.pending_count() == 1


def test_refusal_reason_is_kept_beside_the_record(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        (refused,) = _add(outbox, 1, reason="IntegrityError")
        (released,) = _add(outbox, 1, start=1)

        with pytest.raises(ValueError, match="class name"):
            _add(outbox, 1, start=2, reason="patient 0xabc refused")

        by_id = {e.request_id: e for e in outbox.entries()}
        assert by_id[refused].reason == "IntegrityError" and by_id[released].reason is None
        assert json.loads(by_id[refused].record) == {"i": 0}  # the record itself is unchanged
        assert len(by_id) == 2


def test_direct_records_stay_out_of_batches_until_moved(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        (direct,) = _add(outbox, 1, direct=True)
        (batched,) = _add(outbox, 1, start=1)
        outbox.add_sent(b"\x02" * 32, 7, b"raw", request_id=direct)

        first = outbox.seal()
        outbox.to_batch(direct)
        second = outbox.seal()

        assert first is not None and first.count == 1
        assert outbox.batch_of(batched) is not None
        assert second is not None and second.count == 1
        found = outbox.batch_of(direct)
        assert found is not None and found[0].batch_id == second.batch_id
        # Moved to a batch, it can no longer be sent on its own.
        with pytest.raises(ReleaseError, match="no longer"):
            outbox.add_sent(b"\x03" * 32, 8, b"raw", request_id=direct)


def test_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as outbox:
        _add(outbox, 2)
        with outbox.flush_lock():
            pass
        files = [path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", ".lock"))]
        assert all(f.exists() for f in files)
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_existing_outbox_is_made_private_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    old = sqlite3.connect(path)  # the first schema, world-readable
    old.executescript(
        "CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id BLOB NOT NULL "
        "UNIQUE, leaf BLOB NOT NULL UNIQUE, record TEXT NOT NULL, batch_id BLOB);"
        "CREATE TABLE batches (batch_id BLOB PRIMARY KEY, root BLOB NOT NULL, "
        "count INTEGER NOT NULL, tx_hash BLOB);"
    )
    old.execute(
        "INSERT INTO records (request_id, leaf, record) VALUES (?, ?, '{}')",
        (keccak(b"old"), keccak(b"old leaf")),
    )
    old.commit()
    old.close()
    path.chmod(0o644)

    with Outbox(path) as outbox:
        assert _mode(path) == 0o600
        (entry,) = outbox.entries()
        assert entry.reason is None and not entry.direct
        assert outbox.seal() is not None


def test_flush_lock_excludes_another_holder(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as first, Outbox(path) as second:
        order: list[str] = []
        with first.flush_lock():
            waiter = threading.Thread(target=lambda: _hold(second, order))
            waiter.start()
            time.sleep(0.3)
            order.append("first done")
        waiter.join(timeout=10)

    assert order == ["first done", "second got it"]


def _hold(outbox: Outbox, order: list[str]) -> None:
    with outbox.flush_lock():
        order.append("second got it")
