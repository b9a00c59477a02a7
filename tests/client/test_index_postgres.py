"""The audit index on a real PostgreSQL: the SQLite behaviours, shared writers, faults, bad URLs.

One PostgreSQL cluster for the module (``postgres_server.py``), a fresh database for each test,
and the Anvil chain and deployment of ``test_index.py``. The behaviours ``test_index.py`` checks
on SQLite run here unchanged, on PostgreSQL. Then what only a shared server brings: several
gateways' indexers writing one index at once, two processes creating it at once, the server going
away in the middle of a sync, and URLs that cannot work.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import postgres_server
import psycopg
import pytest
import test_index as on_sqlite
from eth_utils import event_abi_to_log_topic
from orthanc_server import free_port
from postgres_server import PostgresServer
from release_samples import CT_STUDY, Actors, deploy_suite
from sqlalchemy import Connection, Engine, create_engine, event, select
from test_index import World

from imaging_consent import errors
from imaging_consent.contracts.artifacts import load_artifact
from imaging_consent.contracts.deployment import Suite
from imaging_consent.index.schema import accesses, anchors, consent_events, deployment, study_events
from imaging_consent.index.sync import Indexer, deployment_of

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Fixtures used here by name: test_index's chain and deployment, and a PostgreSQL for the module.
anvil, setup, world = on_sqlite.anvil, on_sqlite.setup, on_sqlite.world
postgres = postgres_server.postgres

_numbers = itertools.count()


@dataclass
class PgWorld(World):
    """``test_index``'s world, with its index in a PostgreSQL database of its own."""

    server: PostgresServer
    database: str

    @property
    def url(self) -> str:
        return self.server.url(self.database)

    def indexer(self, name: str = "", **kwargs: Any) -> Indexer:
        """The test's index (``name`` picks a SQLite file in ``test_index``; one database here)."""
        opened = Indexer.open(self.suite, self.url, **kwargs)
        assert opened.index.dialect == "postgresql"
        return opened


@pytest.fixture
def pg_world(world: World, postgres: PostgresServer) -> Iterator[PgWorld]:
    database = f"index_{next(_numbers)}"
    postgres.create_database(database)
    yield PgWorld(
        world.chain, world.suite, world.people, world.store, world.work, postgres, database
    )
    if not postgres.is_running():  # a fault test failed before restarting it
        postgres.start()


def _indexed_topics() -> list[str]:
    """The topics of the events an index keeps (not the contracts' role and admin events)."""
    keeps = {
        "ConsentRegistry": lambda e: "patient" in e,
        "StudyRegistry": lambda e: "studyKey" in e,
        "AccessLog": lambda e: "gateway" in e and "site" not in e,
    }
    return [
        "0x" + event_abi_to_log_topic(item).hex()
        for contract, keep in keeps.items()
        for item in load_artifact(contract).abi
        if item.get("type") == "event" and keep({i["name"] for i in item["inputs"]})
    ]


def chain_positions(of: World, last: int) -> list[tuple[int, int]]:
    """(block, log index) of each event an index keeps, as the chain holds them up to ``last``."""
    suite = of.suite
    logs = of.chain.rpc(
        "eth_getLogs",
        {
            "address": [suite.consent.address, suite.studies.address, suite.access_log.address],
            "topics": [_indexed_topics()],
            "fromBlock": hex(suite.manifest.block_number),
            "toBlock": hex(last),
        },
    )
    return sorted((int(log["blockNumber"], 16), int(log["logIndex"], 16)) for log in logs)


