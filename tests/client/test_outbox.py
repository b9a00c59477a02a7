"""The durable outbox: records survive reopening and are anchored exactly once."""

from __future__ import annotations

import json
from pathlib import Path

from eth_hash.auto import keccak

from imaging_consent.access_log.outbox import Batch, Outbox, flush
from imaging_consent.provenance.merkle import verify_proof


def _add(outbox: Outbox, n: int, start: int = 0) -> list[bytes]:
    ids = []
    for i in range(start, start + n):
        request_id = keccak(b"request-%d" % i)
        outbox.add(request_id, keccak(b"leaf-%d" % i), json.dumps({"i": i}))
        ids.append(request_id)
    return ids


class _Chain:
    """Stands in for the AccessLog's anchored batches (a dict of batchId -> tx hash)."""

    def __init__(self) -> None:
        self.anchored: dict[bytes, bytes] = {}
        self.sent: list[Batch] = []

    def anchor(self, batch: Batch) -> bytes:
        assert batch.batch_id not in self.anchored, "batch anchored twice"
        self.sent.append(batch)
        self.anchored[batch.batch_id] = keccak(batch.batch_id)
        return self.anchored[batch.batch_id]

    def find(self, batch_id: bytes) -> bytes | None:
        return self.anchored.get(batch_id)


def test_flush_anchors_each_record_once(tmp_path: Path) -> None:
    chain = _Chain()
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        ids = _add(outbox, 5)

        first = flush(outbox, chain.anchor, chain.find)
        second = flush(outbox, chain.anchor, chain.find)

        assert [b.count for b in first] == [5]
        assert second == []
        assert outbox.pending_count() == 0
        batch, proof = outbox.batch_of(ids[3]) or (None, [])
        assert batch is not None and batch.tx_hash == chain.anchored[batch.batch_id]
        assert verify_proof(batch.root, keccak(b"leaf-3"), proof)


def test_records_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as outbox:
        _add(outbox, 3)

    with Outbox(path) as reopened:
        assert reopened.pending_count() == 3
        assert [json.loads(e.record)["i"] for e in reopened.entries()] == [0, 1, 2]


def test_crash_after_send_before_mark_is_not_resent(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    chain = _Chain()
    with Outbox(path) as outbox:
        _add(outbox, 4)
        sealed = outbox.seal()
        assert sealed is not None
        chain.anchor(sealed)  # mined, then the process died before mark_anchored

    with Outbox(path) as restarted:
        _add(restarted, 2, start=4)
        done = flush(restarted, chain.anchor, chain.find)

        assert [b.count for b in done] == [4, 2]
        assert len(chain.sent) == 2
        assert restarted.pending_count() == 0


def test_crash_after_seal_before_send_is_sent_once(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    chain = _Chain()
    with Outbox(path) as outbox:
        _add(outbox, 3)
        outbox.seal()

    with Outbox(path) as restarted:
        done = flush(restarted, chain.anchor, chain.find)

        assert [b.count for b in done] == [3]
        assert len(chain.sent) == 1


def test_duplicate_request_id_is_rejected(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        _add(outbox, 1)

        try:
            _add(outbox, 1)
        except Exception as exc:  # sqlite3.IntegrityError
            assert "UNIQUE" in str(exc)
        else:
            raise AssertionError("duplicate request id accepted")
        assert outbox.pending_count() == 1
