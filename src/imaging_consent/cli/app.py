"""The ``imaging-consent`` command: its groups, and one error policy for all of them.

Errors print one red line on stderr and exit 1 (a refusal or a failure); usage errors exit 2
(a bad or missing option, and a malformed address, purpose, time, key or RPC URL wherever it was
given); Ctrl-C exits 130 and SIGTERM 143 (:mod:`.entry` installs their handlers first). No
traceback is ever shown unless ``IMAGING_CONSENT_DEBUG=1`` is set.

Log lines, and Python warnings, go to the file named by ``IMAGING_CONSENT_LOG_FILE`` (created
mode 0600) from INFO, or from DEBUG with ``IMAGING_CONSENT_DEBUG=1``. Without a log file, only
ERROR lines reach stderr (every line with ``IMAGING_CONSENT_DEBUG=1``). pydicom's warnings and
log lines can quote element values (personal data), so they are kept only with
``IMAGING_CONSENT_DEBUG=1``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from importlib import metadata
from typing import Annotated

import typer
from rich.markup import escape

import imaging_consent
from imaging_consent.cli import audit, chain, consent, demo, deploy, fetch, index, keys, site
from imaging_consent.cli import serve as serve_command
from imaging_consent.cli.common import UsageProblem, err_console, one_line, out_console
from imaging_consent.cli.entry import Interrupted
from imaging_consent.errors import (
    ImagingConsentError,
    InvalidAddressError,
    InvalidRpcUrlError,
    InvalidTimestampError,
    PrivateKeyError,
    UnknownPurposeError,
)

__all__ = ["DEBUG_ENV", "LOG_FILE_ENV", "USAGE_ERRORS", "app", "run", "version"]

DEBUG_ENV = "IMAGING_CONSENT_DEBUG"
LOG_FILE_ENV = "IMAGING_CONSENT_LOG_FILE"
#: Loggers whose lines may quote DICOM element values: logged only at DEBUG.
_QUOTING_LOGGERS = ("pydicom", "py.warnings")
#: Malformed input, wherever it was given (option, environment, config): exit 2 like a bad option.
USAGE_ERRORS: tuple[type[ImagingConsentError], ...] = (
    InvalidAddressError,
    InvalidRpcUrlError,
    InvalidTimestampError,
    PrivateKeyError,
    UnknownPurposeError,
)

app = typer.Typer(
    name="imaging-consent",
    help=(
        "Patient-controlled consent for medical imaging on Ethereum: deploy the contracts, "
        "register studies, grant and revoke consent, fetch images through the release gate, "
        "verify them and read the audit trail."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Each module's Typer: a named one (chain, site, consent) becomes a group, a nameless one adds
# its commands at the top level. The order here is the order of ``--help``.
for module in (deploy, fetch, audit, index, demo, chain, site, consent, keys):
    app.add_typer(module.app)
app.add_typer(serve_command.app)


def version() -> str:
    """The installed package's version (the source tree's when it is run without installing)."""
    try:
        return metadata.version("imaging-consent")
    except metadata.PackageNotFoundError:
        return imaging_consent.__version__


def _print_version(asked: bool) -> None:
    if asked:
        out_console.print(f"imaging-consent {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Options that come before the command (``--version``, shell completion)."""


_SECRET = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")


def _fail(message: str, code: int = 1) -> int:
    err_console.print(f"[bold red]error:[/] [red]{escape(message)}[/]", soft_wrap=True)
    return code


def _quotes_values(record: logging.LogRecord) -> bool:
    return any(record.name == n or record.name.startswith(f"{n}.") for n in _QUOTING_LOGGERS)


def _configure_logging(debug: bool) -> None:
    """Send log lines and Python warnings to the log file, else only ERROR lines to stderr.

    Raises:
        OSError: If the log file cannot be opened.
    """
    logging.captureWarnings(True)
    log_file = os.environ.get(LOG_FILE_ENV, "").strip()
    handler: logging.Handler
    if log_file:
        os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setLevel(logging.DEBUG if debug else logging.ERROR)
    if not debug:
        handler.addFilter(lambda record: not _quotes_values(record))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO, handlers=[handler], force=True
    )


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (:func:`.entry.main` calls it, its handlers set).

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.
    """
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        _configure_logging(debug)
    except OSError as exc:
        return _fail(f"cannot open log file {os.environ.get(LOG_FILE_ENV)}: {exc.strerror}")
    try:
        result = app(
            args=list(argv) if argv is not None else None,
            standalone_mode=False,
            prog_name="imaging-consent",
        )
    except UsageProblem as exc:  # a value or combination we refuse: one line, like every error
        return _fail(exc.message, 2)
    except typer.TyperException as exc:  # usage errors (2) and other click-style errors
        code = int(getattr(exc, "exit_code", 1))
        # One line, like every error; a secret typed where it does not belong (a private key
        # as an extra argument) is not echoed back.
        message = _SECRET.sub("0x<hidden>", exc.format_message())
        return _fail(f"{message} (see --help)" if code == 2 else message, code)
    except typer.Abort:
        return _fail("aborted")
    except Interrupted as interrupt:
        return _fail("interrupted", interrupt.exit_code)
    except USAGE_ERRORS as exc:
        if debug:
            err_console.print_exception()
        return _fail(one_line(exc), 2)
    except ImagingConsentError as exc:
        if debug:
            err_console.print_exception()
        return _fail(one_line(exc))
    except (OSError, ValueError, LookupError, PermissionError) as exc:
        if debug:
            err_console.print_exception()
        return _fail(one_line(exc))
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if debug:
            err_console.print_exception()
        return _fail(
            f"unexpected {type(exc).__name__}: {one_line(exc)} (set {DEBUG_ENV}=1 for details)"
        )
    return int(result) if isinstance(result, int) else 0
