"""The ``imaging-consent`` command: its groups, and one error policy for all of them.

Errors print one red line on stderr and exit 1; usage errors exit 2; Ctrl-C exits 130. No
traceback is ever shown unless ``IMAGING_CONSENT_DEBUG=1`` is set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import typer
from rich.markup import escape

from imaging_consent.cli import audit, chain, consent, demo, deploy, fetch, site
from imaging_consent.cli.common import err_console, one_line
from imaging_consent.errors import ImagingConsentError

__all__ = ["DEBUG_ENV", "app", "main"]

DEBUG_ENV = "IMAGING_CONSENT_DEBUG"

app = typer.Typer(
    name="imaging-consent",
    help=(
        "Patient-controlled consent for medical imaging on Ethereum: deploy the contracts, "
        "register studies, grant and revoke consent, fetch images through the release gate, "
        "verify them and read the audit trail."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Each module's Typer: a named one (chain, site, consent) becomes a group, a nameless one adds
# its commands at the top level. The order here is the order of ``--help``.
for module in (deploy, fetch, audit, demo, chain, site, consent):
    app.add_typer(module.app)


def _fail(message: str, code: int = 1) -> int:
    err_console.print(f"[bold red]error:[/] [red]{escape(message)}[/]", soft_wrap=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console entry point calls ``sys.exit`` on it).

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.
    """
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)
    if not debug:
        # Library warnings would break the one-line error contract; they are logged with DEBUG.
        logging.getLogger("imaging_consent").setLevel(logging.ERROR)
    try:
        result = app(
            args=list(argv) if argv is not None else None,
            standalone_mode=False,
            prog_name="imaging-consent",
        )
    except typer.TyperException as exc:  # usage errors (2) and other click-style errors
        code = int(getattr(exc, "exit_code", 1))
        show = getattr(exc, "show", None)
        if show is not None and code == 2:
            show()
            return code
        return _fail(exc.format_message(), code)
    except typer.Abort:
        return _fail("aborted")
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
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
