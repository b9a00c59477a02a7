"""``python -m imaging_consent.cli``: the same as the ``imaging-consent`` command."""

from __future__ import annotations

import sys

from imaging_consent.cli.entry import main

if __name__ == "__main__":
    sys.exit(main())
