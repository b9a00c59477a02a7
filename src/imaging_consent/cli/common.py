"""What every command shares: consoles, the connection options, keys, times and progress."""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from imaging_consent.chain import (
    KEYSTORE_PASSWORD_ENV,
    PRIVATE_KEY_ENV,
    ChainSession,
    TransactionSender,
    connect,
    key_from_env,
    load_keystore,
)
from imaging_consent.cli.config import ENV, Config, database_url
from imaging_consent.consent.inputs import parse_address
from imaging_consent.contracts.deployment import Suite, load, sender_for
from imaging_consent.contracts.manifest import manifest_path
from imaging_consent.dicom import SitePepper, load_pepper
from imaging_consent.errors import ImagingConsentError, InvalidAddressError, SignerError

__all__ = [
    "UNCHECKED_FLAG",
    "AcceptUncheckedOpt",
    "AllowInsecureRpcOpt",
    "Command",
    "ConfigOpt",
    "JsonOpt",
    "KeystoreOpt",
    "ManifestOpt",
    "RpcUrlOpt",
    "UsageProblem",
    "Workspace",
    "address",
    "err_console",
    "iso_utc",
    "one_line",
    "option_group",
    "out_console",
    "parse_study_key",
    "parse_when",
    "print_json",
    "progress",
    "spinner",
    "with_workspace",
]


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal (pipes, tests, CI) rich would wrap at 80 columns and cut addresses short;
    # COLUMNS, when set, is the width asked for (rich reads it).
    width = None if stream.isatty() or os.environ.get("COLUMNS", "").isdigit() else 200
    # soft_wrap: messages are never hard-wrapped (commands stay copy-pastable); tables still fit.
    return Console(stderr=stderr, highlight=False, width=width, soft_wrap=True)


out_console = _console(stderr=False)
err_console = _console(stderr=True)


class UsageProblem(typer.BadParameter):
    """A bad combination of options (exit code 2)."""


# --- the connection options, declared once ---------------------------------------------------

RpcUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        help=f"JSON-RPC endpoint (env {ENV['rpc_url']}; config rpc_url; default 127.0.0.1:8545)",
        show_default=False,
    ),
]
AllowInsecureRpcOpt = Annotated[
    bool,
    typer.Option(
        "--allow-insecure-rpc",
        help=(
            f"Accept a plain http:// --rpc-url to a node that is not on this machine (env "
            f"{ENV['allow_insecure_rpc']}=1; config allow_insecure_rpc = true). Its answers "
            "could be forged in transit: prefer https://."
        ),
    ),
]
ManifestOpt = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        help=f"Deployment manifest (env {ENV['manifest']}; default deployments/<chainId>.json)",
        show_default=False,
    ),
]
KeystoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--keystore",
        help=(
            f"Keystore file to sign with (env {ENV['keystore']}); password from "
            f"{KEYSTORE_PASSWORD_ENV} or a hidden prompt. Without one: {PRIVATE_KEY_ENV}."
        ),
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file (env IMAGING_CONSENT_CONFIG; default ./imaging-consent.toml, "
        "then ~/.config/imaging-consent/config.toml)",
        show_default=False,
    ),
]

Command = Callable[..., None]


def option_group(
    name: str, make: Callable[..., object], options: Mapping[str, tuple[object, object]]
) -> Callable[[Command], Command]:
    """A decorator that gives commands a group of options declared once.

    The decorated command declares one parameter, ``name``, instead of the options. Typer is
    shown the command's own parameters followed by ``options``, so they are typed after the
    subcommand like any other option; the command is called with ``make(**their values)`` in
    their place.

    Args:
        name: The command's parameter that receives what ``make`` returns.
        make: Builds that value from the options (it may raise :class:`UsageProblem`).
        options: Each option's parameter name, ``Annotated`` type and default.

    Raises:
        TypeError: If a decorated command has no parameter ``name``.
    """
    added = [
        inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for key, (kind, default) in options.items()
    ]

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        if name not in signature.parameters:
            raise TypeError(f"{command!r} has no parameter {name!r} for its options")
        params = [p for p in signature.parameters.values() if p.name != name] + added

        @functools.wraps(command)
        def run(**values: Any) -> None:
            given = {key: values.pop(key) for key in options}
            command(**values, **{name: make(**given)})

        run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        return run

    return decorate


