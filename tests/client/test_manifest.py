"""The deployment manifest: round trip, atomic write and strict parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imaging_consent.contracts.manifest import (
    CompilerSettings,
    DeployedContract,
    Manifest,
    RoleGrant,
    manifest_path,
)
from imaging_consent.errors import ContractError, ManifestError

A = "0x66aB6D9362d4F35596279692F0251Db635165871"
B = "0x3194cBDC3dbcd3E11a07892e7bA5c3394048Cc87"


def _manifest() -> Manifest:
    return Manifest(
        chain_id=1337,
        deployer=A,  # type: ignore[arg-type]
        block_number=1,
        deployed_at="2026-11-28T12:44:54Z",
        compiler=CompilerSettings("0.8.37+commit.f401782d", "shanghai", True, 10000, False),
        contracts={"ConsentRegistry": DeployedContract(B, "0x" + "ab" * 32, 1)},  # type: ignore[arg-type]
        roles=(RoleGrant("StudyRegistry", "SITE_ROLE", A),),  # type: ignore[arg-type]
    )


def test_manifest_round_trips_through_file(tmp_path: Path) -> None:
    manifest = _manifest()

    path = manifest.write(manifest_path(tmp_path / "deployments", 1337))

    assert path == tmp_path / "deployments" / "1337.json"
    assert Manifest.read(path) == manifest
    assert [p.name for p in path.parent.iterdir()] == ["1337.json"]


def test_manifest_address_names_missing_contract() -> None:
    manifest = _manifest()

    assert manifest.address("ConsentRegistry") == B
    with pytest.raises(ManifestError, match="AccessLog"):
        manifest.address("AccessLog")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema=2), "schema"),
        (lambda d: d.update(deployer=A.lower()), "checksummed"),
        (lambda d: d.update(extra=1), "unknown keys"),
        (lambda d: d.pop("blockNumber"), "missing keys"),
        (lambda d: d["contracts"]["ConsentRegistry"].update(txHash="0x12"), "txHash"),
        (lambda d: d["compiler"]["optimizer"].update(runs=-1), "runs"),
    ],
)
def test_manifest_from_json_rejects_malformed(change, message) -> None:  # type: ignore[no-untyped-def]
    data = _manifest().to_dict()
    change(data)

    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps(data))


def test_manifest_read_missing_file_is_contract_error(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="no deployment manifest"):
        Manifest.read(tmp_path / "1.json")


def test_manifest_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        Manifest.from_json("not json")
