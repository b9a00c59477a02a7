"""The package's shipped ABI and bytecode match the contract sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imaging_consent.contracts.artifacts import SUITE, artifact_from_build, load_artifact

BUILD = Path(__file__).resolve().parents[2] / "build" / "contracts"


@pytest.mark.parametrize("name", SUITE)
def test_artifact_matches_build(name: str) -> None:
    build_file = BUILD / f"{name}.json"
    assert build_file.exists(), f"{build_file} missing: run `make compile` first"

    shipped = load_artifact(name)

    expected = artifact_from_build(json.loads(build_file.read_text()))
    assert list(shipped.abi) == expected["abi"], f"{name} ABI is stale: run `make artifacts`"
    assert shipped.bytecode == expected["bytecode"], f"{name} bytecode is stale: `make artifacts`"