def stored(url: str) -> tuple[int, list[tuple[int, int]]]:
    """The cursor, and (block, log index) of each stored event, read through a new engine."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            cursor = int(conn.execute(select(deployment.c.cursor)).scalar_one())
            rows: list[tuple[int, int]] = []
            for table in (consent_events, study_events, anchors):
                rows += [
                    (b, i) for b, i in conn.execute(select(table.c.block_number, table.c.log_index))
                ]
            on_chain = select(accesses.c.block_number, accesses.c.log_index).where(
                accesses.c.seq == 0
            )
            rows += [(b, i) for b, i in conn.execute(on_chain)]
    finally:
        engine.dispose()
    return cursor, sorted((int(b), int(i)) for b, i in rows)


# --- what test_index.py checks on SQLite, on PostgreSQL ------------------------------------------

SAME_AS_SQLITE = [
    on_sqlite.test_sync_indexes_grants_accesses_and_studies,
    on_sqlite.test_index_answers_like_the_chain,
    on_sqlite.test_confirmations_hold_back_the_newest_blocks,
    on_sqlite.test_batched_records_enter_with_proofs_once_anchored,
    on_sqlite.test_reorg_that_removes_an_access_record_is_undone,
    on_sqlite.test_reorg_that_replaces_a_revocation_shows_the_grant_again,
    on_sqlite.test_break_glass_webhook_retries_then_delivers_once,
    on_sqlite.test_break_glass_webhook_down_keeps_it_pending_until_it_is_back,
    on_sqlite.test_follower_keeps_the_index_up_and_imports_the_gateways_batches,
    on_sqlite.test_progress_is_reported_page_by_page,
]


@pytest.mark.parametrize(
    "behaviour", SAME_AS_SQLITE, ids=[t.__name__.removeprefix("test_") for t in SAME_AS_SQLITE]
)
def test_same_behaviour_as_on_sqlite(pg_world: PgWorld, behaviour: Callable[[World], None]) -> None:
    behaviour(pg_world)


def test_index_of_another_deployment_is_refused(pg_world: PgWorld) -> None:
    with pg_world.indexer() as indexer:
        indexer.sync()
    other = deploy_suite(pg_world.chain, pg_world.people)

    with pytest.raises(errors.IndexMismatchError, match="follows chain") as refused:
        Indexer.open(other, pg_world.url)
    assert pg_world.server.password not in str(refused.value)


# --- several gateways sharing one index ----------------------------------------------------------


def test_two_indexers_share_one_index_while_blocks_arrive(pg_world: PgWorld) -> None:
    people = pg_world.people
    gateway = pg_world.gateway(confirmations=0)
    indexers = [pg_world.indexer(confirmations=0, page=2) for _ in range(2)]
    done = threading.Event()
    failures: list[BaseException] = []

    def keep_syncing(indexer: Indexer) -> None:
        try:
            while not done.is_set():
                indexer.sync()
            indexer.sync()
        except BaseException as exc:  # the main thread reports it
            failures.append(exc)

    threads = [threading.Thread(target=keep_syncing, args=(i,)) for i in indexers]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(12):
            gateway.release(CT_STUDY, people.requester.address, "TREAT")
            if round_ % 4 == 0:
                with pytest.raises(errors.ConsentDeniedError):
                    gateway.release(CT_STUDY, people.stranger.address, "TREAT")
            pg_world.chain.mine(2)
    finally:
        done.set()
        for thread in threads:
            thread.join(120)
        gateway.close()
    latest = int(pg_world.chain.rpc("eth_blockNumber"), 16)
    cursors = [i.index.deployment().cursor for i in indexers]
    for indexer in indexers:
        indexer.close()

    assert failures == []
    cursor, rows = stored(pg_world.url)
    assert cursors == [latest, latest] and cursor == latest
    assert rows == chain_positions(pg_world, latest)  # every event, each exactly once
    assert len(rows) >= 15


OPENERS, ROUNDS = 4, 5
_OPENER = """
import json, sys
from imaging_consent.index.store import AuditIndex, Deployment
fields = json.loads(sys.argv[1])
follows = Deployment(
    **{k: bytes.fromhex(v) if k.endswith("hash") else v for k, v in fields.items()}
)
print("ready", flush=True)
for line in sys.stdin:
    try:
        with AuditIndex.open(line.strip(), follows) as index:
            print(index.deployment().cursor, flush=True)
    except Exception as exc:
        print(type(exc).__name__, str(exc).replace("\\n", " "), flush=True)
"""


@dataclass
class Openers:
    """Processes that each open the index at a URL written to them (as gateways starting up)."""

    processes: list[subprocess.Popen[str]]

    def send(self, url: str) -> None:
        """Have every process open ``url`` now."""
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(url + "\n")
            process.stdin.flush()

    def answers(self) -> list[str]:
        """What each process answered (the cursor it opened at, or the error it met)."""
        lines = []
        for process in self.processes:
            assert process.stdout is not None
            lines.append(process.stdout.readline().strip())
        return lines


@pytest.fixture(scope="module")
def openers(setup: tuple[Suite, Actors]) -> Iterator[Openers]:
    follows = deployment_of(setup[0])
    fields = {k: v.hex() if isinstance(v, bytes) else v for k, v in asdict(follows).items()}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, json.dumps(fields)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(OPENERS)
    ]
    try:
        assert Openers(processes).answers() == ["ready"] * OPENERS
        yield Openers(processes)
    finally:
        for process in processes:
            process.communicate(timeout=60)


def test_processes_creating_one_index_at_once_all_succeed(
    pg_world: PgWorld, openers: Openers
) -> None:
    cursor = str(deployment_of(pg_world.suite).cursor)
    for round_ in range(ROUNDS):  # fresh databases, each opened by every process at once
        openers.send(pg_world.server.create_database(f"{pg_world.database}_new_{round_}"))
        assert openers.answers() == [cursor] * OPENERS


def test_processes_claiming_a_migrated_index_at_once_all_succeed(
    pg_world: PgWorld, openers: Openers
) -> None:
    # A migrated index that no deployment has claimed yet (the moment after a first migration).
    with pg_world.indexer():
        pass
    server = pg_world.server
    with server.connect(pg_world.database) as held, server.connect(pg_world.database) as watch:
        held.execute("DELETE FROM deployment")
        with held.transaction():  # every opener waits here, then all go at once
            held.execute("LOCK TABLE deployment IN ACCESS EXCLUSIVE MODE")
            openers.send(pg_world.url)
            while _waiting(watch) < OPENERS:
                time.sleep(0.02)

    assert openers.answers() == [str(deployment_of(pg_world.suite).cursor)] * OPENERS


def _waiting(conn: psycopg.Connection[Any]) -> int:
    """How many other sessions of ``conn``'s database wait for a lock (``conn`` autocommits)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


