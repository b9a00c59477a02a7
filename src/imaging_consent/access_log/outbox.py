"""A durable local outbox for access records awaiting their on-chain anchor.

In batched logging mode the gateway writes every access record here *before* it returns any
image bytes, and later anchors the Merkle root of many records in one ``anchorBatch``
transaction. The outbox is SQLite in WAL mode with ``synchronous=FULL``, so a record that
:meth:`Outbox.add` returned for is on disk and survives a crash.

Anchoring is two-phase, so a crash at any point loses and duplicates nothing:

1. :meth:`Outbox.seal` assigns every unbatched record to a new batch and stores the batch's id,
   root and count in one transaction (nothing is sent yet).
2. The caller sends ``anchorBatch(root, count, batchId)`` and, once mined,
   :meth:`Outbox.mark_anchored` stores the transaction hash.

After a restart, a sealed batch without a transaction hash is checked against the chain's
``BatchAnchored`` events by its ``batchId`` before it is sent again.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eth_hash.auto import keccak

from imaging_consent.provenance.merkle import MerkleTree

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  BLOB NOT NULL UNIQUE,
    leaf        BLOB NOT NULL UNIQUE,
    record      TEXT NOT NULL,
    batch_id    BLOB REFERENCES batches(batch_id)
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id    BLOB PRIMARY KEY,
    root        BLOB NOT NULL,
    count       INTEGER NOT NULL,
    tx_hash     BLOB
);
CREATE INDEX IF NOT EXISTS records_batch ON records(batch_id);
"""


@dataclass(frozen=True, slots=True)
class Batch:
    """A sealed batch of access records, anchored once ``tx_hash`` is set."""

    batch_id: bytes
    root: bytes
    count: int
    tx_hash: bytes | None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One access record as held in the outbox."""

    request_id: bytes
    leaf: bytes
    record: str
    batch_id: bytes | None


class Outbox:
    """Durable, crash-safe queue of access records (SQLite, WAL, fsync on commit).

    Args:
        path: The database file; its folder is created if needed.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(self, request_id: bytes, leaf: bytes, record: str) -> None:
        """Store one record durably. Returns only once it is on disk.

        Args:
            request_id: The record's unique 32-byte request id.
            leaf: Its Merkle leaf (the encoding documented in IAccessLog).
            record: The record's fields as JSON, kept to rebuild proofs and reports.

        Raises:
            sqlite3.IntegrityError: If the request id or leaf is already in the outbox.
        """
        with self._transaction() as db:
            db.execute(
                "INSERT INTO records (request_id, leaf, record) VALUES (?, ?, ?)",
                (request_id, leaf, record),
            )

    def seal(self) -> Batch | None:
        """Put every record not yet in a batch into a new batch, or return None if none.

        The batch id is ``keccak256(root ‖ first sequence number)``, unique per outbox.
        """
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, leaf FROM records WHERE batch_id IS NULL ORDER BY seq"
            ).fetchall()
            if not rows:
                return None
            tree = MerkleTree.of([leaf for _, leaf in rows])
            batch_id = keccak(tree.root + rows[0][0].to_bytes(32, "big"))
            db.execute(
                "INSERT INTO batches (batch_id, root, count) VALUES (?, ?, ?)",
                (batch_id, tree.root, len(rows)),
            )
            db.executemany(
                "UPDATE records SET batch_id = ? WHERE seq = ?",
                [(batch_id, seq) for seq, _ in rows],
            )
        return Batch(batch_id, tree.root, len(rows), None)

    def mark_anchored(self, batch_id: bytes, tx_hash: bytes) -> None:
        """Record that ``batch_id`` was anchored by transaction ``tx_hash``."""
        with self._transaction() as db:
            db.execute("UPDATE batches SET tx_hash = ? WHERE batch_id = ?", (tx_hash, batch_id))

    def unanchored(self) -> list[Batch]:
        """Sealed batches whose anchor transaction is not yet recorded, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT batch_id, root, count FROM batches WHERE tx_hash IS NULL ORDER BY rowid"
            ).fetchall()
        return [Batch(b, r, c, None) for b, r, c in rows]

    def pending_count(self) -> int:
        """Records not yet anchored (unbatched, or in a batch without a transaction)."""
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM records LEFT JOIN batches USING (batch_id) "
                "WHERE batches.tx_hash IS NULL"
            ).fetchone()
        return int(n)

    def batch_of(self, request_id: bytes) -> tuple[Batch, list[bytes]] | None:
        """Return the batch holding ``request_id`` and the record's Merkle proof, if sealed."""
        with self._lock:
            row = self._db.execute(
                "SELECT r.leaf, b.batch_id, b.root, b.count, b.tx_hash FROM records r "
                "JOIN batches b USING (batch_id) WHERE r.request_id = ?",
                (request_id,),
            ).fetchone()
            if row is None:
                return None
            leaf, batch_id, root, count, tx_hash = row
            leaves = [
                r[0]
                for r in self._db.execute(
                    "SELECT leaf FROM records WHERE batch_id = ?", (batch_id,)
                ).fetchall()
            ]
        return Batch(batch_id, root, count, tx_hash), MerkleTree.of(leaves).proof(leaf)

    def entries(self) -> list[OutboxEntry]:
        """Every record in the outbox, in insertion order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT request_id, leaf, record, batch_id FROM records ORDER BY seq"
            ).fetchall()
        return [OutboxEntry(*row) for row in rows]


AnchorFn = Callable[[Batch], bytes]
"""Sends ``anchorBatch`` for a batch and returns the mined transaction's hash."""
FindAnchorFn = Callable[[bytes], bytes | None]
"""Returns the hash of the transaction that anchored ``batch_id`` on chain, if any."""


def flush(outbox: Outbox, anchor: AnchorFn, find_anchor: FindAnchorFn) -> list[Batch]:
    """Anchor everything pending in ``outbox`` exactly once.

    First finishes batches sealed before a crash (checking the chain before resending), then
    seals and anchors the records added since.

    Returns:
        The batches anchored by this call, with their transaction hashes.
    """
    done: list[Batch] = []
    for batch in outbox.unanchored():
        tx_hash = find_anchor(batch.batch_id) or anchor(batch)
        outbox.mark_anchored(batch.batch_id, tx_hash)
        done.append(Batch(batch.batch_id, batch.root, batch.count, tx_hash))
    sealed = outbox.seal()
    if sealed is not None:
        tx_hash = anchor(sealed)
        outbox.mark_anchored(sealed.batch_id, tx_hash)
        done.append(Batch(sealed.batch_id, sealed.root, sealed.count, tx_hash))
    return done
