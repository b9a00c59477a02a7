"""Section 6: the audit index: indexing throughput, a patient's query at 10^4 to 10^6 records, and
the index against today's direct read of the chain.

1. **Throughput.** On a bulk Anvil (:mod:`bench.bulk`: node-signed transactions, about a thousand
   per block), the site registers one study per patient, each patient (an impersonated account)
   grants the requester and a second grantee and revokes the second, and the gateway records 76
   releases and 20 refusals per patient, in shuffled order: 100 events per patient, and one heavy
   patient holding a tenth of all access records. A first :meth:`Indexer.sync` (confirmations 0)
   indexes them into a fresh SQLite file, and into a fresh PostgreSQL database when a server can
   be started (``tests/client/postgres_server.py``): events per second end to end, and where the
   time goes (timers around the log pages, the block headers, decoding with routing into rows,
   and the page transactions).
2. **Query.** A SQLite index is filled straight with SQLAlchemy bulk inserts in the schema's
   shape (100 access records and two grants per patient, 40 events per block) up to each size,
   and one patient's audit, :meth:`AuditIndex.accesses` and :meth:`AuditIndex.grant_history`
   (what :meth:`Indexer.trail` reads), is timed for random patients: p50 and p95, and the
   file's bytes per access record.
3. **Against the chain.** On the chain of 1., one patient's trail from the index
   (:meth:`Indexer.trail`) and straight from the chain (:func:`trail_from_chain`), for a typical
   and for the heavy patient, and the first sync's time over one chain read, in the same run.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from eth_utils import keccak, to_checksum_address
from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from web3.providers import JSONBaseProvider
from web3.types import RPCEndpoint

from bench.bulk import BulkAnvil, BulkSender, check_all_mined, selector, word
from bench.common import Deployed, deploy_all
from bench.instrument import Timers
from bench.stats import summarize
from imaging_consent.chain import LocalChain
from imaging_consent.consent import Purpose
from imaging_consent.index import sync as sync_module
from imaging_consent.index import trail_from_chain
from imaging_consent.index.schema import accesses, anchors, blocks, consent_events, study_events
from imaging_consent.index.store import AuditIndex, Deployment, args_json
from imaging_consent.index.sync import Indexer

__all__ = ["run"]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent

REGISTER = selector("registerStudy(bytes32,address,bytes32,uint32)")
GRANT = selector("grant(address,bytes32,uint32,bool,uint48,uint48)")
REVOKE = selector("revoke(address,bytes32)")
RECORD_ACCESS = selector("recordAccess(bytes32,address,uint8,bytes32)")
#: Releases and refusals of a typical patient (with a study, two grants and a revocation: 100).
GRANTED, DENIED = 76, 20
#: Events of a patient besides the access records: the study, two grants, one revocation.
CONSENT_AND_STUDY = 4
#: Transactions per mined block while the chain is built.
PER_BLOCK = 1_000
#: Blocks per ``eth_getLogs`` page of the first sync: about 10,000 logs an answer here, the cap
#: many log providers set.
PAGE_BLOCKS = 10
#: Access records per patient and per block in the query index (part 2).
QUERY_PER_PATIENT, QUERY_PER_BLOCK = 100, 40
POSTGRES_SKIPPED = "skipped: no PostgreSQL"


def _address(label: str) -> str:
    return to_checksum_address(bytes(keccak(text=label))[:20])


def _key(label: str) -> bytes:
    return bytes(keccak(text=label))


OTHER_GRANTEE = _address("index bench other grantee")
STRANGER = _address("index bench stranger")
TREAT_MASK = Purpose.TREAT.bit


# --- 1. the chain -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Built:
    """The bulk chain's deployment and what the index should hold once synced."""

    deployed: Deployed
    typical: str
    heavy: str
    heavy_records: int
    events: int
    setup_s: float
    blocks: int


