"""``imaging-consent chain start``: a local development chain in the foreground."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.panel import Panel

from imaging_consent.chain import ChainKind, LocalChain
from imaging_consent.cli.common import JsonOpt, err_console, out_console, print_json
from imaging_consent.cli.entry import Interrupted
from imaging_consent.cli.layout import print_records

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
    """Print the chain's funded accounts (and their dev keys, under a clear notice).

    Keys and addresses are printed whole: one block per account if a table would not fit.
    """
    names = names or {}
    headers = ["#", *(["role"] if names else []), "address"]
    headers += [*(["dev private key (test only)"] if keys else []), "balance (ETH)"]
    w3 = local.session.w3
    rows = []
    for index, account in enumerate(local.accounts):
        if names and index not in names:
            continue
        row = [str(index), *([names[index]] if names else []), account.address]
        if keys:
            row.append("0x" + bytes(account.key).hex())
        row.append(f"{w3.from_wei(w3.eth.get_balance(account.address), 'ether'):,.0f}")
        rows.append(row)
    title = f"Funded accounts on {local.kind.value} (chain id {local.chain_id})"
    print_records(out_console, title, headers, rows, right=("#", "balance (ETH)"))
    if keys:
        out_console.print(Panel(TEST_KEYS_NOTICE, style="bold yellow", expand=False))


def wait_for_interrupt(message: str) -> int:
    """Block until Ctrl-C (SIGINT) or SIGTERM.

    The handlers :mod:`.entry` installs raise :class:`.Interrupted` out of the wait (and
    ignore later signals while the caller cleans up).

    Returns:
        The exit code the signal calls for: 130 after Ctrl-C, 143 after SIGTERM.
    """
    try:
        err_console.print(message)
        while True:
            time.sleep(3600)
    except Interrupted as interrupt:
        return interrupt.exit_code


@app.command("start")
def start(
    kind: KindOpt = ChainKind.GANACHE,
    anvil: Annotated[bool, typer.Option("--anvil", help="Shorthand for --chain anvil.")] = False,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="Port on 127.0.0.1 (default: a free one, printed when the chain is up).",
            show_default=False,
        ),
    ] = None,
    accounts: Annotated[
        int, typer.Option("--accounts", min=1, max=100, help="Funded accounts.")
    ] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Run a local chain in the foreground, print its funded accounts, stop it on Ctrl-C.

    Exits 130 once Ctrl-C has stopped the chain (143 after SIGTERM); the chain never outlives
    the command.
    """
    chosen = ChainKind.ANVIL if anvil else kind
    local = LocalChain(chosen, port=port, accounts=accounts)
    try:
        with err_console.status(f"starting {chosen.value}..."):
            local.start()
        if as_json:  # one document once the chain is up; the command then waits as usual
            print_json(
                {
                    "kind": chosen.value,
                    "rpc_url": local.rpc_url,
                    "chain_id": local.chain_id,
                    "test_keys_notice": TEST_KEYS_NOTICE,
                    "accounts": [
                        {"address": a.address, "private_key": "0x" + bytes(a.key).hex()}
                        for a in local.accounts
                    ],
                }
            )
        else:
            out_console.print(
                f"[bold green]{chosen.value} is running[/] at [bold]{local.rpc_url}[/]"
            )
            print_accounts(local)
            out_console.print(
                "Next, in another shell:\n"
                f"  export IMAGING_CONSENT_RPC_URL={local.rpc_url}\n"
                "  export IMAGING_CONSENT_PRIVATE_KEY=<account 0's key above>\n"
                "  imaging-consent deploy --site <address> --gateway <address> "
                "--emergency <address>"
            )
        code = wait_for_interrupt("Press Ctrl-C to stop the chain.")
    finally:
        local.stop()
    err_console.print(f"{chosen.value} stopped.")
    raise typer.Exit(code)
