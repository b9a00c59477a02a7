"""The audit index's database: open (migrate, check whose it is), write a page, roll back, query.

One database follows one deployment on one chain. It is a SQLite file by default (created 0600)
or any SQLAlchemy URL, PostgreSQL included (``postgresql+psycopg://...``), so that several
gateways can share one index. Opening it runs the Alembic migrations, then refuses an index of
another chain or deployment (:class:`~imaging_consent.errors.IndexMismatchError`) and a
database that is not an index at all (:class:`~imaging_consent.errors.AuditIndexError`).

Every page of synced events is one transaction with its cursor: a sync stopped at any moment
leaves either the whole page or none of it. A page is written only if the cursor is still where
the writer read it, so two syncers on one shared index never write a page twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from eth_typing import ChecksumAddress
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    create_engine,
    delete,
    event,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, OperationalError
from sqlalchemy.sql.elements import ColumnElement
from web3.types import EventData

from imaging_consent.access_log.history import AccessEvent, AccessKind
from imaging_consent.consent.history import GrantHistory, history_from_logs
from imaging_consent.consent.purposes import Purpose
from imaging_consent.contracts.artifacts import load_artifact
from imaging_consent.errors import AuditIndexError, IndexMismatchError
from imaging_consent.index.schema import (
    accesses,
    anchors,
    blocks,
    consent_events,
    deliveries,
    deployment,
    study_events,
)

__all__ = ["AuditIndex", "Deployment", "PageRows", "redact_db_url"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_PURPOSES = {p.value for p in Purpose}
# A fixed key for PostgreSQL's advisory lock around migrating and claiming a new index (two
# gateways opening it at once).
_MIGRATION_LOCK = 0x1C0_1D3C


def redact_db_url(url: str) -> str:
    """``url`` with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<malformed database URL>"


@dataclass(frozen=True, slots=True)
class Deployment:
    """Whose events an index holds, and how far it has got.

    Attributes:
        chain_id: The chain.
        consent_registry: ConsentRegistry's address.
        study_registry: StudyRegistry's address.
        access_log: AccessLog's address.
        from_block: The deployment block, where indexing starts.
        from_block_hash: That block's hash: a chain reset to the same id and addresses differs.
        cursor: The last block indexed (``from_block - 1`` before the first sync).
        cursor_hash: That block's hash, checked against the chain before each sync.
    """

    chain_id: int
    consent_registry: ChecksumAddress
    study_registry: ChecksumAddress
    access_log: ChecksumAddress
    from_block: int
    from_block_hash: bytes
    cursor: int
    cursor_hash: bytes

    def same_deployment(self, other: Deployment) -> bool:
        """Whether ``other`` names the same chain, contracts and deployment block."""
        return (
            self.chain_id,
            self.consent_registry,
            self.study_registry,
            self.access_log,
            self.from_block,
            self.from_block_hash,
        ) == (
            other.chain_id,
            other.consent_registry,
            other.study_registry,
            other.access_log,
            other.from_block,
            other.from_block_hash,
        )

    def describe(self) -> str:
        """The deployment in words, for error messages (addresses only, no personal data)."""
        return (
            f"chain {self.chain_id}, AccessLog {self.access_log}, deployed in block "
            f"{self.from_block} (hash 0x{self.from_block_hash.hex()[:16]}...)"
        )


@dataclass(slots=True)
class PageRows:
    """The rows one synced page adds, written in one transaction with the new cursor."""

    consent: list[dict[str, Any]]
    study: list[dict[str, Any]]
    anchor: list[dict[str, Any]]
    access: list[dict[str, Any]]
    blocks: dict[int, tuple[bytes, int]]

    @classmethod
    def empty(cls) -> PageRows:
        """A page with nothing in it yet."""
        return cls([], [], [], [], {})


class CursorMovedError(AuditIndexError):
    """Another writer advanced or rolled back the cursor since this one read it."""


