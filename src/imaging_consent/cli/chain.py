"""``imaging-consent chain start``: a local development chain in the foreground."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from imaging_consent.chain import ChainKind, LocalChain
from imaging_consent.cli.common import err_console, out_console

__all__ = ["ChainKind", "KindOpt", "app", "print_accounts", "wait_for_interrupt"]

app = typer.Typer(
    name="chain", help="Run a local development chain (operators).", no_args_is_help=True
)

KindOpt = Annotated[
    ChainKind,
    typer.Option(
        "--chain",
        help="Which local chain to run: ganache (the default) or anvil.",
        case_sensitive=False,
    ),
]

TEST_KEYS_NOTICE = (
    "TEST KEYS, NEVER USE ON A REAL NETWORK: they come from the public test mnemonic "
    "'test test ... junk', and anyone can spend from them."
)


def print_accounts(
    local: LocalChain, names: dict[int, str] | None = None, keys: bool = True
) -> None:
    """Print the chain's funded accounts (and their dev keys, under a clear notice)."""
    names = names or {}
    table = Table(title=f"Funded accounts on {local.kind.value} (chain id {local.chain_id})")
    table.add_column("#", justify="right")
    if names:
        table.add_column("role")
    table.add_column("address")
    if keys:
        table.add_column("dev private key (test only)")
    w3 = local.session.w3
    table.add_column("balance (ETH)", justify="right")
    for index, account in enumerate(local.accounts):
        if names and index not in names:
            continue
        row = [str(index)]
        if names:
            row.append(names[index])
        row.append(account.address)
        if keys:
            row.append("0x" + bytes(account.key).hex())
        row.append(f"{w3.from_wei(w3.eth.get_balance(account.address), 'ether'):,.0f}")
        table.add_row(*row)
    out_console.print(table)
    if keys:
        out_console.print(Panel(TEST_KEYS_NOTICE, style="bold yellow", expand=False))


def wait_for_interrupt(message: str) -> None:
    """Block until Ctrl-C (SIGINT) or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        err_console.print(message)
        while not stop.wait(0.5):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@app.command("start")
def start(
    kind: KindOpt = ChainKind.GANACHE,
    anvil: Annotated[bool, typer.Option("--anvil", help="Shorthand for --chain anvil.")] = False,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1 (default: a free one)."),
    ] = None,
    accounts: Annotated[
        int, typer.Option("--accounts", min=1, max=100, help="Funded accounts.")
    ] = 10,
) -> None:
    """Run a local chain in the foreground, print its funded accounts, stop it on Ctrl-C."""
    chosen = ChainKind.ANVIL if anvil else kind
    local = LocalChain(chosen, port=port, accounts=accounts)
    with err_console.status(f"starting {chosen.value}..."):
        local.start()
    try:
        out_console.print(f"[bold green]{chosen.value} is running[/] at [bold]{local.rpc_url}[/]")
        print_accounts(local)
        out_console.print(
            "Next, in another shell:\n"
            f"  export IMAGING_CONSENT_RPC_URL={local.rpc_url}\n"
            "  export IMAGING_CONSENT_PRIVATE_KEY=<account 0's key above>\n"
            "  imaging-consent deploy --site <address> --gateway <address> --emergency <address>"
        )
        wait_for_interrupt("Press Ctrl-C to stop the chain.")
    finally:
        local.stop()
    out_console.print(f"{chosen.value} stopped.")
