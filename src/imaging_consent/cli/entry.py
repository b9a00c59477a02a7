"""The ``imaging-consent`` entry point: Ctrl-C and SIGTERM are handled from its first instant.

This module imports only the standard library, so the handlers are in place before the heavy
imports (web3, pydicom, rich) start: an interrupt at any moment ends the command with one line
and exit code 130 (Ctrl-C) or 143 (SIGTERM), never a traceback. The handlers raise
:class:`Interrupted`, so every ``finally`` and context manager runs: a local chain the command
started is stopped. While that clean-up runs, further signals are ignored.

:class:`Interrupted` is not a :class:`KeyboardInterrupt` on purpose: typer turns those into a
silent exit 130, even after SIGTERM, and code that catches them would swallow a stop request.
"""

from __future__ import annotations

import signal
import sys

TYPE_CHECKING = False  # not typing's: importing typing here would delay the handlers
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import FrameType
    from typing import Any, TypeAlias

    Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

__all__ = ["Interrupted", "main"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Ctrl-C (SIGINT) or SIGTERM asked the command to stop.

    Attributes:
        signum: The signal received.
        exit_code: The shell's ``128 + signum``: 130 after Ctrl-C, 143 after SIGTERM.
    """

    def __init__(self, signum: int) -> None:
        """Record which signal stopped the command."""
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Stop the command: ignore later signals while it cleans up, then raise.

    Raises:
        Interrupted: Always.
    """
    for each in _SIGNALS:
        signal.signal(each, signal.SIG_IGN)
    raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``imaging-consent`` command and return its exit code.

    The console script and ``python -m imaging_consent`` call ``sys.exit`` on it.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.
    """
    previous: dict[int, Handler] = {}
    try:
        for each in _SIGNALS:
            try:
                previous[each] = signal.signal(each, _on_signal)
            except ValueError:  # not the main thread: signals are the main thread's
                break
        from imaging_consent.cli.app import run  # the heavy imports, after the handlers

        return run(argv)
    except Interrupted as interrupt:  # while importing, before the app's own handling
        sys.stderr.write("error: interrupted\n")
        sys.stderr.flush()
        return interrupt.exit_code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
