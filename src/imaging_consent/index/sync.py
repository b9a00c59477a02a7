"""Keeping an audit index up with the chain: pages of logs, confirmations, reorganisations.

:class:`Indexer` reads the three contracts' logs with one ``eth_getLogs`` per page (the
adaptive pager of :mod:`imaging_consent.chain.logs`, raw JSON), decodes them with ``eth_abi``
(:mod:`.decode`) and stores each page with its cursor in one transaction. It indexes only up
to ``latest - confirmations``.

Reorganisations: before each sync the cursor block's stored hash is compared with the chain's.
If they differ, the stored hashes of earlier blocks (every block holding an event, and every
block the cursor stood on) are compared from the newest down; the first that still matches is
the common ancestor. Everything above it is deleted in one transaction, and the sync re-applies
from there. A log whose block hash differs from the block header read for the same page means
the chain moved during the page: the page is dropped and read again.

Batched records: once a gateway's batch is final in its outbox and its ``BatchAnchored`` event
is indexed, :meth:`Indexer.import_batches` rebuilds the batch's Merkle tree from the outbox's
records, checks root, count and gateway against the anchor, and stores each record with its
inclusion proof. A batch that does not match its anchor is not listed (and is logged).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from web3.providers import JSONBaseProvider
from web3.types import RPCEndpoint

from imaging_consent.access_log.history import AccessEvent
from imaging_consent.access_log.outbox import Outbox
from imaging_consent.access_log.record import AccessRecord
from imaging_consent.chain.logs import DEFAULT_PAGE, fetch_logs, latest_block, log_pages
from imaging_consent.chain.session import redact_url
from imaging_consent.consent.inputs import parse_address
from imaging_consent.consent.purposes import Purpose
from imaging_consent.contracts.deployment import Suite
from imaging_consent.errors import (
    AuditIndexError,
    ChainError,
    ChainUnavailableError,
    LogQueryError,
)
from imaging_consent.index.decode import Decoded, decoders_for
from imaging_consent.index.store import (
    AuditIndex,
    CursorMovedError,
    Deployment,
    PageRows,
    args_json,
)
from imaging_consent.index.trail import AuditTrail
from imaging_consent.provenance.merkle import MerkleTree, verify_proof

__all__ = [
    "DEFAULT_CONFIRMATIONS",
    "Indexer",
    "SyncResult",
    "deployment_of",
]

logger = logging.getLogger(__name__)

#: Blocks an event must be under before it is indexed, unless configured otherwise.
DEFAULT_CONFIRMATIONS = 2
#: How many stored blocks are compared, newest first, to find a reorganisation's ancestor.
REORG_WINDOW = 512
#: Called after each stored page with (blocks done, blocks to do, events so far).
Progress = Callable[[int, int, int], None]

_ACCESS_KINDS = {"AccessGranted": "granted", "AccessDenied": "denied"}


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one :meth:`Indexer.sync` did.

    Attributes:
        first: The first block read (cursor + 1 before the sync).
        cursor: The cursor after it: the last block indexed.
        latest: The chain's latest block when the sync began.
        events: How many events were stored.
        batched: How many batched records were imported with their proofs.
        rolled_back: Blocks undone because of a reorganisation (0 if none).
        removed: Access records removed by that rollback.
    """

    first: int
    cursor: int
    latest: int
    events: int
    batched: int
    rolled_back: int
    removed: int

    @property
    def behind(self) -> int:
        """Blocks between the cursor and the chain's latest block."""
        return max(0, self.latest - self.cursor)


@dataclass(frozen=True, slots=True)
class _Header:
    hash: bytes
    timestamp: int


def _headers(suite: Suite, numbers: Sequence[int]) -> dict[int, _Header | None]:
    """Block headers by number, in one JSON-RPC batch (None for a block the chain lacks)."""
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    provider = cast(JSONBaseProvider, suite.session.w3.provider)
    try:
        answers = provider.make_batch_request(
            [(RPCEndpoint("eth_getBlockByNumber"), [hex(n), False]) for n in wanted]
        )
    except (OSError, ConnectionError) as exc:
        raise ChainUnavailableError(
            f"cannot reach {redact_url(suite.session.rpc_url)}: {type(exc).__name__}"
        ) from exc
    if not isinstance(answers, list):
        raise LogQueryError(f"the node refused a batch of block headers: {answers}")
    found: dict[int, _Header | None] = {}
    for number, answer in zip(wanted, answers, strict=True):
        block = answer.get("result")
        if "error" in answer:
            raise LogQueryError(f"eth_getBlockByNumber({number}) failed: {answer['error']}")
        found[number] = (
            None
            if block is None
            else _Header(bytes.fromhex(block["hash"][2:]), int(block["timestamp"], 16))
        )
    return found


