"""``imaging-consent index sync|status``: the audit index every reader uses.

The index is a SQLite file per deployment by default (``index-<chainId>.sqlite3`` beside the
manifest) or any database URL (``--index``, ``IMAGING_CONSENT_INDEX``, config key ``index``),
PostgreSQL included. ``sync`` also imports the anchored batches of every gateway outbox beside
the manifest (``outbox-<chainId>-*.sqlite3``) and those named with ``--outbox``.
"""

from __future__ import annotations

import enum
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from imaging_consent.access_log import Outbox
from imaging_consent.audit.document import record
from imaging_consent.cli.common import (
    JsonOpt,
    UsageProblem,
    Workspace,
    address,
    err_console,
    out_console,
    parse_when,
    print_json,
    progress,
    with_workspace,
)
from imaging_consent.cli.entry import Interrupted
from imaging_consent.cli.tables import accesses_table
from imaging_consent.index.notify import BreakGlassNotifier
from imaging_consent.index.sync import DEFAULT_CONFIRMATIONS, Indexer, SyncResult

__all__ = ["IndexOpt", "WebhookOpt", "app", "moment", "open_indexer"]

app = typer.Typer(name="index", help="The audit index: sync it from the chain, see its state.")

IndexOpt = Annotated[
    str | None,
    typer.Option(
        "--index",
        help="The audit index: a SQLite file or a database URL (default: the configured one, "
        "else index-<chainId>.sqlite3 beside the manifest).",
        show_default=False,
    ),
]
WebhookOpt = Annotated[
    str | None,
    typer.Option(
        "--break-glass-webhook",
        envvar="IMAGING_CONSENT_BREAK_GLASS_WEBHOOK",
        help="POST each confirmed break-glass record here (https, or http on loopback), at "
        "least once, with an Idempotency-Key header.",
        show_default=False,
    ),
]
ConfirmationsOpt = Annotated[
    int,
    typer.Option(
        "--confirmations", min=0, help="Blocks an event must be under before it is indexed."
    ),
]


def _study_key(value: str) -> bytes:
    text = value.strip().lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise UsageProblem(f"--study: expected a study key (0x and 64 hex digits), got {value!r}")
    return bytes.fromhex(text)


class AccessKindOpt(str, enum.Enum):
    """The kinds of access record."""

    GRANTED = "granted"
    DENIED = "denied"
    BREAK_GLASS = "break_glass"


_AGO = re.compile(r"^\s*\d+\s*[smhdw]\s*$", re.IGNORECASE)


def moment(value: str | None, what: str) -> int | None:
    """``--since``/``--until``: an ISO date or datetime, or a duration meaning that long ago."""
    if value is None:
        return None
    if _AGO.match(value):
        return int(time.time()) - parse_when(value, 0, what)  # the duration, counted back
    return parse_when(value, 0, what)


# Show a progress bar when a sync has more blocks to read than this.
_LONG_SYNC = 20_000


def _outboxes(ws: Workspace, named: Sequence[Path]) -> list[Path]:
    found = sorted(ws.manifest_path.parent.glob(f"outbox-{ws.session.chain_id}-*.sqlite3"))
    return [*found, *(p for p in named if p not in found)]


@contextmanager
def open_indexer(
    ws: Workspace,
    index: str | None,
    *,
    create: bool,
    confirmations: int = DEFAULT_CONFIRMATIONS,
    outboxes: Sequence[Path] = (),
) -> Iterator[Indexer | None]:
    """The workspace's index (None if there is none and ``create`` is false), with outboxes."""
    url = ws.index_url(index)
    if url is None and create:
        url = f"sqlite:///{ws.default_index_path.resolve()}"
    if url is None:
        yield None
        return
    with ExitStack() as stack:
        opened = [stack.enter_context(Outbox(path)) for path in outboxes]
        indexer = stack.enter_context(
            Indexer.open(ws.suite, url, confirmations=confirmations, outboxes=opened)
        )
        yield indexer


def _document(result: SyncResult, indexer: Indexer) -> dict[str, Any]:
    return {
        "index": indexer.index.url,
        "cursor": result.cursor,
        "latest": result.latest,
        "behind": result.behind,
        "events": result.events,
        "batched_imported": result.batched,
        "rolled_back_blocks": result.rolled_back,
        "removed_access_records": result.removed,
    }


def _say(result: SyncResult) -> None:
    if result.rolled_back:
        err_console.print(
            f"[yellow]the chain reorganised: {result.rolled_back} block(s) undone, "
            f"{result.removed} access record(s) removed, indexed again[/]"
        )
    out_console.print(
        f"indexed to block {result.cursor} ({result.behind} behind block {result.latest}): "
        f"{result.events} new event(s), {result.batched} batched record(s) imported"
    )


def _sync_with_progress(indexer: Indexer) -> SyncResult:
    """Sync; a bar appears once a sync has more than ``_LONG_SYNC`` blocks to read."""
    with progress() as bar:
        task = bar.add_task("indexing blocks", total=None)

        def report(done: int, total: int, events: int) -> None:
            if total > _LONG_SYNC or bar.tasks[task].total is not None:
                bar.update(task, total=total, completed=done,
                           description=f"indexing blocks ({events} events)")  # fmt: skip

        return indexer.sync(progress=report)


