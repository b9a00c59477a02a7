"""``python -m imaging_consent.cli``."""

from __future__ import annotations

import sys

from imaging_consent.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