def _header(suite: Suite, number: int) -> _Header | None:
    return _headers(suite, [number])[number]


def deployment_of(suite: Suite) -> Deployment:
    """The deployment ``suite`` names, as an index records it (cursor before its first block).

    Raises:
        ChainUnavailableError: If the chain cannot be reached.
        LogQueryError: If the deployment block is not on this chain.
    """
    first = suite.manifest.block_number
    heads = _headers(suite, [first, max(0, first - 1)])
    start, before = heads[first], heads[max(0, first - 1)]
    if start is None or before is None:
        raise LogQueryError(f"the deployment block {first} is not on this chain")
    return Deployment(
        chain_id=suite.session.chain_id,
        consent_registry=suite.consent.address,
        study_registry=suite.studies.address,
        access_log=suite.access_log.address,
        from_block=first,
        from_block_hash=start.hash,
        cursor=first - 1,
        cursor_hash=before.hash,
    )


class _ChainMovedError(Exception):
    """A page's logs and headers disagree: the chain reorganised while it was read."""


class Indexer:
    """Syncs one :class:`AuditIndex` from one deployment, and answers trails from it.

    Args:
        suite: The deployment to follow.
        index: Its index (see :meth:`open`).
        confirmations: Blocks an event must be under before it is indexed.
        page: Blocks per ``eth_getLogs`` request at first.
        outboxes: Gateways' outboxes whose anchored batches are imported.
    """

    def __init__(
        self,
        suite: Suite,
        index: AuditIndex,
        *,
        confirmations: int = DEFAULT_CONFIRMATIONS,
        page: int = DEFAULT_PAGE,
        outboxes: Sequence[Outbox] = (),
    ) -> None:
        if confirmations < 0:
            raise ValueError("confirmations must be 0 or more")
        self.suite = suite
        self.index = index
        self.confirmations = confirmations
        self.page = page
        self.outboxes = tuple(outboxes)
        self._decoders = decoders_for(
            {
                "ConsentRegistry": suite.consent.address,
                "StudyRegistry": suite.studies.address,
                "AccessLog": suite.access_log.address,
            }
        )

    @classmethod
    def open(cls, suite: Suite, url: str, **options: Any) -> Indexer:
        """Open the index at ``url`` for ``suite`` (see :meth:`AuditIndex.open`).

        Raises:
            AuditIndexError: If the database cannot be used.
            IndexMismatchError: If it follows another chain or deployment.
            ChainUnavailableError: If the chain cannot be reached.
        """
        return cls(suite, AuditIndex.open(url, deployment_of(suite)), **options)

    def close(self) -> None:
        """Close the index."""
        self.index.close()

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- syncing -------------------------------------------------------------------------------

    def sync(self, *, to_block: int | None = None, progress: Progress | None = None) -> SyncResult:
        """Index every event up to ``latest - confirmations`` (or ``to_block``), page by page.

        Raises:
            ChainUnavailableError: If the chain cannot be reached (what is stored stays).
            LogQueryError: If the node refuses the log query even one block at a time.
            AuditIndexError: If the database cannot be written.
        """
        latest = latest_block(self.session)
        target = latest - self.confirmations if to_block is None else min(to_block, latest)
        rolled_back = removed = events = 0
        first = self.index.deployment().cursor + 1
        for _attempt in range(8):
            undone, gone = self._undo_reorg()
            rolled_back, removed = rolled_back + undone, removed + gone
            try:
                events += self._pages(target, progress)
                break
            except (_ChainMovedError, CursorMovedError) as exc:
                logger.info("audit index: %s; reading again", exc)
        else:
            logger.warning("audit index: the chain or another writer kept moving; stopped early")
        batched = self.import_batches()
        cursor = self.index.deployment().cursor
        return SyncResult(first, cursor, latest, events, batched, rolled_back, removed)

    def follow(
        self,
        stop: threading.Event,
        *,
        interval: float = 2.0,
        on_sync: Callable[[SyncResult], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Sync, then sync again every ``interval`` seconds until ``stop`` is set.

        A sync (or ``on_sync``) that meets an unreachable or refusing chain or a failing database
        is logged and retried at the next interval.
        """
        while not stop.is_set():
            try:
                result = self.sync(progress=progress)
                if on_sync is not None:
                    on_sync(result)
            except (ChainError, AuditIndexError) as exc:
                logger.warning("audit index: %s; retrying in %.0f s", exc, interval)
            stop.wait(interval)

    @property
    def session(self) -> Any:
        """The chain session (of the suite)."""
        return self.suite.session

    def _undo_reorg(self) -> tuple[int, int]:
        stored = self.index.deployment()
        if stored.cursor < stored.from_block:
            return 0, 0
        head = _header(self.suite, stored.cursor)
        if head is not None and head.hash == stored.cursor_hash:
            return 0, 0
        ancestor, ancestor_hash = stored.from_block - 1, None
        candidates = self.index.block_hashes(stored.cursor, REORG_WINDOW)
        chain = _headers(self.suite, [n for n, _ in candidates])
        for number, known in candidates:
            seen = chain[number]
            if seen is not None and seen.hash == known:
                ancestor, ancestor_hash = number, known
                break
        if ancestor_hash is None:
            before = _header(self.suite, ancestor)
            ancestor_hash = before.hash if before is not None else b"\0" * 32
        removed = self.index.roll_back(stored.cursor, ancestor, ancestor_hash)
        logger.warning(
            "audit index: the chain reorganised below block %d; rolled back to block %d "
            "(%d access records removed) and indexing again",
            stored.cursor,
            ancestor,
            removed,
        )
        return stored.cursor - ancestor, removed

    def _pages(self, target: int, progress: Progress | None) -> int:
        cursor = self.index.deployment().cursor
        start, stored = cursor + 1, 0
        addresses = [self.suite.consent.address, self.suite.studies.address]
        addresses.append(self.suite.access_log.address)
        for _first, last, logs in log_pages(
            self.session, addresses, None, start, target, page=self.page
        ):
            rows = self._rows(logs, last)
            self.index.write_page(cursor, last, rows.blocks[last][0], rows)
            cursor = last
            stored += len(rows.consent) + len(rows.study) + len(rows.anchor) + len(rows.access)
            if progress is not None:
                progress(last - start + 1, target - start + 1, stored)
        return stored

    def _rows(self, logs: list[Any], last: int) -> PageRows:
        rows = PageRows.empty()
        hashes: dict[int, bytes] = {}
        decoded: list[Decoded] = []
        for log in logs:
            if log.get("removed"):
                raise _ChainMovedError("a log of this page was removed")
            decoder = self._decoders.get((log["address"].lower(), log["topics"][0].lower()))
            if decoder is None:
                continue
            item = decoder.decode(log)
            decoded.append(item)
            hashes[item.block_number] = item.block_hash
        headers = _headers(self.suite, [*hashes, last])
        for number, header in headers.items():
            if header is None or hashes.get(number, header.hash) != header.hash:
                raise _ChainMovedError(f"block {number} changed while its page was read")
            rows.blocks[number] = (header.hash, header.timestamp)
        for item in decoded:
            self._route(item, rows, rows.blocks[item.block_number][1])
        return rows

    def _route(self, item: Decoded, rows: PageRows, timestamp: int) -> None:
        args = item.args
        common = {
            "block_number": item.block_number,
            "log_index": item.log_index,
            "tx_hash": item.tx_hash,
            "name": item.name,
        }
        if item.contract == "ConsentRegistry" and "patient" in args:
            counterpart = args.get("grantee") or args.get("delegate")
            rows.consent.append(
                {
                    **common,
                    "patient": args["patient"],
                    "counterpart": counterpart,
                    "args": args_json(args),
                }
            )
        elif item.contract == "StudyRegistry" and "studyKey" in args:
            patient = args.get("newPatient") or args.get("patient") or ""
            rows.study.append(
                {
                    **common,
                    "study_key": args["studyKey"],
                    "patient": patient,
                    "args": args_json(args),
                }
            )
        elif item.name == "BatchAnchored":
            rows.anchor.append(
                {
                    **common,
                    "root": args["root"],
                    "count": int(args["count"]),
                    "batch_id": args["batchId"],
                    "gateway": args["gateway"],
                }
            )
        elif item.name in _ACCESS_KINDS or item.name == "BreakGlassAccess":
            rows.access.append(_access_row(item, timestamp))

    # --- batched records -----------------------------------------------------------------------

    def import_batches(self) -> int:
        """Import the outboxes' final batches whose anchors are indexed; return records added."""
        added = 0
        anchored = [found for outbox in self.outboxes for found in outbox.anchored_batches()]
        for batch, entries in anchored:
            if self.index.has_batch(batch.batch_id):
                continue
            anchor = self.index.anchor_of(batch.batch_id)
            if anchor is None:
                continue  # not indexed yet: within the confirmations, or the index is behind
            records = [AccessRecord.from_json(e.record) for e in entries]
            tree = MerkleTree.of([r.leaf() for r in records])
            if (
                tree.root != bytes(anchor["root"])
                or len(records) != int(anchor["count"])
                or any(r.gateway != anchor["gateway"] for r in records)
            ):
                logger.warning(
                    "audit index: batch 0x%s does not match its anchor; its records are not listed",
                    batch.batch_id.hex(),
                )
                continue
            rows = []
            for position, (record, entry) in enumerate(zip(records, entries, strict=True)):
                proof = tree.proof(record.leaf())
                if not verify_proof(tree.root, record.leaf(), proof):
                    raise AssertionError("a Merkle proof built here failed to verify")
                rows.append(_batched_row(record, entry.reason, anchor, position, b"".join(proof)))
            if self.index.add_batch(rows):
                added += len(rows)
        return added

    def prove(self, event: AccessEvent) -> bool:
        """Whether a batched record proves against its anchored root, on chain.

        The record's leaf is rebuilt from its fields, its proof is checked by
        ``AccessLog.verifyRecord`` against ``batch_root`` for its gateway, and the root must be
        anchored by that gateway in a ``BatchAnchored`` event of this chain (read from the chain,
        not the index). False for a record that is not batched.

        Raises:
            ChainUnavailableError: If the chain cannot be reached.
        """
        if not event.batched or event.batch_root is None or event.batch_id is None:
            return False
        record = AccessRecord(
            study_key=event.study_key,
            patient=event.patient,
            accessor=event.accessor,
            purpose=event.purpose_code,
            permitted=event.kind != "denied",
            identified=event.identified,
            break_glass=event.kind == "break_glass",
            request_id=event.request_id,
            gateway=event.gateway,
            timestamp=event.timestamp,
        )
        log = self.suite.access_log
        if not log.verify_record(event.batch_root, event.gateway, record.as_tuple(), event.proof):
            return False
        anchored = fetch_logs(
            self.session,
            log.events.BatchAnchored,
            {"root": event.batch_root, "batchId": event.batch_id, "gateway": event.gateway},
            event.block_number,
            event.block_number,
        )
        return bool(anchored)

    # --- reading -------------------------------------------------------------------------------

    def trail(
        self, patient: str, *, since: int | None = None, until: int | None = None
    ) -> AuditTrail:
        """``patient``'s audit trail from the index, with how far it is behind the chain.

        Raises:
            InvalidAddressError: If ``patient`` is not an address.
            ChainUnavailableError: If the chain cannot be reached (for the lag).
        """
        owner = parse_address(patient, "--patient")
        stored = self.index.deployment()
        latest = latest_block(self.session)
        grants = self.index.grant_history(owner)
        found = self.index.accesses(patient=owner, since=since, until=until)
        now = self.index.block_time(stored.cursor)
        if now is None:
            head = _header(self.suite, stored.cursor)
            now = head.timestamp if head is not None else 0
        return AuditTrail(
            owner,
            grants.current,
            grants.events,
            found,
            now,
            source="index",
            behind=max(0, latest - stored.cursor),
        )


def _access_row(item: Decoded, timestamp: int) -> dict[str, Any]:
    args = item.args
    glass = item.name == "BreakGlassAccess"
    return {
        "block_number": item.block_number,
        "log_index": item.log_index,
        "seq": 0,
        "tx_hash": item.tx_hash,
        "kind": "break_glass" if glass else _ACCESS_KINDS[item.name],
        "study_key": args["studyKey"],
        "patient": args["patient"],
        "accessor": args["clinician"] if glass else args["accessor"],
        "purpose": Purpose.ETREAT.value if glass else int(args["purpose"]),
        "identified": glass or bool(args.get("identified", False)),
        "request_id": args["requestId"],
        "gateway": args["gateway"],
        "timestamp": timestamp,
        "reason_commitment": args["reasonCommitment"] if glass else None,
        "batch_id": None,
        "batch_root": None,
        "proof": None,
        "reason": None,
    }


def _batched_row(
    record: AccessRecord, reason: str | None, anchor: dict[str, Any], position: int, proof: bytes
) -> dict[str, Any]:
    kind = "break_glass" if record.break_glass else "granted" if record.permitted else "denied"
    return {
        "block_number": anchor["block_number"],
        "log_index": anchor["log_index"],
        "seq": position + 1,
        "tx_hash": anchor["tx_hash"],
        "kind": kind,
        "study_key": record.study_key,
        "patient": record.patient,
        "accessor": record.accessor,
        "purpose": record.purpose,
        "identified": record.identified,
        "request_id": record.request_id,
        "gateway": record.gateway,
        "timestamp": record.timestamp,
        "reason_commitment": None,
        "batch_id": anchor["batch_id"],
        "batch_root": anchor["root"],
        "proof": proof,
        "reason": reason,
    }
