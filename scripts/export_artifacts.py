"""Copy the compiled suite from brownie's build/ into the package as data.

Run by `make artifacts` after `brownie compile`. The Python package ships these files so a plain
`pip install` can deploy and call the contracts without brownie or a compiler.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from imaging_consent.contracts.artifacts import (  # noqa: E402
    ARTIFACT_DIR,
    SUITE,
    artifact_from_build,
)


def main() -> None:
    ARTIFACT_DIR.mkdir(parents=True, exist_ok=True)
    for name in SUITE:
        build = json.loads((ROOT / "build" / "contracts" / f"{name}.json").read_text())
        target = ARTIFACT_DIR / f"{name}.json"
        target.write_text(json.dumps(artifact_from_build(build), indent=1, sort_keys=True) + "\n")
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