def _send_as(chain: LocalChain, txs: list[tuple[str, str, bytes]]) -> None:
    """Send ``(from, to, calldata)`` from impersonated accounts (fresh: nonces from 0), mined
    ``PER_BLOCK`` to a block.

    Raises:
        RuntimeError: If the node refuses one.
    """
    provider = cast(JSONBaseProvider, chain.session.w3.provider)
    nonces: dict[str, int] = {}
    chain.rpc("evm_setAutomine", False)
    try:
        for start in range(0, len(txs), PER_BLOCK):
            requests = []
            for sender, to, data in txs[start : start + PER_BLOCK]:
                nonce = nonces.get(sender, 0)
                nonces[sender] = nonce + 1
                tx = {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(200_000)}
                requests.append((RPCEndpoint("eth_sendTransaction"), [{**tx, "nonce": hex(nonce)}]))
            for answer in provider.make_batch_request(requests):
                if "error" in answer:
                    raise RuntimeError(f"node refused a patient's transaction: {answer['error']}")
            chain.rpc("evm_mine")
    finally:
        chain.rpc("evm_setAutomine", True)


def _build(chain: LocalChain, events: int) -> _Built:
    """Deploy, then make about ``events`` indexable events (see the module docstring)."""
    started = time.perf_counter()
    deployed = deploy_all(chain)
    suite, people = deployed.suite, deployed.actors
    heavy_records = max(GRANTED + DENIED, events // 10)
    count = max(1, (events - heavy_records - CONSENT_AND_STUDY) // (GRANTED + DENIED + 4))
    patients = [_address(f"index bench patient {i}") for i in range(count + 1)]
    studies = [_key(f"index bench study {i}") for i in range(count + 1)]
    chain.rpc("anvil_autoImpersonateAccount", True)
    provider = cast(JSONBaseProvider, chain.session.w3.provider)
    provider.make_batch_request(
        [(RPCEndpoint("anvil_setBalance"), [p, hex(10**20)]) for p in patients]
    )
    site = BulkSender(chain, people.site.address, gas=200_000)
    site_hashes = site.send(
        suite.studies.address,
        (
            REGISTER + word(study) + word(patient) + word(_key(f"root {i}")) + word(1)
            for i, (study, patient) in enumerate(zip(studies, patients, strict=True))
        ),
        batch=PER_BLOCK,
    )
    check_all_mined(site, site_hashes)
    consent = suite.consent.address
    terms = word(TREAT_MASK) + word(True) + word(0) + word(0)
    grants = [
        (patient, consent, GRANT + word(grantee) + word(study) + terms)
        for grantee in (people.requester.address, OTHER_GRANTEE)
        for patient, study in zip(patients, studies, strict=True)
    ]
    grants += [
        (patient, consent, REVOKE + word(OTHER_GRANTEE) + word(study))
        for patient, study in zip(patients, studies, strict=True)
    ]
    _send_as(chain, grants)
    records = _records(people.requester.address, studies, heavy_records)
    gateway = BulkSender(chain, people.gateway.address, gas=200_000)
    hashes = gateway.send(suite.access_log.address, records, batch=PER_BLOCK)
    check_all_mined(gateway, hashes)
    total = len(patients) * CONSENT_AND_STUDY + len(hashes)
    return _Built(
        deployed=deployed,
        typical=patients[0],
        heavy=patients[-1],
        heavy_records=heavy_records,
        events=total,
        setup_s=round(time.perf_counter() - started, 2),
        blocks=int(chain.rpc("eth_blockNumber"), 16),
    )


def _records(requester: str, studies: list[bytes], heavy: int) -> list[bytes]:
    """``recordAccess`` calldata: 76 releases and 20 refusals per study, ``heavy`` records for
    the last study (the same mix), all shuffled."""
    plan: list[tuple[bytes, str]] = []
    for study in studies[:-1]:
        plan += [(study, requester)] * GRANTED + [(study, STRANGER)] * DENIED
    refused = heavy * DENIED // (GRANTED + DENIED)
    plan += [(studies[-1], requester)] * (heavy - refused) + [(studies[-1], STRANGER)] * refused
    random.Random(15).shuffle(plan)
    return [
        RECORD_ACCESS
        + word(study)
        + word(accessor)
        + word(Purpose.TREAT.value)
        + word(_key(f"index bench request {i}"))
        for i, (study, accessor) in enumerate(plan)
    ]


# --- 1. the first sync --------------------------------------------------------------------------


@contextmanager
def _sync_timers() -> Iterator[Timers]:
    """Time the parts of every sync inside the block: ``fetch_logs`` (each page's
    ``eth_getLogs``, JSON included), ``fetch_headers`` (the block headers of a page, one batch),
    ``decode`` (decoding and routing into rows: ``Indexer._rows`` less its headers) and ``store``
    (each page's transaction)."""
    timers = Timers()
    pages, headers = sync_module.log_pages, sync_module._headers
    rows, write = Indexer._rows, AuditIndex.write_page

    def timed_pages(*args: Any, **kwargs: Any) -> Iterator[Any]:
        found = pages(*args, **kwargs)
        while True:
            start = time.perf_counter()
            try:
                page = next(found)
            except StopIteration:
                return
            finally:
                timers.seconds["fetch_logs"] = (
                    timers.seconds.get("fetch_logs", 0.0) + time.perf_counter() - start
                )
            yield page

    setattr(sync_module, "log_pages", timed_pages)  # noqa: B010 (module attribute on purpose)
    setattr(sync_module, "_headers", timers.wrap("fetch_headers", headers))  # noqa: B010
    setattr(Indexer, "_rows", timers.wrap("decode_and_headers", rows))  # noqa: B010
    setattr(AuditIndex, "write_page", timers.wrap("store", write))  # noqa: B010
    try:
        yield timers
    finally:
        setattr(sync_module, "log_pages", pages)  # noqa: B010
        setattr(sync_module, "_headers", headers)  # noqa: B010
        setattr(Indexer, "_rows", rows)  # noqa: B010
        setattr(AuditIndex, "write_page", write)  # noqa: B010


def _first_sync(built: _Built, url: str) -> tuple[Indexer, dict[str, Any]]:
    """Open a fresh index at ``url`` and sync it once; return it (open) and the figures.

    Raises:
        RuntimeError: If the index does not hold exactly the events the chain was given.
    """
    start = time.perf_counter()
    indexer = Indexer.open(built.deployed.suite, url, confirmations=0, page=PAGE_BLOCKS)
    opened = time.perf_counter() - start
    pages: list[tuple[float, int]] = []
    with _sync_timers() as timers:
        start = time.perf_counter()
        result = indexer.sync(
            progress=lambda _done, _todo, stored: pages.append((time.perf_counter(), stored))
        )
        seconds = time.perf_counter() - start
    if result.events != built.events:
        indexer.close()
        raise RuntimeError(f"the first sync stored {result.events} events, not {built.events}")
    parts = dict(timers.seconds)
    parts["decode"] = parts.pop("decode_and_headers") - parts.get("fetch_headers", 0.0)
    parts["other"] = seconds - sum(parts.values())
    return indexer, {
        "seconds": seconds,
        "open_s": opened,
        "events": result.events,
        "pages": len(pages),
        "page_rates": _page_rates(start, pages),
        "parts_s": parts,
    }


def _page_rates(start: float, pages: list[tuple[float, int]]) -> list[float]:
    """Events per second of each page that held events (fetched, decoded and stored)."""
    rates, before, stored = [], start, 0
    for at, total in pages:
        if total > stored:
            rates.append((total - stored) / (at - before))
        before, stored = at, total
    return rates


def _summarize_syncs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs (seconds, each part, events per second = events / median
    seconds), every run's events per second, and the median over every page of every run."""
    events = runs[0]["events"]
    seconds = statistics.median(r["seconds"] for r in runs)
    parts = {k: statistics.median(r["parts_s"][k] for r in runs) for k in runs[0]["parts_s"]}
    pages = [rate for r in runs for rate in r["page_rates"]]
    return {
        "runs": len(runs),
        "events": events,
        "pages": runs[0]["pages"],
        "page_events_per_s": {
            "n": len(pages),
            "p50": round(statistics.median(pages), 1),
            "min": round(min(pages), 1),
            "max": round(max(pages), 1),
        },
        "seconds": round(seconds, 3),
        "open_s": round(statistics.median(r["open_s"] for r in runs), 3),
        "events_per_s": round(events / seconds, 1),
        "events_per_s_each_run": [round(events / r["seconds"], 1) for r in runs],
        "parts_s": {k: round(v, 3) for k, v in parts.items()},
        "parts_share": {k: round(v / seconds, 3) for k, v in parts.items()},
        "us_per_event": {k: round(v * 1e6 / events, 1) for k, v in parts.items()},
    }


def _postgres_starter() -> Callable[[Path], AbstractContextManager[str]] | str:
    """The tests' PostgreSQL starter ``running_postgres(folder)``, or why it cannot be used."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return POSTGRES_SKIPPED
    tests = str(ROOT / "tests" / "client")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    try:
        import postgres_server  # type: ignore[import-not-found]
    except ImportError:
        return f"{POSTGRES_SKIPPED} starter (tests/client/postgres_server.py)"
    return cast(Callable[[Path], AbstractContextManager[str]], postgres_server.running_postgres)


def _throughput(
    built: _Built, work: Path, runs: int, pg_runs: int
) -> tuple[dict[str, Any], Indexer]:
    """First syncs into SQLite and PostgreSQL, taking turns (a burst of load on the shared
    machine lands on both alike); returns the figures and the last SQLite index, open."""
    starter = _postgres_starter()
    if isinstance(starter, str):
        pg_runs = 0
    # The server's own folder under the system's temporary folder: it runs as another user,
    # which must reach it (``work`` may sit in a folder only this user can enter).
    folder = Path(tempfile.mkdtemp(prefix="imaging-consent-bench-pg-"))
    try:
        with starter(folder) if pg_runs else nullcontext("") as pg_url:
            syncs, pg_syncs, indexer = _take_turns(built, work, runs, pg_runs, pg_url)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out: dict[str, Any] = {"sqlite": _summarize_syncs(syncs)}
    out["sqlite"]["file_bytes"] = syncs[-1]["file_bytes"]
    out["sqlite"]["bytes_per_event"] = round(syncs[-1]["file_bytes"] / built.events, 1)
    if isinstance(starter, str):
        out["postgresql"] = {"skipped": starter}
    elif pg_syncs:
        sizes = pg_syncs[-1]["sizes"]
        out["postgresql"] = {**_summarize_syncs(pg_syncs), **sizes}
        out["postgresql"]["bytes_per_event"] = round(sizes["index_tables_bytes"] / built.events, 1)
    return out, indexer


def _take_turns(
    built: _Built, work: Path, runs: int, pg_runs: int, pg_url: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Indexer]:
    syncs: list[dict[str, Any]] = []
    pg_syncs: list[dict[str, Any]] = []
    indexer: Indexer | None = None
    for run in range(max(runs, pg_runs)):
        if run < runs:
            if indexer is not None:
                indexer.close()
            path = work / f"index-{run}.sqlite3"
            indexer, figures = _first_sync(built, f"sqlite:///{path}")
            figures["file_bytes"] = _sqlite_bytes(path)
            syncs.append(figures)
        if run < pg_runs:
            fresh = _fresh_database(pg_url, f"index_bench_{run}")
            pg_indexer, figures = _first_sync(built, fresh)
            pg_indexer.close()
            figures["sizes"] = _postgres_bytes(fresh)
            pg_syncs.append(figures)
    if indexer is None:
        raise ValueError("at least one SQLite sync is needed")
    return syncs, pg_syncs, indexer


def _fresh_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``; return its URL."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


def _postgres_bytes(url: str) -> dict[str, int]:
    """The index tables' size on disk (with their indexes and TOAST), and the database's."""
    engine = create_engine(url)
    names = [t.name for t in (accesses, consent_events, study_events, anchors, blocks)]
    try:
        with engine.connect() as conn:
            database = conn.execute(text("SELECT pg_database_size(current_database())"))
            tables = {
                name: int(
                    conn.execute(
                        text("SELECT pg_total_relation_size(:name)"), {"name": name}
                    ).scalar_one()
                )
                for name in names
            }
            return {
                "database_bytes": int(database.scalar_one()),
                "index_tables_bytes": sum(tables.values()),
                "accesses_table_bytes": tables["accesses"],
            }
    finally:
        engine.dispose()


def _sqlite_bytes(path: Path) -> int:
    """The SQLite file's size once its write-ahead log is folded in."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        engine.dispose()
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


# --- 3. against the chain -----------------------------------------------------------------------


def _timed(function: Callable[[], Any], runs: int) -> tuple[dict[str, Any], Any]:
    durations, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        durations.append(time.perf_counter() - start)
    return summarize(durations), result


def _against_chain(
    built: _Built, indexer: Indexer, sync_s: float, index_runs: int, chain_runs: int
) -> dict[str, Any]:
    """One patient's trail from the index and from the chain, and the first sync's time over
    one chain read.

    Raises:
        RuntimeError: If the index and the chain disagree on a patient's records.
    """
    suite = built.deployed.suite
    out: dict[str, Any] = {"first_sync_s": round(sync_s, 3)}
    for name, patient, records in (
        ("typical", built.typical, GRANTED + DENIED),
        ("heavy", built.heavy, built.heavy_records),
    ):
        indexed, from_index = _timed(lambda p=patient: indexer.trail(p), index_runs)
        runs = chain_runs if name == "typical" else max(1, chain_runs // 3)
        chained, from_chain = _timed(lambda p=patient: trail_from_chain(suite, p), runs)
        if not len(from_index.accesses) == len(from_chain.accesses) == records:
            raise RuntimeError(f"the {name} patient's trails differ from the expected records")
        if len(from_index.consents) != len(from_chain.consents):
            raise RuntimeError(f"the {name} patient's consent events differ")
        out[name] = {
            "access_records": records,
            "consent_events": len(from_index.consents),
            "index_trail": indexed,
            "chain_trail": chained,
            "chain_over_index": round(chained["p50_ms"] / indexed["p50_ms"], 1),
            "first_sync_over_chain_trail": round(sync_s * 1000 / chained["p50_ms"], 2),
        }
    out["meaning"] = (
        "chain_over_index: how many times faster one patient's trail is from the index; "
        "first_sync_over_chain_trail: the first sync of every event costs this many direct "
        "reads of the chain for that patient"
    )
    return out


# --- 2. the query at 10^4..10^6 records ---------------------------------------------------------


_DEPLOYMENT = Deployment(
    chain_id=31337,
    consent_registry=to_checksum_address("0x" + "c0" * 20),
    study_registry=to_checksum_address("0x" + "57" * 20),
    access_log=to_checksum_address("0x" + "ac" * 20),
    from_block=1,
    from_block_hash=b"\1" * 32,
    cursor=0,
    cursor_hash=b"\0" * 32,
)
_REQUESTERS = [_address(f"index bench requester {i}") for i in range(50)]
_GATEWAYS = [_address(f"index bench gateway {i}") for i in range(5)]


def _query_patient(i: int) -> str:
    return _address(f"index bench query patient {i}")


_ACCESS_COLUMNS = (
    "block_number",
    "log_index",
    "seq",
    "tx_hash",
    "kind",
    "study_key",
    "patient",
    "accessor",
    "purpose",
    "identified",
    "request_id",
    "gateway",
    "timestamp",
)
_GRANT_COLUMNS = ("block_number", "log_index", "tx_hash", "name", "patient", "counterpart", "args")
_BLOCK_COLUMNS = ("number", "hash", "timestamp")


def _bulk_insert(conn: Connection, table: Table, columns: tuple[str, ...], rows: list[Any]) -> None:
    """One executemany of the schema's INSERT for ``columns`` (rows as tuples, in that order)."""
    statement = table.insert().compile(dialect=conn.dialect, column_keys=list(columns))
    for start in range(0, len(rows), 50_000):
        conn.exec_driver_sql(str(statement), rows[start : start + 50_000])


def _fill(engine: Engine, first: int, last: int, rng: random.Random) -> None:
    """Add patients ``first..last-1``: 100 access records and two grants each, interleaved
    (40 events per block, 12 s per block), as an indexer would have stored them."""
    patients = [_query_patient(i) for i in range(first, last)]
    studies = {p: rng.randbytes(32) for p in patients}
    plan = [p for p in patients for _ in range(QUERY_PER_PATIENT)]
    rng.shuffle(plan)
    base = first * QUERY_PER_PATIENT // QUERY_PER_BLOCK + 10
    stamps: dict[int, int] = {}
    rows = []
    for j, patient in enumerate(plan):
        block = base + j // QUERY_PER_BLOCK
        stamps[block] = 1_700_000_000 + 12 * block
        granted = rng.random() < 0.8
        hashes = rng.randbytes(64)
        rows.append(
            (
                block,
                j % QUERY_PER_BLOCK,
                0,
                hashes[:32],
                "granted" if granted else "denied",
                studies[patient],
                patient,
                _REQUESTERS[j % len(_REQUESTERS)],
                Purpose.TREAT.value,
                granted,
                hashes[32:],
                _GATEWAYS[j % len(_GATEWAYS)],
                stamps[block],
            )
        )
    grants = []
    for k, patient in enumerate(patients):
        for g in range(2):
            block = base + rng.randrange(len(plan) // QUERY_PER_BLOCK)
            stamps[block] = 1_700_000_000 + 12 * block
            grantee = _REQUESTERS[(k + g) % len(_REQUESTERS)]
            args = {
                "patient": patient,
                "grantee": grantee,
                "scope": studies[patient],
                "purposes": TREAT_MASK,
                "identified": True,
                "notBefore": 0,
                "expiresAt": 0,
            }
            grants.append(
                (
                    block,
                    QUERY_PER_BLOCK + k * 2 + g,
                    rng.randbytes(32),
                    "ConsentGranted",
                    patient,
                    grantee,
                    args_json(args),
                )
            )
    headers = [(n, keccak(n.to_bytes(8, "big")), t) for n, t in stamps.items()]
    with engine.begin() as conn:
        _bulk_insert(conn, accesses, _ACCESS_COLUMNS, rows)
        _bulk_insert(conn, consent_events, _GRANT_COLUMNS, grants)
        _bulk_insert(conn, blocks, _BLOCK_COLUMNS, headers)


def _loader(url: str) -> Engine:
    """An engine for filling the query index fast (a large cache, no fsync: set-up only)."""
    engine = create_engine(url)

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA cache_size=-400000")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    return engine


def _query_scaling(work: Path, sizes: list[int], runs: int, warmup: int) -> dict[str, Any]:
    """A patient's audit on an index of each size (see the module docstring)."""
    path = work / "query-index.sqlite3"
    url = f"sqlite:///{path}"
    index = AuditIndex.open(url, _DEPLOYMENT)
    loader = _loader(url)
    rng = random.Random(6)
    out: dict[str, Any] = {"per_patient": QUERY_PER_PATIENT, "sizes": sizes, "stages": {}}
    patients = 0
    try:
        for size in sizes:
            start = time.perf_counter()
            wanted = size // QUERY_PER_PATIENT
            _fill(loader, patients, wanted, rng)
            patients = wanted
            fill_s = time.perf_counter() - start
            file_bytes = _sqlite_bytes(path)
            out["stages"][str(size)] = {
                **_time_queries(index, patients, runs, warmup, rng),
                "records": index.count(),
                "fill_s": round(fill_s, 2),
                "file_bytes": file_bytes,
                "bytes_per_record": round(file_bytes / size, 1),
            }
            logger.info("index query at %d records: %s", size, out["stages"][str(size)])
    finally:
        loader.dispose()
        index.close()
    first, last = (out["stages"][str(n)]["audit"]["p50_ms"] for n in (sizes[0], sizes[-1]))
    out["largest"] = out["stages"][str(sizes[-1])]["audit"]
    out["growth_ratio"] = round(last / first, 2)
    return out


def _time_queries(
    index: AuditIndex, patients: int, runs: int, warmup: int, rng: random.Random
) -> dict[str, Any]:
    """Time ``accesses(patient=...)`` plus ``grant_history`` for random patients.

    Raises:
        RuntimeError: If a patient's answer is not its 100 records and two grants.
    """
    chosen = [_query_patient(rng.randrange(patients)) for _ in range(warmup + runs)]
    audit, records, grants = [], [], []
    for n, patient in enumerate(chosen):
        start = time.perf_counter()
        found = index.accesses(patient=patient)
        middle = time.perf_counter()
        history = index.grant_history(patient)
        end = time.perf_counter()
        if len(found) != QUERY_PER_PATIENT or len(history.events) != 2:
            raise RuntimeError("a patient's audit did not find its records and grants")
        if n >= warmup:
            audit.append(end - start)
            records.append(middle - start)
            grants.append(end - middle)
    return {
        "audit": summarize(audit),
        "accesses": summarize(records),
        "grant_history": summarize(grants),
    }


# --- the section --------------------------------------------------------------------------------


def run(
    work: Path,
    *,
    events: int,
    sync_runs: int,
    postgres_runs: int,
    query_sizes: list[int],
    query_runs: int,
    index_runs: int,
    chain_runs: int,
) -> dict[str, Any]:
    """Measure the audit index (see the module docstring).

    Args:
        work: A scratch folder (index files, the PostgreSQL server's folder).
        events: About how many events the chain is given for the first sync.
        sync_runs: First syncs into SQLite (each into a fresh file); the median is reported.
        postgres_runs: First syncs into PostgreSQL (each into a fresh database), 0 for none.
        query_sizes: Access records in the query index, ascending.
        query_runs: Timed audit queries at each size.
        index_runs: Timed trails from the index, per patient.
        chain_runs: Timed trails from the chain for the typical patient (a third for the heavy).

    Returns:
        ``chain`` (what was built), ``throughput`` (``sqlite``, ``postgresql``), ``query``
        (per size) and ``against_chain``.
    """
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    with BulkAnvil(accounts=10) as chain:
        built = _build(chain, events)
        out["chain"] = {
            "events": built.events,
            "blocks": built.blocks,
            "setup_s": built.setup_s,
            "heavy_patient_records": built.heavy_records,
            "per_patient": {"study": 1, "grants": 2, "revocations": 1},
            "per_patient_records": {"granted": GRANTED, "denied": DENIED},
        }
        logger.info("index: %d events in %d blocks", built.events, built.blocks)
        throughput, indexer = _throughput(built, work, sync_runs, postgres_runs)
        out["throughput"] = throughput
        logger.info("index throughput: %s", throughput)
        with indexer:
            out["against_chain"] = _against_chain(
                built, indexer, throughput["sqlite"]["seconds"], index_runs, chain_runs
            )
    out["query"] = _query_scaling(work, query_sizes, query_runs, warmup=max(1, query_runs // 10))
    out["cpus"] = os.cpu_count()
    return out