def with_workspace(*, signs: bool = True) -> Callable[[Command], Command]:
    """Give a command ``--rpc-url``, ``--allow-insecure-rpc``, ``--manifest``, ``--keystore``
    and ``--config``.

    The command takes a ``ws: Workspace`` parameter, made from those options, instead of them.

    Args:
        signs: Whether the command signs transactions (and so takes ``--keystore``).
    """
    options: dict[str, tuple[object, object]] = {
        "rpc_url": (RpcUrlOpt, None),
        "allow_insecure_rpc": (AllowInsecureRpcOpt, False),
        "manifest": (ManifestOpt, None),
        "keystore": (KeystoreOpt, None),
        "config": (ConfigOpt, None),
    }
    if not signs:
        del options["keystore"]
    return option_group("ws", Workspace, options)


class Workspace:
    """One command's configuration, and the session, suite and signer made from it on demand."""

    def __init__(
        self,
        *,
        rpc_url: str | None = None,
        allow_insecure_rpc: bool = False,
        manifest: Path | None = None,
        keystore: Path | None = None,
        config: Path | None = None,
    ) -> None:
        """Keep the options; the settings are resolved on first use (see :attr:`config`)."""
        self._rpc_url = rpc_url
        self._allow_insecure_rpc = allow_insecure_rpc
        self._manifest = manifest
        self._keystore = keystore
        self._config_file = config
        self._config: Config | None = None
        self._session: ChainSession | None = None
        self._suite: Suite | None = None

    @property
    def config(self) -> Config:
        """The settings: option, else environment, else config file, else default.

        Raises:
            ConfigError: If the config file is named but missing, or is malformed.
        """
        if self._config is None:
            self._config = Config.resolve(
                rpc_url=self._rpc_url,
                allow_insecure_rpc=True if self._allow_insecure_rpc else None,
                manifest=self._manifest,
                keystore=self._keystore,
                config_file=self._config_file,
            )
        return self._config

    @property
    def session(self) -> ChainSession:
        """The connected chain session.

        Raises:
            ChainUnavailableError: If the endpoint cannot be reached.
            InsecureEndpointError: If it is plain HTTP to a remote node, not allowed.
        """
        if self._session is None:
            config = self.config
            self._session = connect(config.rpc_url, allow_insecure_http=config.allow_insecure_rpc)
        return self._session

    @property
    def manifest_path(self) -> Path:
        """The manifest to read or write (``deployments/<chainId>.json`` by default)."""
        if self.config.manifest is not None:
            return self.config.manifest
        return manifest_path("deployments", self.session.chain_id)

    @property
    def suite(self) -> Suite:
        """The deployed suite, checked against the chain.

        Raises:
            ManifestError: If the manifest is missing or malformed.
            WrongChainError: If it is for another chain.
            ContractError: If its addresses hold no code.
        """
        if self._suite is None:
            self._suite = load(self.session, self.manifest_path)
        return self._suite

    def index_url(self, explicit: str | None = None) -> str | None:
        """The audit index to use: ``explicit`` (``--index``), else the configured one, else
        ``index-<chainId>.sqlite3`` beside the manifest if that file exists; None if none.
        """
        if explicit:
            return database_url(explicit)
        if self.config.index is not None:
            return self.config.index
        default = self.default_index_path
        return database_url(str(default)) if default.exists() else None

    @property
    def default_index_path(self) -> Path:
        """Where ``index sync`` keeps the index when none is configured."""
        return self.manifest_path.parent / f"index-{self.session.chain_id}.sqlite3"

    def signer(self) -> LocalAccount:
        """The account to sign with: the keystore if configured, else the environment key.

        Raises:
            KeystoreError: If the keystore is missing, malformed, or the password is wrong.
            PrivateKeyError: If no keystore is configured and the environment has no key.
        """
        if self.config.keystore is not None:
            return load_keystore(self.config.keystore)
        if os.environ.get(PRIVATE_KEY_ENV, "").strip():
            return key_from_env()
        raise SignerError(
            f"no signing key: pass --keystore PATH (or set {ENV['keystore']}) "
            f"or set {PRIVATE_KEY_ENV}"
        )

    def sender(self, account: LocalAccount | None = None) -> TransactionSender:
        """A transaction sender for ``account`` (default: :meth:`signer`) that decodes errors."""
        return sender_for(self.session, account if account is not None else self.signer())

    def pepper(self) -> SitePepper:
        """The site pepper, from the config's file or the environment. Never printed.

        Raises:
            KeyMaterialError: If none is configured or it is malformed or insecure.
        """
        return load_pepper(self.config.site_pepper_file)

    def store_root(self, given: Path | None) -> Path:
        """The site's DICOM folder: ``given``, else the configured store.

        Raises:
            UsageProblem: If neither is set.
        """
        root = given if given is not None else self.config.store
        if root is None:
            raise UsageProblem(
                f"no image store: pass --store DIR (or set {ENV['store']}, or store in the config)"
            )
        return root