# --- a server that goes away mid-sync ------------------------------------------------------------


Progress = Callable[[int, int, int], None]
Fault = Callable[[PostgresServer, Indexer], tuple[Progress | None, Callable[[], None]]]


def _stop_between_pages(
    server: PostgresServer, _indexer: Indexer
) -> tuple[Progress, Callable[[], None]]:
    """Stop the server once a page has brought the stored events to 3 (between transactions)."""
    stopped = threading.Event()

    def after_page(_done: int, _todo: int, events: int) -> None:
        if events >= 3 and not stopped.is_set():
            stopped.set()
            server.stop()

    return after_page, lambda: None


def _stop_inside_a_page(
    server: PostgresServer, indexer: Indexer
) -> tuple[None, Callable[[], None]]:
    """Stop the server as the third page's access record is inserted (inside its transaction)."""
    engine: Engine = indexer.index._engine
    inserts = itertools.count(1)

    def before(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO accesses") and next(inserts) == 3:
            server.stop()

    event.listen(engine, "before_cursor_execute", before)
    return None, lambda: event.remove(engine, "before_cursor_execute", before)


@pytest.mark.parametrize(
    "fault", [_stop_between_pages, _stop_inside_a_page], ids=["between", "inside"]
)
def test_server_gone_mid_sync_is_typed_leaves_whole_pages_and_resumes(
    pg_world: PgWorld, fault: Fault
) -> None:
    people, server = pg_world.people, pg_world.server
    gateway = pg_world.gateway(confirmations=0)
    for _ in range(6):  # one access record per block
        gateway.release(CT_STUDY, people.requester.address, "TREAT")
    gateway.close()
    latest = int(pg_world.chain.rpc("eth_blockNumber"), 16)

    with pg_world.indexer(confirmations=0, page=1) as indexer:
        progress, undo = fault(server, indexer)
        try:
            with pytest.raises(errors.AuditIndexError) as gone:
                indexer.sync(progress=progress)
        finally:
            undo()
            server.start()
        cursor, rows = stored(pg_world.url)
        resumed = indexer.sync()

    assert server.password not in str(gone.value) and "***" in str(gone.value)
    assert pg_world.url.replace(server.password, "***") in str(gone.value)
    assert latest > cursor >= pg_world.suite.manifest.block_number
    assert rows == chain_positions(pg_world, cursor)  # nothing half-written, nothing beyond
    assert resumed.first == cursor + 1 and resumed.cursor == latest
    assert stored(pg_world.url) == (latest, chain_positions(pg_world, latest))


# --- URLs that cannot work -----------------------------------------------------------------------


def _bad_urls(server: PostgresServer, database: str) -> dict[str, tuple[str, str]]:
    port = server.port
    return {
        "wrong password": (
            server.url(database, password="not-the-password"),
            "password authentication failed",
        ),
        "unreachable port": (
            f"postgresql+psycopg://app:not-the-password@127.0.0.1:{free_port()}/{database}",
            "refused|failed",
        ),
        "no such database": (server.url("no_such_database"), "does not exist"),
        "port not a number": (
            f"postgresql+psycopg://app:not-the-password@127.0.0.1:{port}x/{database}",
            "malformed",
        ),
        "no such driver": (
            f"postgresql+nosuchdriver://app:not-the-password@127.0.0.1:{port}/{database}",
            "malformed",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong password",
        "unreachable port",
        "no such database",
        "port not a number",
        "no such driver",
    ],
)
def test_unusable_url_is_a_clear_error_without_the_password(pg_world: PgWorld, case: str) -> None:
    url, reason = _bad_urls(pg_world.server, pg_world.database)[case]

    with pytest.raises(errors.AuditIndexError, match=reason) as refused:
        Indexer.open(pg_world.suite, url)

    message = str(refused.value)
    assert "not-the-password" not in message and pg_world.server.password not in message
    assert "audit index" in message
    if "malformed" not in reason:
        shown = url.replace("not-the-password", "***").replace(pg_world.server.password, "***")
        assert shown in message
