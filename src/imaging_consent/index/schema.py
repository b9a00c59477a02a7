"""The audit index's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Migrations (``migrations/versions``) create and change them; this module is what the code
queries. Addresses are checksummed text, keys and hashes 32 raw bytes, times unix seconds.

- ``deployment``: one row: which chain and contracts the index follows, and its cursor (the
  last block indexed, and that block's hash).
- ``blocks``: the hash and time of every block that holds an indexed event, and of every
  cursor the index has stood on: what a reorganisation is detected and undone with.
- ``consent_events`` / ``study_events`` / ``anchors``: ConsentRegistry, StudyRegistry and
  AccessLog ``BatchAnchored`` events, decoded; their arguments as JSON.
- ``accesses``: every access record: ``AccessGranted``, ``AccessDenied`` and
  ``BreakGlassAccess`` events (``seq`` 0), and each batched record under its anchor's
  ``BatchAnchored`` (``seq`` 1...), with its inclusion proof.
- ``deliveries``: break-glass notifications delivered to the webhook (by idempotency key).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "accesses",
    "anchors",
    "blocks",
    "consent_events",
    "deliveries",
    "deployment",
    "metadata",
    "study_events",
]

metadata = MetaData()

deployment = Table(
    "deployment",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("chain_id", BigInteger, nullable=False),
    Column("consent_registry", String(42), nullable=False),
    Column("study_registry", String(42), nullable=False),
    Column("access_log", String(42), nullable=False),
    Column("from_block", BigInteger, nullable=False),
    Column("from_block_hash", LargeBinary(32), nullable=False),
    Column("cursor", BigInteger, nullable=False),
    Column("cursor_hash", LargeBinary(32), nullable=False),
)

blocks = Table(
    "blocks",
    metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)


def _event_columns() -> list[Column[object]]:
    return [
        Column("block_number", BigInteger, primary_key=True, autoincrement=False),
        Column("log_index", Integer, primary_key=True, autoincrement=False),
        Column("tx_hash", LargeBinary(32), nullable=False),
        Column("name", String(32), nullable=False),
    ]


consent_events = Table(
    "consent_events",
    metadata,
    *_event_columns(),
    Column("patient", String(42), nullable=False),
    Column("counterpart", String(42)),
    Column("args", Text, nullable=False),
    Index("consent_events_patient", "patient", "block_number"),
    Index("consent_events_counterpart", "counterpart", "block_number"),
)

study_events = Table(
    "study_events",
    metadata,
    *_event_columns(),
    Column("study_key", LargeBinary(32), nullable=False),
    Column("patient", String(42), nullable=False),
    Column("args", Text, nullable=False),
    Index("study_events_patient", "patient", "block_number"),
    Index("study_events_study", "study_key", "block_number"),
)

anchors = Table(
    "anchors",
    metadata,
    *_event_columns(),
    Column("root", LargeBinary(32), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("batch_id", LargeBinary(32), nullable=False),
    Column("gateway", String(42), nullable=False),
    Index("anchors_batch", "batch_id"),
)

accesses = Table(
    "accesses",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("block_number", BigInteger, nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("tx_hash", LargeBinary(32), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("study_key", LargeBinary(32), nullable=False),
    Column("patient", String(42), nullable=False),
    Column("accessor", String(42), nullable=False),
    Column("purpose", SmallInteger, nullable=False),
    Column("identified", Boolean, nullable=False),
    Column("request_id", LargeBinary(32), nullable=False),
    Column("gateway", String(42), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("reason_commitment", LargeBinary(32)),
    Column("batch_id", LargeBinary(32)),
    Column("batch_root", LargeBinary(32)),
    Column("proof", LargeBinary),
    Column("reason", String(64)),
    UniqueConstraint("block_number", "log_index", "seq", name="accesses_position"),
    Index("accesses_patient", "patient", "timestamp"),
    Index("accesses_study", "study_key", "timestamp"),
    Index("accesses_accessor", "accessor", "timestamp"),
    Index("accesses_gateway", "gateway", "timestamp"),
    Index("accesses_batch", "batch_id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("delivered_at", BigInteger),
    Column("last_error", String(200)),
)
