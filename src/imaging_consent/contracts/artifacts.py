"""The compiled contract suite, shipped inside the package.

The JSON files in ``imaging_consent/artifacts/`` are generated from brownie's ``build/`` by
``make artifacts`` (``scripts/export_artifacts.py``); a test fails when they are stale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from imaging_consent.errors import ContractError

#: The contracts of the suite, in deployment order.
SUITE: tuple[str, ...] = ("ConsentRegistry", "StudyRegistry", "AccessLog")

ARTIFACT_DIR = Path(__file__).resolve().parent.parent / "artifacts"


@dataclass(frozen=True, slots=True)
class Artifact:
    """ABI and bytecode of one compiled contract."""

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str
    deployed_bytecode: str
    compiler: dict[str, Any]


def artifact_from_build(build: dict[str, Any]) -> dict[str, Any]:
    """Reduce a brownie build file to what the package ships."""
    return {
        "contractName": build["contractName"],
        "abi": build["abi"],
        "bytecode": build["bytecode"],
        "deployedBytecode": build["deployedBytecode"],
        "compiler": build["compiler"],
    }


@cache
def load_artifact(name: str) -> Artifact:
    """Return the packaged artifact of contract ``name``.

    Raises:
        ContractError: If the package has no artifact for ``name``.
    """
    path = ARTIFACT_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ContractError(
            f"no compiled artifact for {name} in {ARTIFACT_DIR}; run `make artifacts`"
        ) from None
    return Artifact(
        name=data["contractName"],
        abi=tuple(data["abi"]),
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        compiler=data["compiler"],
    )
