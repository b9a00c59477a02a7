"""The ``imaging-consent`` command-line interface (typer + rich).

One module per command or group (``deploy``, ``fetch`` and ``verify``, ``audit``, ``demo``,
``chain``, ``site``, ``consent``), each with its own ``typer.Typer`` that :mod:`.app` adds; the
operations they call live in the layers below (``consent``, ``provenance``, ``access_log``,
``gateway``).
"""

from imaging_consent.cli.app import app, main

__all__ = ["app", "main"]
