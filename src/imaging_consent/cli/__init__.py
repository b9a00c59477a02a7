"""The ``imaging-consent`` command-line interface (typer + rich).

The command wiring lives here; the stories and operations it calls live in the layers below
(``consent``, ``release``, ``audit``, ``demo``).
"""

from imaging_consent.cli.app import app, main

__all__ = ["app", "main"]