def _notify(notifier: BreakGlassNotifier | None) -> None:
    if notifier is None:
        return
    report = notifier.deliver()
    if report.delivered or report.pending:
        err_console.print(
            f"break-glass webhook: {report.delivered} delivered, {report.pending} pending "
            "(retried at the next sync)"
        )


@app.command("sync")
@with_workspace(signs=False)
def sync(
    ws: Workspace,
    index: IndexOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep up with the chain until Ctrl-C.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between syncs with --follow.")
    ] = 2.0,
    confirmations: ConfirmationsOpt = DEFAULT_CONFIRMATIONS,
    outbox: Annotated[
        list[Path] | None,
        typer.Option(
            "--outbox",
            help="A gateway outbox whose anchored batches to import (repeatable; outboxes "
            "beside the manifest are always read).",
        ),
    ] = None,
    webhook: WebhookOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Index the deployment's consent, study and access events up to latest - confirmations.

    With ``--follow --json``, one JSON document per line after each sync (JSON Lines).

    Each page of blocks is stored in one transaction with the cursor, so an interrupted sync
    resumes where it stopped. A reorganisation is detected and undone before indexing again.
    """
    with open_indexer(
        ws, index, create=True, confirmations=confirmations,
        outboxes=_outboxes(ws, outbox or []),
    ) as indexer:  # fmt: skip
        assert indexer is not None
        notifier = BreakGlassNotifier(indexer.index, webhook) if webhook else None
        if not follow:
            result = _sync_with_progress(indexer)
            _notify(notifier)
            if as_json:
                print_json(_document(result, indexer))
            else:
                _say(result)
            return
        stop = threading.Event()

        def show(result: SyncResult) -> None:
            _notify(notifier)
            if as_json:
                print_json(_document(result, indexer), line=True)
            elif result.events or result.batched or result.rolled_back:
                _say(result)

        err_console.print(f"following the chain into {indexer.index.url}; Ctrl-C stops")
        try:
            show(_sync_with_progress(indexer))
            indexer.follow(stop, interval=interval, on_sync=show)
        except Interrupted:
            cursor = indexer.index.deployment().cursor
            err_console.print(f"stopped; the index is complete up to block {cursor}")
            raise


@app.command("status")
@with_workspace(signs=False)
def status(ws: Workspace, index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Where the index is, how far behind the chain, and how much it holds."""
    with open_indexer(ws, index, create=False) as indexer:
        if indexer is None:
            raise typer.BadParameter(
                "no audit index: run 'imaging-consent index sync' first, or pass --index",
                param_hint="--index",
            )
        stored = indexer.index.deployment()
        latest = int(ws.session.w3.eth.block_number)
        document = {
            "index": indexer.index.url,
            "chain_id": stored.chain_id,
            "access_log": stored.access_log,
            "from_block": stored.from_block,
            "cursor": stored.cursor,
            "latest": latest,
            "behind": max(0, latest - stored.cursor),
            "access_records": indexer.index.count("accesses"),
            "consent_events": indexer.index.count("consent_events"),
            "study_events": indexer.index.count("study_events"),
        }
    if as_json:
        print_json(document)
        return
    for key, value in document.items():
        out_console.print(f"{key.replace('_', ' ')}: {value}")


@app.command("accesses")
@with_workspace(signs=False)
def accesses(
    ws: Workspace,
    patient: Annotated[
        str | None, typer.Option("--patient", help="Only this patient's.", show_default=False)
    ] = None,
    study: Annotated[
        str | None,
        typer.Option("--study", help="Only this study key (0x + 64 hex).", show_default=False),
    ] = None,
    accessor: Annotated[
        str | None,
        typer.Option(
            "--accessor",
            help="Only those this account asked for (grantee or clinician).",
            show_default=False,
        ),
    ] = None,
    gateway: Annotated[
        str | None,
        typer.Option("--gateway", help="Only those this gateway recorded.", show_default=False),
    ] = None,
    kind: Annotated[
        list[AccessKindOpt] | None,
        typer.Option("--kind", help="Only this kind (repeatable).", show_default=False),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="From then: an ISO date, or a duration ago (30d).", show_default=False
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Before then (same forms).", show_default=False),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="At most this many, the newest.", show_default=False),
    ] = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Access records from the index, per patient, study, accessor or gateway (newest first).

    Releases, refusals and break-glass, on chain and batched; at least one of --patient,
    --study, --accessor or --gateway.
    """
    if not any((patient, study, accessor, gateway)):
        raise UsageProblem("give at least one of --patient, --study, --accessor, --gateway")
    owner = address(patient, "--patient") if patient else None
    key = _study_key(study) if study else None
    asker = address(accessor, "--accessor") if accessor else None
    recorder = address(gateway, "--gateway") if gateway else None
    first, last = moment(since, "--since"), moment(until, "--until")
    with open_indexer(ws, index, create=False) as indexer:
        if indexer is None:
            raise UsageProblem(
                "no audit index: run 'imaging-consent index sync' first, or pass --index"
            )
        found = indexer.index.accesses(
            patient=owner,
            study_key=key,
            accessor=asker,
            gateway=recorder,
            kinds=[k.value for k in kind] if kind else None,
            since=first,
            until=last,
            limit=limit,
        )
        cursor = indexer.index.deployment().cursor
    err_console.print(f"from the audit index, complete up to block {cursor}")
    if as_json:
        print_json({"cursor": cursor, "accesses": [record(e) for e in reversed(found)]})
        return
    out_console.print(accesses_table(found, f"{len(found)} access record(s), newest first"))