def _private_sqlite(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(str(parsed.database))
    if path.exists():
        return
    if not path.parent.is_dir():
        raise AuditIndexError(f"cannot create the audit index: no folder {path.parent}")
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class AuditIndex:
    """An open audit index. Use :meth:`open`; close it (or use it as a context manager)."""

    def __init__(self, engine: Engine, url: str, follows: Deployment) -> None:
        self._engine = engine
        self.url = redact_db_url(url)
        self._deployment = follows

    # --- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, follows: Deployment) -> AuditIndex:
        """Open (creating and migrating if need be) the index at ``url`` for ``follows``.

        Args:
            url: A SQLAlchemy database URL (``sqlite:///path``, ``postgresql+psycopg://...``).
            follows: The deployment the caller reads (cursor fields are ignored); a new index
                starts at its ``from_block``.

        Raises:
            AuditIndexError: If the URL is malformed, the database cannot be reached, is
                corrupt, holds tables that are not an index, or was made by a newer version.
            IndexMismatchError: If the index follows another chain or deployment.
        """
        shown = redact_db_url(url)
        try:
            _private_sqlite(url)
            # A PostgreSQL host that never answers fails after 10 s rather than hanging.
            options = {"connect_timeout": 10} if url.startswith("postgresql") else {}
            engine = create_engine(url, pool_pre_ping=True, connect_args=options)
        except (ArgumentError, ValueError, ImportError) as exc:
            raise AuditIndexError(f"malformed audit index URL {shown}: {exc}") from exc
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            _migrate(engine, shown)
            stored = cls._claim(engine, follows, shown)
        except DatabaseError as exc:
            engine.dispose()
            reason = str(getattr(exc, "orig", exc)).splitlines()[0]
            raise AuditIndexError(f"cannot use the audit index {shown}: {reason}") from exc
        except AuditIndexError:
            engine.dispose()
            raise
        return cls(engine, url, stored)

    @staticmethod
    def _claim(engine: Engine, follows: Deployment, shown: str) -> Deployment:
        with engine.begin() as conn:
            _one_opener_at_a_time(conn)
            row = conn.execute(select(deployment)).mappings().first()
            if row is None:
                conn.execute(
                    deployment.insert().values(
                        id=1,
                        chain_id=follows.chain_id,
                        consent_registry=follows.consent_registry,
                        study_registry=follows.study_registry,
                        access_log=follows.access_log,
                        from_block=follows.from_block,
                        from_block_hash=follows.from_block_hash,
                        cursor=follows.cursor,
                        cursor_hash=follows.cursor_hash,
                    )
                )
                return follows
        stored = Deployment(**{k: v for k, v in row.items() if k != "id"})
        if not stored.same_deployment(follows):
            raise IndexMismatchError(
                f"the audit index {shown} follows {stored.describe()}, not this deployment "
                f"({follows.describe()}); use another index for it"
            )
        return stored

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> AuditIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return str(self._engine.dialect.name)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise AuditIndexError(f"cannot read the audit index {self.url}: {_why(exc)}") from exc

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """One transaction; a lost server is an :class:`AuditIndexError` (nothing is written)."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise AuditIndexError(f"cannot write the audit index {self.url}: {_why(exc)}") from exc

    # --- the cursor and its blocks -------------------------------------------------------------

    def deployment(self) -> Deployment:
        """The deployment row as stored now (its cursor included)."""
        with self._reading() as conn:
            row = conn.execute(select(deployment)).mappings().one()
        self._deployment = Deployment(**{k: v for k, v in row.items() if k != "id"})
        return self._deployment

    def block_hashes(self, below: int, limit: int) -> list[tuple[int, bytes]]:
        """Stored block hashes below ``below``, newest first (at most ``limit``)."""
        with self._reading() as conn:
            rows = conn.execute(
                select(blocks.c.number, blocks.c.hash)
                .where(blocks.c.number < below)
                .order_by(blocks.c.number.desc())
                .limit(limit)
            ).all()
        return [(int(n), bytes(h)) for n, h in rows]

    def write_page(self, expected: int, last: int, last_hash: bytes, rows: PageRows) -> None:
        """Store one page and move the cursor from ``expected`` to ``last``, atomically.

        Raises:
            CursorMovedError: If the cursor is no longer at ``expected`` (another writer).
            AuditIndexError: If the database cannot be reached (the page is not written).
        """
        with self._writing() as conn:
            self._lock_cursor(conn, expected)
            for table, items in (
                (consent_events, rows.consent),
                (study_events, rows.study),
                (anchors, rows.anchor),
                (accesses, rows.access),
            ):
                if items:
                    conn.execute(table.insert(), items)
            fresh = [{"number": n, "hash": h, "timestamp": t} for n, (h, t) in rows.blocks.items()]
            if fresh:
                known = set(
                    conn.scalars(
                        select(blocks.c.number).where(blocks.c.number.in_(list(rows.blocks)))
                    )
                )
                fresh = [b for b in fresh if b["number"] not in known]
                if fresh:
                    conn.execute(blocks.insert(), fresh)
            conn.execute(update(deployment).values(cursor=last, cursor_hash=last_hash))

    def roll_back(self, expected: int, ancestor: int, ancestor_hash: bytes) -> int:
        """Delete everything above block ``ancestor`` and put the cursor there, atomically.

        Returns:
            How many access records were removed.

        Raises:
            CursorMovedError: If the cursor is no longer at ``expected``.
            AuditIndexError: If the database cannot be reached (nothing is deleted).
        """
        with self._writing() as conn:
            self._lock_cursor(conn, expected)
            removed = conn.execute(delete(accesses).where(accesses.c.block_number > ancestor))
            for table in (consent_events, study_events, anchors):
                conn.execute(delete(table).where(table.c.block_number > ancestor))
            conn.execute(delete(blocks).where(blocks.c.number > ancestor))
            conn.execute(update(deployment).values(cursor=ancestor, cursor_hash=ancestor_hash))
        return int(removed.rowcount or 0)

    @staticmethod
    def _lock_cursor(conn: Connection, expected: int) -> None:
        current = conn.execute(select(deployment.c.cursor).with_for_update()).scalar_one()
        if int(current) != expected:
            raise CursorMovedError(f"the cursor moved to {current} (expected {expected})")

    # --- batched records -----------------------------------------------------------------------

    def anchor_of(self, batch_id: bytes) -> dict[str, Any] | None:
        """The indexed ``BatchAnchored`` event of ``batch_id`` (the first, if it repeats)."""
        with self._reading() as conn:
            row = (
                conn.execute(
                    select(anchors)
                    .where(anchors.c.batch_id == batch_id)
                    .order_by(anchors.c.block_number, anchors.c.log_index)
                )
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    def has_batch(self, batch_id: bytes) -> bool:
        """Whether the records of ``batch_id`` are already in the index."""
        with self._reading() as conn:
            found = conn.execute(
                select(accesses.c.id).where(accesses.c.batch_id == batch_id).limit(1)
            ).first()
        return found is not None

    def add_batch(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Store a proven batch's records in one transaction.

        Returns:
            False if another writer stored the same batch first (nothing is written twice).
        """
        try:
            with self._writing() as conn:
                conn.execute(accesses.insert(), list(rows))
        except IntegrityError:
            return False
        return True

    # --- queries -------------------------------------------------------------------------------

    def accesses(
        self,
        *,
        patient: str | None = None,
        study_key: bytes | None = None,
        accessor: str | None = None,
        gateway: str | None = None,
        kinds: Iterable[AccessKind] | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
    ) -> tuple[AccessEvent, ...]:
        """Access records (released, refused, break-glass; on chain and batched), oldest first.

        Args:
            patient: Only this patient's.
            study_key: Only this study's.
            accessor: Only those asked for by this account (grantee or clinician).
            gateway: Only those this gateway recorded.
            kinds: Only these kinds (``granted``, ``denied``, ``break_glass``).
            since: Only at or after this unix time (the decision time).
            until: Only before this unix time.
            limit: At most this many (the newest ones when limited).
        """
        where: list[ColumnElement[bool]] = []
        for column, value in (
            (accesses.c.patient, patient),
            (accesses.c.study_key, study_key),
            (accesses.c.accessor, accessor),
            (accesses.c.gateway, gateway),
        ):
            if value is not None:
                where.append(column == value)
        if kinds is not None:
            where.append(accesses.c.kind.in_(list(kinds)))
        if since is not None:
            where.append(accesses.c.timestamp >= since)
        if until is not None:
            where.append(accesses.c.timestamp < until)
        order = (accesses.c.timestamp, accesses.c.block_number, accesses.c.log_index)
        query = select(accesses).where(and_(True, *where))
        if limit is not None:
            query = query.order_by(*(c.desc() for c in order)).limit(limit)
        else:
            query = query.order_by(*order)
        with self._reading() as conn:
            rows = conn.execute(query).mappings().all()
        found = [_access_event(row) for row in rows]
        if limit is not None:
            found.reverse()
        return tuple(found)

    def grant_history(self, patient: str) -> GrantHistory:
        """``patient``'s grants as stored at the cursor, and every consent event before it."""
        with self._reading() as conn:
            rows = (
                conn.execute(
                    select(consent_events, blocks.c.timestamp)
                    .join(blocks, blocks.c.number == consent_events.c.block_number)
                    .where(
                        consent_events.c.patient == patient,
                        consent_events.c.name.in_(_HISTORY_EVENTS),
                    )
                    .order_by(consent_events.c.block_number, consent_events.c.log_index)
                )
                .mappings()
                .all()
            )
        logs = [_as_log(row, _CONSENT_TYPES) for row in rows]
        stamps = {int(r["block_number"]): int(r["timestamp"]) for r in rows}
        return history_from_logs(logs, stamps)

    def studies_of(self, patient: str) -> dict[bytes, ChecksumAddress]:
        """The study keys registered for ``patient`` now (corrections and retirements applied),
        each with the site that registered it."""
        with self._reading() as conn:
            rows = conn.execute(
                select(study_events.c.name, study_events.c.study_key, study_events.c.args)
                .where(
                    study_events.c.study_key.in_(
                        select(study_events.c.study_key).where(study_events.c.patient == patient)
                    )
                )
                .order_by(study_events.c.block_number, study_events.c.log_index)
            ).all()
        held: dict[bytes, ChecksumAddress] = {}
        for name, key, args_text in rows:
            if name == "ContentUpdated":
                continue
            args = json.loads(args_text)
            owner = args.get("newPatient") or args.get("patient")
            key = bytes(key)
            if name == "StudyRetired" or owner != patient:
                held.pop(key, None)
            elif name in ("StudyRegistered", "StudyCorrected"):
                held[key] = args["site"]
        return held

    def block_time(self, number: int) -> int | None:
        """The stored time of block ``number``, if the index has it."""
        with self._reading() as conn:
            stamp = conn.execute(
                select(blocks.c.timestamp).where(blocks.c.number == number)
            ).scalar_one_or_none()
        return None if stamp is None else int(stamp)

    def count(self, table: str = "accesses") -> int:
        """How many rows ``table`` holds (for status and benchmarks)."""
        tables: dict[str, Table] = {
            t.name: t for t in (accesses, consent_events, study_events, anchors, blocks)
        }
        with self._reading() as conn:
            return int(
                conn.execute(select(text("count(*)")).select_from(tables[table])).scalar_one()
            )

    # --- break-glass deliveries ----------------------------------------------------------------

    def delivered(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` were delivered already."""
        wanted = list(keys)
        if not wanted:
            return set()
        with self._reading() as conn:
            return set(
                conn.scalars(
                    select(deliveries.c.key).where(
                        deliveries.c.key.in_(wanted), deliveries.c.delivered_at.is_not(None)
                    )
                )
            )

    def note_delivery(self, key: str, *, delivered_at: int | None, error: str | None) -> None:
        """Record one delivery attempt of ``key`` (delivered, or the error it met)."""
        with self._writing() as conn:
            attempts = conn.execute(
                select(deliveries.c.attempts).where(deliveries.c.key == key).with_for_update()
            ).scalar_one_or_none()
            values = {"delivered_at": delivered_at, "last_error": (error or "")[:200] or None}
            if attempts is None:
                conn.execute(deliveries.insert().values(key=key, attempts=1, **values))
            else:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.key == key)
                    .values(attempts=int(attempts) + 1, **values)
                )


def _why(exc: OperationalError) -> str:
    """The database driver's reason, first line only."""
    return str(getattr(exc, "orig", exc)).splitlines()[0]


def _one_opener_at_a_time(conn: Connection) -> None:
    """On PostgreSQL, hold the opening lock until ``conn``'s transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})


def _migrate(engine: Engine, shown: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.begin() as conn:
        _one_opener_at_a_time(conn)
        names = set(inspect(conn).get_table_names())
        if names and "alembic_version" not in names:
            raise AuditIndexError(
                f"{shown} is not an audit index: it holds other tables "
                f"({', '.join(sorted(names)[:5])})"
            )
        current = MigrationContext.configure(conn).get_current_revision()
        known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
        if current is not None and current not in known:
            raise AuditIndexError(
                f"{shown} was made by a newer version of imaging-consent (revision {current})"
            )
        if current != head:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")


def _abi_types(contract: str) -> dict[str, dict[str, str]]:
    return {
        item["name"]: {i["name"]: i["type"] for i in item["inputs"]}
        for item in load_artifact(contract).abi
        if item.get("type") == "event"
    }


_CONSENT_TYPES = _abi_types("ConsentRegistry")
# The ConsentRegistry events a grant history replays (the others are kept for audits).
_HISTORY_EVENTS = (
    "ConsentGranted",
    "ConsentRevoked",
    "DelegateSet",
    "ExclusionSet",
    "DelegateActed",
    "SignatureUsed",
)


def args_json(args: Mapping[str, Any]) -> str:
    """Decoded event arguments as JSON text (bytes as 0x-hex)."""
    return json.dumps(
        {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in args.items()},
        separators=(",", ":"),
    )


def _as_log(row: RowMapping, types: Mapping[str, Mapping[str, str]]) -> EventData:
    args = json.loads(row["args"])
    kinds = types[row["name"]]
    for name, value in args.items():
        if kinds.get(name, "").startswith("bytes") and isinstance(value, str):
            args[name] = bytes.fromhex(value[2:])
    log = {
        "event": row["name"],
        "args": args,
        "blockNumber": int(row["block_number"]),
        "logIndex": int(row["log_index"]),
        "transactionHash": bytes(row["tx_hash"]),
    }
    return cast(EventData, log)


def _access_event(row: RowMapping) -> AccessEvent:
    code = int(row["purpose"])
    proof = bytes(row["proof"] or b"")
    return AccessEvent(
        kind=row["kind"],
        study_key=bytes(row["study_key"]),
        patient=row["patient"],
        accessor=row["accessor"],
        purpose=Purpose(code) if code in _PURPOSES else None,
        purpose_code=code,
        request_id=bytes(row["request_id"]),
        gateway=row["gateway"],
        block_number=int(row["block_number"]),
        tx_hash="0x" + bytes(row["tx_hash"]).hex(),
        log_index=int(row["log_index"]),
        timestamp=int(row["timestamp"]),
        identified=bool(row["identified"]),
        reason_commitment=(
            bytes(row["reason_commitment"]) if row["reason_commitment"] is not None else None
        ),
        batched=row["batch_id"] is not None,
        batch_id=bytes(row["batch_id"]) if row["batch_id"] is not None else None,
        batch_root=bytes(row["batch_root"]) if row["batch_root"] is not None else None,
        proof=tuple(proof[i : i + 32] for i in range(0, len(proof), 32)),
        reason=row["reason"],
    )
