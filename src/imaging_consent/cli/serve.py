"""``serve``: the release gate as a DICOMweb service (QIDO-RS, WADO-RS) behind Sign-In with
Ethereum.

The gateway key comes from ``--keystore`` / ``IMAGING_CONSENT_KEYSTORE`` or
``IMAGING_CONSENT_PRIVATE_KEY``, never from a flag; the RPC URL, manifest, store and site pepper
from the same option / environment / config-file chain as every command. The service's own
settings are options with an environment variable each (``IMAGING_CONSENT_SERVE_HOST``...).

Uvicorn's access log is off: request paths carry study UIDs. Log lines follow the CLI's policy
(``IMAGING_CONSENT_LOG_FILE``).
"""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from imaging_consent.cli.common import UsageProblem, Workspace, out_console, spinner, with_workspace
from imaging_consent.cli.fetch import outbox_path
from imaging_consent.cli.index import IndexOpt, WebhookOpt, open_indexer
from imaging_consent.cli.stores import OrthancOpt, StoreOpt, site_store
from imaging_consent.gateway import ImageGateway, LogMode
from imaging_consent.index.notify import BreakGlassNotifier
from imaging_consent.server import MAX_TOKEN_LIFETIME, ServerSettings, create_app
from imaging_consent.server.patient import PatientSettings, parse_label

__all__ = ["app"]

app = typer.Typer()

#: ``ADDRESS=NAME`` pairs separated by ``;`` (names have spaces, so not the usual list variable).
LABELS_ENV = "IMAGING_CONSENT_SERVE_LABELS"


@app.command("serve")
@with_workspace()
def serve(
    ws: Workspace,
    host: Annotated[
        str,
        typer.Option("--host", envvar="IMAGING_CONSENT_SERVE_HOST", help="Address to listen on."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", envvar="IMAGING_CONSENT_SERVE_PORT", help="Port.")
    ] = 8080,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            envvar="IMAGING_CONSENT_SERVE_PUBLIC_URL",
            help="The origin apps reach the service at, which sign-in messages must name "
            "(default http://HOST:PORT).",
        ),
    ] = None,
    store: StoreOpt = None,
    orthanc: OrthancOpt = None,
    log_mode: Annotated[
        LogMode,
        typer.Option(
            "--log-mode",
            envvar="IMAGING_CONSENT_SERVE_LOG_MODE",
            help="sync: one transaction per access before the images leave; batched: the "
            "outbox, anchored on a timer.",
        ),
    ] = LogMode.SYNC,
    flush_interval: Annotated[
        float,
        typer.Option(
            "--flush-interval",
            envvar="IMAGING_CONSENT_SERVE_FLUSH_INTERVAL",
            help="Seconds between anchors of the outbox (and once at shutdown).",
        ),
    ] = 5.0,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            envvar="IMAGING_CONSENT_SERVE_ALLOW_ORIGINS",
            help="A browser origin allowed by CORS (repeatable; never *).",
        ),
    ] = None,
    token_lifetime: Annotated[
        int,
        typer.Option(
            "--token-lifetime",
            envvar="IMAGING_CONSENT_SERVE_TOKEN_LIFETIME",
            help=f"Seconds an access token lives (at most {MAX_TOKEN_LIFETIME}).",
        ),
    ] = MAX_TOKEN_LIFETIME,
    index: IndexOpt = None,
    webhook: WebhookOpt = None,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--work-dir",
            envvar="IMAGING_CONSENT_SERVE_WORK_DIR",
            help="Private folder for releases in flight and kept proofs (default: beside "
            "the manifest).",
        ),
    ] = None,
    network_name: Annotated[
        str | None,
        typer.Option(
            "--network-name",
            envvar="IMAGING_CONSENT_SERVE_NETWORK_NAME",
            help="The chain's name as the patient page shows it (default: chain <id>).",
        ),
    ] = None,
    tx_link: Annotated[
        str | None,
        typer.Option(
            "--tx-link",
            envvar="IMAGING_CONSENT_SERVE_TX_LINK",
            help="The network's transaction link for the patient page: https:// with {tx} once "
            "where the hash goes (default: none, the plain hash).",
        ),
    ] = None,
    relay_per_hour: Annotated[
        int,
        typer.Option(
            "--relay-per-hour",
            envvar="IMAGING_CONSENT_SERVE_RELAY_PER_HOUR",
            help="Consent changes relayed per patient in any hour.",
        ),
    ] = 10,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help=f"ADDRESS=NAME: the name the patient page shows for an account (repeatable; "
            f"env {LABELS_ENV}, pairs separated by ';').",
        ),
    ] = None,
) -> None:
    """Serve the release gate as DICOMweb (QIDO-RS, WADO-RS) to signed-in wallets."""
    url = public_url or f"http://{host}:{port}"
    labels = label or [p for p in os.environ.get(LABELS_ENV, "").split(";") if p.strip()]
    try:
        patient = PatientSettings(
            tx_link=tx_link,
            network_name=network_name,
            relay_per_hour=relay_per_hour,
            labels=tuple(parse_label(text) for text in labels),
        )
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    sender = ws.sender()
    folder = work_dir or ws.manifest_path.parent / f"serve-{ws.session.chain_id}-{sender.address}"
    try:
        settings = ServerSettings(
            public_url=url,
            work_dir=folder,
            allowed_origins=tuple(allow_origin or ()),
            token_lifetime=token_lifetime,
            flush_interval=flush_interval,
        )
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    with spinner("indexing the store..."):
        image_store = site_store(ws, store, orthanc)
    with ExitStack() as stack:
        gateway = stack.enter_context(
            ImageGateway(
                ws.suite,
                sender,
                image_store,
                ws.pepper(),
                log_mode=log_mode,
                outbox_path=outbox_path(ws, sender),
            )
        )
        indexer = stack.enter_context(
            open_indexer(ws, index, create=webhook is not None, outboxes=[])
        )
        if indexer is not None:
            indexer.outboxes = (gateway.outbox,)
        notifier = (
            BreakGlassNotifier(indexer.index, webhook)
            if webhook is not None and indexer is not None
            else None
        )
        service = create_app(settings, gateway, patient=patient, index=indexer, notifier=notifier)
        out_console.print(
            f"serving DICOMweb at [bold]{url}/dicom-web[/] as gateway {gateway.address} "
            f"({gateway.log_mode.value} logging); sign in at {url}/auth/login"
        )
        if indexer is not None:
            out_console.print(f"keeping the audit index {indexer.index.url} in sync")
        config = uvicorn.Config(service, host=host, port=port, log_config=None, access_log=False)
        _run_until_signalled(uvicorn.Server(config))


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler that does nothing: uvicorn has already stopped gracefully."""


def _run_until_signalled(server: uvicorn.Server) -> None:
    """Run ``server`` until SIGINT or SIGTERM; both stop it gracefully (outbox flushed).

    Uvicorn raises the signal it caught again once it has stopped. SIGINT then ends the command
    as an interrupt (exit 130); SIGTERM's default action would kill the process before the
    gateway is closed, so it is absorbed here and the command ends normally (exit 0).
    """
    previous = signal.signal(signal.SIGTERM, _ignore)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
