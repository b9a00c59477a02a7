"""``imaging-consent keys``: create a keystore, import a key into one, show whose it is.

A key never appears on the command line (it would end up in shell history and in the process
list): ``keys import`` reads it from IMAGING_CONSENT_PRIVATE_KEY or standard input. Keystore
passwords come from IMAGING_CONSENT_KEYSTORE_PASSWORD or a hidden prompt, asked twice.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from eth_account import Account
from eth_account.signers.local import LocalAccount

from imaging_consent.chain.keys import (
    KEYSTORE_PASSWORD_ENV,
    PRIVATE_KEY_ENV,
    key_from_env,
    keystore_address,
    parse_private_key,
    write_keystore,
)
from imaging_consent.cli.common import JsonOpt, out_console, print_json
from imaging_consent.errors import KeystoreError, PrivateKeyError

__all__ = ["app"]

app = typer.Typer(
    name="keys",
    help="Keystores: create one, import a key into one, show the address one holds.",
    no_args_is_help=True,
)

PathArg = Annotated[Path, typer.Argument(help="The keystore file.")]


@app.command("new")
def new(path: PathArg, as_json: JsonOpt = False) -> None:
    """Create a keystore holding a new random key (encrypted with scrypt, mode 0600); print
    its address. The password comes from IMAGING_CONSENT_KEYSTORE_PASSWORD or a prompt."""
    _refuse_existing(path)
    _written(Account.create(), path, as_json)


@app.command("import")
def import_key(path: PathArg, as_json: JsonOpt = False) -> None:
    """Encrypt an existing private key into a new keystore; print its address.

    The key comes from IMAGING_CONSENT_PRIVATE_KEY if set, else standard input (a hidden
    prompt on a terminal), never from the command line.
    """
    _refuse_existing(path)
    _written(_key_to_import(), path, as_json)


@app.command("show")
def show(path: PathArg, as_json: JsonOpt = False) -> None:
    """Print the address a keystore names, checksummed (no password asked, no secret shown)."""
    named = keystore_address(path)
    if as_json:
        print_json({"path": str(path), "address": named})
        return
    out_console.print(named)


def _refuse_existing(path: Path) -> None:
    if path.exists() or path.is_symlink():
        raise KeystoreError(f"{path} already exists: a keystore is never overwritten")


def _key_to_import() -> LocalAccount:
    """The key from the environment, else from standard input.

    Raises:
        PrivateKeyError: If neither holds a valid key (the message never shows it).
    """
    if os.environ.get(PRIVATE_KEY_ENV, "").strip():
        return key_from_env()
    if sys.stdin is None:
        raise PrivateKeyError(f"no key to import: set {PRIVATE_KEY_ENV} or pipe it on stdin")
    text = getpass.getpass("Private key (hidden): ") if sys.stdin.isatty() else sys.stdin.read()
    if not text.strip():
        raise PrivateKeyError(f"no key to import: set {PRIVATE_KEY_ENV} or pipe it on stdin")
    return parse_private_key(text, "standard input")


def _password() -> str:
    """The new keystore's password: from the environment, else asked twice on a terminal.

    Raises:
        KeystoreError: If there is none, or the two answers differ.
    """
    from_env = os.environ.get(KEYSTORE_PASSWORD_ENV)
    if from_env is not None:
        return from_env
    if not sys.stdin.isatty():
        raise KeystoreError(
            f"no password for the new keystore: set {KEYSTORE_PASSWORD_ENV} or run in a "
            "terminal to be asked"
        )
    first = getpass.getpass("Password for the new keystore: ")
    if getpass.getpass("Again: ") != first:
        raise KeystoreError("the two passwords differ; nothing written")
    return first


def _written(account: LocalAccount, path: Path, as_json: bool) -> None:
    write_keystore(account, path, _password())
    if as_json:
        print_json({"path": str(path), "address": account.address})
        return
    out_console.print(f"keystore for {account.address} written to [bold]{path}[/] (mode 0600)")
