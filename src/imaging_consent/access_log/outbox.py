"""A durable local outbox for every access record not yet final on chain.

The gateway writes each record here *before* it returns any image bytes or sends anything: a
release or refusal to be anchored in a batch (``route = batch``), or, in sync mode, a record
sent at once with ``recordAccess`` (``route = direct``) that stays here until that transaction
is final. The outbox is SQLite in WAL mode with ``synchronous=FULL``, so a record that
:meth:`Outbox.add` returned for is on disk and survives a crash. The database, its ``-wal`` and
``-shm`` files and the flush lock file are created readable by their owner only (0600).

What is stored beside each record: its Merkle leaf, its JSON, a refusal reason (an error class
name, never personal data), and every transaction sent for it or for its batch (hash, nonce and
signed bytes), written *before* that transaction is broadcast. A record or batch counts as final
only once a transaction carrying it is the configured number of blocks deep.

Anchoring a batch (the recorder drives it, under :meth:`Outbox.flush_lock`):

1. :meth:`Outbox.seal` assigns every unbatched ``batch`` record to a new batch and stores the
   batch's id, root and count in one transaction (nothing is sent yet).
2. The recorder sends ``anchorBatch(root, count, batchId)``; each signed transaction is stored
   with :meth:`Outbox.add_sent` before it is broadcast; :meth:`Outbox.set_batch_tx` stores the
   one that was mined, and whether it is final.
3. A batch that is not final is looked up by its stored transactions (and by ``BatchAnchored``
   with its ``batchId``) before anything is sent again.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_hash.auto import keccak

from imaging_consent.errors import ReleaseError
from imaging_consent.provenance.merkle import MerkleTree

__all__ = ["Batch", "Outbox", "OutboxEntry", "SentTx"]

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
CREATE TABLE IF NOT EXISTS sent (
    tx_hash     BLOB PRIMARY KEY,
    nonce       INTEGER NOT NULL,
    raw         BLOB NOT NULL,
    batch_id    BLOB,
    request_id  BLOB
);
CREATE INDEX IF NOT EXISTS records_batch ON records(batch_id);
CREATE INDEX IF NOT EXISTS sent_batch ON sent(batch_id);
CREATE INDEX IF NOT EXISTS sent_request ON sent(request_id);
"""
# Columns added since the first schema (an older outbox is upgraded in place on open).
_ADDED_COLUMNS = {
    "records": (
        ("reason", "TEXT"),
        ("route", "TEXT NOT NULL DEFAULT 'batch'"),
        ("tx_hash", "BLOB"),
        ("final", "INTEGER NOT NULL DEFAULT 0"),
        ("created", "REAL NOT NULL DEFAULT 0"),
    ),
    "batches": (("final", "INTEGER NOT NULL DEFAULT 0"),),
}
_REASON = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_BATCH, _DIRECT = "batch", "direct"
_PRIVATE = 0o600


