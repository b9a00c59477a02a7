"""The first audit index: deployment and cursor, blocks, events, access records, deliveries.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ADDRESS = sa.String(42)
_HASH = sa.LargeBinary(32)


def _event(name: str, *columns: sa.Column[object]) -> None:
    op.create_table(
        name,
        sa.Column("block_number", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("log_index", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tx_hash", _HASH, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        *columns,
    )


def upgrade() -> None:
    op.create_table(
        "deployment",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("consent_registry", _ADDRESS, nullable=False),
        sa.Column("study_registry", _ADDRESS, nullable=False),
        sa.Column("access_log", _ADDRESS, nullable=False),
        sa.Column("from_block", sa.BigInteger, nullable=False),
        sa.Column("from_block_hash", _HASH, nullable=False),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("cursor_hash", _HASH, nullable=False),
    )
    op.create_table(
        "blocks",
        sa.Column("number", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", _HASH, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
    )
    _event(
        "consent_events",
        sa.Column("patient", _ADDRESS, nullable=False),
        sa.Column("counterpart", _ADDRESS),
        sa.Column("args", sa.Text, nullable=False),
    )
    op.create_index("consent_events_patient", "consent_events", ["patient", "block_number"])
    op.create_index("consent_events_counterpart", "consent_events", ["counterpart", "block_number"])
    _event(
        "study_events",
        sa.Column("study_key", _HASH, nullable=False),
        sa.Column("patient", _ADDRESS, nullable=False),
        sa.Column("args", sa.Text, nullable=False),
    )
    op.create_index("study_events_patient", "study_events", ["patient", "block_number"])
    op.create_index("study_events_study", "study_events", ["study_key", "block_number"])
    _event(
        "anchors",
        sa.Column("root", _HASH, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("batch_id", _HASH, nullable=False),
        sa.Column("gateway", _ADDRESS, nullable=False),
    )
    op.create_index("anchors_batch", "anchors", ["batch_id"])
    op.create_table(
        "accesses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("block_number", sa.BigInteger, nullable=False),
        sa.Column("log_index", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("tx_hash", _HASH, nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("study_key", _HASH, nullable=False),
        sa.Column("patient", _ADDRESS, nullable=False),
        sa.Column("accessor", _ADDRESS, nullable=False),
        sa.Column("purpose", sa.SmallInteger, nullable=False),
        sa.Column("identified", sa.Boolean, nullable=False),
        sa.Column("request_id", _HASH, nullable=False),
        sa.Column("gateway", _ADDRESS, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("reason_commitment", _HASH),
        sa.Column("batch_id", _HASH),
        sa.Column("batch_root", _HASH),
        sa.Column("proof", sa.LargeBinary),
        sa.Column("reason", sa.String(64)),
        sa.UniqueConstraint("block_number", "log_index", "seq", name="accesses_position"),
    )
    for name, column in (
        ("patient", "patient"),
        ("study", "study_key"),
        ("accessor", "accessor"),
        ("gateway", "gateway"),
    ):
        op.create_index(f"accesses_{name}", "accesses", [column, "timestamp"])
    op.create_index("accesses_batch", "accesses", ["batch_id"])
    op.create_table(
        "deliveries",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("delivered_at", sa.BigInteger),
        sa.Column("last_error", sa.String(200)),
    )


def downgrade() -> None:
    for table in (
        "deliveries",
        "accesses",
        "anchors",
        "study_events",
        "consent_events",
        "blocks",
        "deployment",
    ):
        op.drop_table(table)
