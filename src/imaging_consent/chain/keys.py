"""Signing keys: encrypted keystore files (the default) or a key in the environment.

Keys never leave the process: every transaction and message is signed locally with
eth-account. Nothing here prints or logs a key, and errors are raised ``from None`` where the
underlying exception could echo key material.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import is_hex_address, to_checksum_address

from imaging_consent.errors import KeystoreError, PrivateKeyError

__all__ = [
    "KEYSTORE_PASSWORD_ENV",
    "PRIVATE_KEY_ENV",
    "key_from_env",
    "keystore_address",
    "load_keystore",
    "parse_private_key",
    "write_keystore",
    "write_private_file",
]

logger = logging.getLogger(__name__)

KEYSTORE_PASSWORD_ENV = "IMAGING_CONSENT_KEYSTORE_PASSWORD"
PRIVATE_KEY_ENV = "IMAGING_CONSENT_PRIVATE_KEY"

# secp256k1 group order: a private key is an integer in [1, n - 1].
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _read_keystore(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeystoreError(f"keystore {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeystoreError(f"cannot read keystore {path}: {type(exc).__name__}") from None
    try:
        keyfile = json.loads(text)
    except json.JSONDecodeError:
        raise KeystoreError(f"keystore {path} is not valid JSON") from None
    if not isinstance(keyfile, dict) or not isinstance(
        keyfile.get("crypto", keyfile.get("Crypto")), dict
    ):
        raise KeystoreError(f"keystore {path} is not an Ethereum keystore (no 'crypto' section)")
    return keyfile


def _password_for(path: Path, password: str | None, password_env: str) -> str:
    if password is not None:
        return password
    from_env = os.environ.get(password_env)
    if from_env is not None:
        return from_env
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"Password for keystore {path.name}: ")
    raise KeystoreError(
        f"no password for keystore {path}: set {password_env} or run in a terminal to be asked"
    )


def load_keystore(
    path: str | os.PathLike[str],
    password: str | None = None,
    *,
    password_env: str = KEYSTORE_PASSWORD_ENV,
) -> LocalAccount:
    """Decrypt an Ethereum keystore (V3 JSON) file.

    The password comes from ``password``, else from the environment variable
    ``password_env``, else from a hidden prompt if standard input is a terminal.

    Args:
        path: The keystore file.
        password: The password, if the caller already has it.
        password_env: Environment variable consulted when ``password`` is None.

    Returns:
        The account, ready to sign locally.

    Raises:
        KeystoreError: If the file is missing, unreadable or malformed, if no password is
            available, or if the password is wrong.
    """
    keystore = Path(path)
    keyfile = _read_keystore(keystore)
    secret = _password_for(keystore, password, password_env)
    try:
        private_key = Account.decrypt(keyfile, secret)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeystoreError(f"wrong password for keystore {keystore}") from None
        raise KeystoreError(f"keystore {keystore} is malformed: {exc}") from None
    except (KeyError, TypeError, NotImplementedError) as exc:
        raise KeystoreError(
            f"keystore {keystore} is malformed ({type(exc).__name__}: {exc})"
        ) from None
    account: LocalAccount = Account.from_key(private_key)
    if "address" in keyfile and str(keyfile["address"]).lower().removeprefix("0x") != (
        account.address.lower().removeprefix("0x")
    ):
        raise KeystoreError(f"keystore {keystore} holds a key for another address than it names")
    logger.debug("loaded keystore %s for %s", keystore, account.address)
    return account


def keystore_address(path: str | os.PathLike[str]) -> ChecksumAddress:
    """The address a keystore names (its ``address`` field), checksummed; no password needed.

    The key itself stays encrypted: this does not prove the file holds that address's key
    (:func:`load_keystore` checks that when it decrypts).

    Raises:
        KeystoreError: If the file is missing, unreadable or malformed, or names no valid
            address.
    """
    keystore = Path(path)
    named = _read_keystore(keystore).get("address")
    digits = named.removeprefix("0x") if isinstance(named, str) else ""
    if not is_hex_address("0x" + digits):
        raise KeystoreError(f"keystore {keystore} names no address (decrypt it to learn it)")
    return to_checksum_address("0x" + digits)


def write_keystore(
    account: LocalAccount,
    path: str | os.PathLike[str],
    password: str,
    *,
    iterations: int | None = None,
) -> Path:
    """Encrypt ``account`` into a keystore file readable only by its owner (mode 0600).

    The file is written atomically: a reader sees either no file or the whole file.

    Args:
        account: The account to store.
        path: Where to write; an existing file is replaced.
        password: The encryption password (must not be empty).
        iterations: scrypt work factor ``n`` (a power of two); eth-account's default (2**18)
            if None. Tests pass a small value to stay fast.

    Returns:
        The path written.

    Raises:
        KeystoreError: If the password is empty or the file cannot be written.
    """
    if not password:
        raise KeystoreError("refusing to write a keystore with an empty password")
    target = Path(path)
    keyfile = Account.encrypt(account.key, password, kdf="scrypt", iterations=iterations)
    try:
        return write_private_file(target, json.dumps(keyfile))
    except OSError as exc:
        raise KeystoreError(f"cannot write keystore {target}: {exc.strerror}") from None


def write_private_file(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a file only its owner can read or write (mode 0600), atomically.

    The file is created 0600 (never wider, whatever the umask) under a temporary name in the
    same folder, flushed to disk, renamed over ``path``, and the folder is flushed too: after
    a crash, ``path`` holds the old contents or the new, never a part. A link at ``path`` is
    replaced, not followed. For secrets: keystores, signed consents (bearer credentials).

    Args:
        path: Where to write; an existing file is replaced.
        text: The contents (UTF-8).

    Returns:
        The path written.

    Raises:
        OSError: If it cannot be written; its ``filename`` is ``path``.
    """
    target = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _sync_folder(target.parent)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, os.fspath(target)) from exc
    return target


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def key_from_env(var: str = PRIVATE_KEY_ENV) -> LocalAccount:
    """Load a private key (64 hex digits, ``0x`` optional) from an environment variable.

    Meant for servers and CI. Prefer a keystore file for people.

    Raises:
        PrivateKeyError: If the variable is unset or empty, or does not hold a valid key. The
            message never contains the value.
    """
    value = os.environ.get(var, "").strip()
    if not value:
        raise PrivateKeyError(f"environment variable {var} is not set")
    return parse_private_key(value, f"environment variable {var}")


def parse_private_key(value: str, source: str) -> LocalAccount:
    """The account of a private key given as 64 hex digits (``0x`` optional).

    Args:
        value: The key's text.
        source: Where it came from, for the message (never the value itself).

    Raises:
        PrivateKeyError: If ``value`` is not a valid secp256k1 private key. The message never
            contains the value.
    """
    digits = value.strip().removeprefix("0x").removeprefix("0X")
    if len(digits) != 64:
        raise PrivateKeyError(f"{source} does not hold a private key (expected 64 hex digits)")
    try:
        key = bytes.fromhex(digits)
        if not 0 < int.from_bytes(key, "big") < _SECP256K1_N:
            raise ValueError("out of range")
        account: LocalAccount = Account.from_key(key)
    except Exception:  # any failure here may carry the key in its message: never chain it
        raise PrivateKeyError(f"{source} does not hold a valid private key") from None
    return account