# --- parsing ----------------------------------------------------------------------------------


#: The flag that accepts an address without an EIP-55 checksum where one is required.
UNCHECKED_FLAG = "--accept-unchecksummed"
AcceptUncheckedOpt = Annotated[
    bool,
    typer.Option(
        UNCHECKED_FLAG,
        help="Accept an all-lowercase (or all-uppercase) address: it has no EIP-55 checksum, "
        "so a mistyped character cannot be caught.",
    ),
]


def address(
    value: str, what: str = "address", *, checksum_flag: str | None = None
) -> ChecksumAddress:
    """``value`` as a checksummed address (a mixed-case one must match its EIP-55 checksum).

    Args:
        value: The address as typed.
        what: The option or argument it came from, for the message (``--grantee``).
        checksum_flag: If given, an address without a checksum (all lower or upper case) is
            refused unless the user passed this flag (the caller then omits it); the message
            names it.

    Raises:
        UsageProblem: If it is not a 20-byte hex address, its checksum is wrong, or it has
            none and ``checksum_flag`` is given (exit code 2).
    """
    try:
        return parse_address(value.strip(), what, require_checksum=checksum_flag is not None)
    except InvalidAddressError as exc:
        hint = (
            f" (or pass {checksum_flag} if you have checked it)" if "no EIP-55" in str(exc) else ""
        )
        raise UsageProblem(f"{exc}{hint}") from None


def parse_study_key(value: str) -> bytes:
    """A 32-byte study key from 0x-hex.

    Raises:
        UsageProblem: If it is not 64 hex digits.
    """
    digits = value.strip().removeprefix("0x")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise UsageProblem(f"a study key is 0x and 64 hex digits, got {value!r}")
    return raw


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(value: str, now: int | Callable[[], int], what: str) -> int:
    """A point in time as unix seconds: ``30d`` (from now), an ISO date or datetime.

    Durations take ``s``, ``m``, ``h``, ``d`` or ``w`` and count from ``now`` (unix seconds, or
    a function giving them, called only for a duration). An ISO date without a time means its
    start; a datetime without a timezone is read as UTC.

    Args:
        value: What the user typed.
        now: The current time, for durations.
        what: The option's name (``--expires``), for the message.

    Raises:
        UsageProblem: If ``value`` is neither.
    """
    match = _DURATION.match(value)
    if match:
        start = now() if callable(now) else now
        return start + int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageProblem(
            f"{what}: expected a duration such as 30d or 12h, or an ISO date such as "
            f"2027-01-31 or 2027-01-31T12:00:00+01:00; got {value!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


# --- JSON output ------------------------------------------------------------------------------

#: The ``--json`` option every command that prints a table or a result takes.
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document on stdout (stable keys, full values) instead of text.",
    ),
]


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, enum.Enum):
        return value.name if not isinstance(value.value, str) else value.value
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def print_json(document: Mapping[str, Any] | list[Any]) -> None:
    """Print ``document`` as the command's one JSON document (bytes as 0x-hex, enums by name,
    datetimes as ISO 8601 UTC, dataclasses as objects), sorted keys, then a newline."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=_json_value) + "\n")
    sys.stdout.flush()


def iso_utc(timestamp: int) -> str:
    """Unix seconds as ISO 8601 in UTC (``2027-01-31T12:00:00Z``): every time shown or named."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat().replace("+00:00", "Z")


# --- progress ---------------------------------------------------------------------------------


def progress() -> Progress:
    """A progress bar on stderr (stdout stays clean for results); vanishes when done."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


@contextmanager
def spinner(message: str) -> Iterator[None]:
    """A spinner on stderr while a slow step runs."""
    with err_console.status(message):
        yield


def one_line(exc: BaseException) -> str:
    """An exception as one line (messages with several lines are joined)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    if not text:
        text = type(exc).__name__
    if not isinstance(exc, ImagingConsentError) and isinstance(exc, OSError) and exc.strerror:
        filename = f"{exc.filename}: " if exc.filename else ""
        text = f"{filename}{exc.strerror}"
    return text