@dataclass(frozen=True, slots=True)
class Batch:
    """A sealed batch of access records.

    Attributes:
        batch_id: ``keccak256(root ‖ first sequence number)``.
        root: The Merkle root of its records' leaves.
        count: Its number of records.
        tx_hash: The mined ``anchorBatch`` transaction, once one is seen mined.
        final: True once that transaction is the configured number of blocks deep.
    """

    batch_id: bytes
    root: bytes
    count: int
    tx_hash: bytes | None
    final: bool = False


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One access record as held in the outbox.

    Attributes:
        request_id: The record's request id.
        leaf: Its Merkle leaf (the encoding AccessLog.verifyRecord checks).
        record: Its fields as JSON.
        batch_id: Its batch, once sealed.
        reason: For a refusal, the error class name that caused it; None for a release.
        direct: True while it is to be recorded by its own ``recordAccess`` (sync mode).
        tx_hash: The mined ``recordAccess`` that carries it (direct records).
        final: True once that transaction is final (direct records).
        created: Unix time it was added.
    """

    request_id: bytes
    leaf: bytes
    record: str
    batch_id: bytes | None
    reason: str | None = None
    direct: bool = False
    tx_hash: bytes | None = None
    final: bool = False
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class SentTx:
    """A transaction signed for a batch or a direct record, stored before it was broadcast."""

    tx_hash: bytes
    nonce: int
    raw: bytes


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing, and make it 0600 if it is not."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _PRIVATE)
    try:
        os.fchmod(fd, _PRIVATE)
    finally:
        os.close(fd)


class Outbox:
    """Durable, crash-safe store of access records (SQLite, WAL, fsync on commit).

    Args:
        path: The database file; its folder is created if needed.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        _create_private(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._upgrade()
        for suffix in ("-wal", "-shm"):  # SQLite gives them the database's mode; make sure
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.chmod(_PRIVATE)

    def _upgrade(self) -> None:
        with self._transaction() as db:
            for table, columns in _ADDED_COLUMNS.items():
                have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns:
                    if name not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

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

    @contextmanager
    def flush_lock(self) -> Iterator[None]:
        """Hold the outbox's flush lock (``<path>.lock``, ``flock``) across processes.

        Blocks until no other process or thread holds it. Released when the block ends, or by
        the kernel when the holding process dies.
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, _PRIVATE)
        try:
            os.fchmod(fd, _PRIVATE)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # --- records -------------------------------------------------------------------------------

    def add(
        self,
        request_id: bytes,
        leaf: bytes,
        record: str,
        *,
        reason: str | None = None,
        direct: bool = False,
    ) -> None:
        """Store one record durably. Returns only once it is on disk.

        Args:
            request_id: The record's unique 32-byte request id.
            leaf: Its Merkle leaf (the encoding documented in IAccessLog).
            record: The record's fields as JSON, kept to rebuild proofs and reports.
            reason: For a refusal, the error class name (letters, digits, ``_``; at most 64).
            direct: True if it is about to be sent with its own ``recordAccess`` (then it is
                not put in a batch unless that transaction is lost: :meth:`to_batch`).

        Raises:
            ValueError: If ``reason`` is not a class-name-like word.
            sqlite3.IntegrityError: If the request id or leaf is already in the outbox.
        """
        _check_reason(reason)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO records (request_id, leaf, record, reason, route, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (request_id, leaf, record, reason, _DIRECT if direct else _BATCH, time.time()),
            )

    def amend(self, request_id: bytes, leaf: bytes, record: str, reason: str) -> None:
        """Rewrite a direct record that ended as a refusal (the chain denied, or sending failed).

        Raises:
            ValueError: If ``reason`` is not a class-name-like word.
            ReleaseError: If the record is not a direct record still outside any batch.
        """
        _check_reason(reason)
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE records SET leaf = ?, record = ?, reason = ? "
                "WHERE request_id = ? AND route = ? AND batch_id IS NULL",
                (leaf, record, reason, request_id, _DIRECT),
            ).rowcount
        if changed != 1:
            raise ReleaseError(f"request 0x{request_id.hex()[:12]} is not a direct outbox record")

    def add_sent(
        self,
        tx_hash: bytes,
        nonce: int,
        raw: bytes,
        *,
        batch_id: bytes | None = None,
        request_id: bytes | None = None,
    ) -> None:
        """Store a signed transaction for a batch or a direct record, before it is broadcast.

        Raises:
            ReleaseError: If it names neither or both, or a direct record that has since been
                moved to a batch (then the transaction must not be sent).
        """
        if (batch_id is None) == (request_id is None):
            raise ReleaseError("a sent transaction is for one batch or one record")
        with self._transaction() as db:
            if request_id is not None:
                (route,) = db.execute(
                    "SELECT route FROM records WHERE request_id = ?", (request_id,)
                ).fetchone() or (None,)
                if route != _DIRECT:
                    raise ReleaseError(
                        f"request 0x{request_id.hex()[:12]} is no longer to be sent on its own"
                    )
            db.execute(
                "INSERT OR REPLACE INTO sent (tx_hash, nonce, raw, batch_id, request_id) "
                "VALUES (?, ?, ?, ?, ?)",
                (tx_hash, nonce, raw, batch_id, request_id),
            )

    def sent(
        self, *, batch_id: bytes | None = None, request_id: bytes | None = None
    ) -> list[SentTx]:
        """The transactions stored for a batch or a direct record, newest first."""
        column, key = ("batch_id", batch_id) if batch_id is not None else ("request_id", request_id)
        with self._lock:
            rows = self._db.execute(
                f"SELECT tx_hash, nonce, raw FROM sent WHERE {column} = ? ORDER BY rowid DESC",
                (key,),
            ).fetchall()
        return [SentTx(*row) for row in rows]

    def open_direct(self) -> list[OutboxEntry]:
        """Direct records not final yet, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM records WHERE route = ? AND final = 0 ORDER BY seq",
                (_DIRECT,),
            ).fetchall()
        return [_entry(row) for row in rows]

    def set_record_tx(self, request_id: bytes, tx_hash: bytes, *, final: bool) -> None:
        """Store the mined ``recordAccess`` of a direct record, and whether it is final."""
        with self._transaction() as db:
            db.execute(
                "UPDATE records SET tx_hash = ?, final = ? WHERE request_id = ? AND route = ?",
                (tx_hash, int(final), request_id, _DIRECT),
            )

    def to_batch(self, request_id: bytes) -> None:
        """Move a direct record whose transaction is lost (or was never sent) to the next batch."""
        with self._transaction() as db:
            db.execute(
                "UPDATE records SET route = ?, tx_hash = NULL, final = 0 "
                "WHERE request_id = ? AND route = ?",
                (_BATCH, request_id, _DIRECT),
            )

    # --- batches -------------------------------------------------------------------------------

    def seal(self) -> Batch | None:
        """Put every batch record not yet in a batch into a new batch, or return None if none.

        The batch id is ``keccak256(root ‖ first sequence number)``, unique per outbox.
        """
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, leaf FROM records WHERE batch_id IS NULL AND route = ? ORDER BY seq",
                (_BATCH,),
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

    def set_batch_tx(self, batch_id: bytes, tx_hash: bytes | None, *, final: bool) -> None:
        """Store the mined anchor of ``batch_id`` (None: none is mined now) and its finality."""
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET tx_hash = ?, final = ? WHERE batch_id = ?",
                (tx_hash, int(final), batch_id),
            )

    def open_batches(self) -> list[Batch]:
        """Sealed batches not final yet, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT batch_id, root, count, tx_hash FROM batches WHERE final = 0 ORDER BY rowid"
            ).fetchall()
        return [Batch(b, r, c, t) for b, r, c, t in rows]

    def anchored_batches(self) -> list[tuple[Batch, list[OutboxEntry]]]:
        """Batches whose anchor is final, oldest first, each with its records (by sequence).

        What an audit index imports: it checks each batch against its ``BatchAnchored`` event
        and proves every record against the anchored root before listing it.
        """
        with self._lock:
            batches = self._db.execute(
                "SELECT batch_id, root, count, tx_hash FROM batches WHERE final = 1 ORDER BY rowid"
            ).fetchall()
            found = []
            for batch_id, root, count, tx_hash in batches:
                rows = self._db.execute(
                    f"SELECT {_ENTRY_COLUMNS} FROM records WHERE batch_id = ? ORDER BY seq",
                    (batch_id,),
                ).fetchall()
                found.append(
                    (Batch(batch_id, root, count, tx_hash, True), [_entry(r) for r in rows])
                )
        return found

    def pending_count(self) -> int:
        """Records not final yet (waiting for a batch, an anchor, or confirmations)."""
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM records LEFT JOIN batches USING (batch_id) "
                "WHERE (records.route = ? AND records.final = 0) "
                "OR (records.route = ? AND COALESCE(batches.final, 0) = 0)",
                (_DIRECT, _BATCH),
            ).fetchone()
        return int(n)

    def batch_of(self, request_id: bytes) -> tuple[Batch, list[bytes]] | None:
        """Return the batch holding ``request_id`` and the record's Merkle proof, if sealed."""
        with self._lock:
            row = self._db.execute(
                "SELECT r.leaf, b.batch_id, b.root, b.count, b.tx_hash, b.final FROM records r "
                "JOIN batches b USING (batch_id) WHERE r.request_id = ?",
                (request_id,),
            ).fetchone()
            if row is None:
                return None
            leaf, batch_id, root, count, tx_hash, final = row
            leaves = [
                r[0]
                for r in self._db.execute(
                    "SELECT leaf FROM records WHERE batch_id = ? ORDER BY seq", (batch_id,)
                ).fetchall()
            ]
        return Batch(batch_id, root, count, tx_hash, bool(final)), MerkleTree.of(leaves).proof(leaf)

    def entries(self) -> list[OutboxEntry]:
        """Every record in the outbox, in insertion order."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_ENTRY_COLUMNS} FROM records ORDER BY seq").fetchall()
        return [_entry(row) for row in rows]


_ENTRY_COLUMNS = "request_id, leaf, record, batch_id, reason, route, tx_hash, final, created"


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    request_id, leaf, record, batch_id, reason, route, tx_hash, final, created = row
    direct = route == _DIRECT
    return OutboxEntry(
        request_id, leaf, record, batch_id, reason, direct, tx_hash, bool(final), created
    )


def _check_reason(reason: str | None) -> None:
    if reason is not None and not _REASON.fullmatch(reason):
        raise ValueError("a refusal reason is an error class name (letters, digits, _)")
