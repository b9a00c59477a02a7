"""The ``imaging-consent`` command-line interface (typer + rich).

One module per command or group (``deploy``, ``fetch`` and ``verify``, ``audit``, ``demo``,
``chain``, ``site``, ``consent``), each with its own ``typer.Typer`` that :mod:`.app` adds; the
operations they call live in the layers below (``consent``, ``provenance``, ``access_log``,
``gateway``). Importing this package is cheap: :func:`main` (:mod:`.entry`) installs the signal
handlers before it imports :mod:`.app` (the typer application) and all the commands need.
"""

from imaging_consent.cli.entry import main

__all__ = ["main"]
