"""The per-chain deployment manifest, ``deployments/<chainId>.json``.

``scripts/deploy.py`` (brownie) writes it, and so does any plain-web3 deployment: both build a
:class:`Manifest` and call :meth:`Manifest.write`. Readers call :meth:`Manifest.read`. The JSON
schema (version 2) is documented in docs/deployments.md; keys are camelCase, addresses
EIP-55 checksummed, and unknown keys are rejected so that a typo never passes silently.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress, HexAddress, HexStr
from eth_utils.address import is_checksum_address

from imaging_consent.errors import ManifestError, ManifestExistsError

SCHEMA_VERSION = 2
"""Version of the manifest's JSON layout; bumped on any incompatible change."""


def manifest_path(directory: str | os.PathLike[str], chain_id: int) -> Path:
    """Return ``<directory>/<chain_id>.json``."""
    return Path(directory) / f"{chain_id}.json"


def _address(value: Any, where: str) -> ChecksumAddress:
    if not isinstance(value, str) or not is_checksum_address(value):
        raise ManifestError(f"{where} is not a checksummed address: {value!r}")
    return ChecksumAddress(HexAddress(HexStr(value)))


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(f"{where} is not a non-negative integer: {value!r}")
    return value


def _keys(data: Any, required: set[str], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ManifestError(f"{where} is not a JSON object")
    if set(data) != required:
        missing, extra = sorted(required - set(data)), sorted(set(data) - required)
        raise ManifestError(f"{where}: missing keys {missing}, unknown keys {extra}")
    return data


@dataclass(frozen=True, slots=True)
class CompilerSettings:
    """How the deployed bytecode was compiled.

    Attributes:
        solc_version: Full compiler version, e.g. ``0.8.37+commit.f401782d``.
        evm_version: Target EVM version, e.g. ``shanghai``.
        optimizer_enabled: Whether the optimizer ran.
        optimizer_runs: The optimizer's ``runs`` setting.
        via_ir: Whether the IR pipeline was used.
    """

    solc_version: str
    evm_version: str
    optimizer_enabled: bool
    optimizer_runs: int
    via_ir: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this section."""
        return {
            "solcVersion": self.solc_version,
            "evmVersion": self.evm_version,
            "optimizer": {"enabled": self.optimizer_enabled, "runs": self.optimizer_runs},
            "viaIR": self.via_ir,
        }

    @classmethod
    def from_dict(cls, data: Any) -> CompilerSettings:
        """Parse the JSON object of this section.

        Raises:
            ManifestError: If a key is missing, unknown or of the wrong type.
        """
        d = _keys(data, {"solcVersion", "evmVersion", "optimizer", "viaIR"}, "compiler")
        opt = _keys(d["optimizer"], {"enabled", "runs"}, "compiler.optimizer")
        if not all(isinstance(d[k], str) for k in ("solcVersion", "evmVersion")):
            raise ManifestError("compiler.solcVersion and compiler.evmVersion must be strings")
        if not isinstance(opt["enabled"], bool) or not isinstance(d["viaIR"], bool):
            raise ManifestError("compiler.optimizer.enabled and compiler.viaIR must be booleans")
        return cls(
            solc_version=d["solcVersion"],
            evm_version=d["evmVersion"],
            optimizer_enabled=opt["enabled"],
            optimizer_runs=_int(opt["runs"], "compiler.optimizer.runs"),
            via_ir=d["viaIR"],
        )


@dataclass(frozen=True, slots=True)
class DeployedContract:
    """One deployed contract.

    Attributes:
        address: Its address.
        tx_hash: The deployment transaction, ``0x``-prefixed hex.
        block_number: The block that holds the deployment.
    """

    address: ChecksumAddress
    tx_hash: str
    block_number: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this contract."""
        return {"address": self.address, "txHash": self.tx_hash, "blockNumber": self.block_number}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> DeployedContract:
        """Parse one contract's JSON object.

        Raises:
            ManifestError: If a key is missing, unknown or malformed.
        """
        d = _keys(data, {"address", "txHash", "blockNumber"}, where)
        tx_hash = d["txHash"]
        if not isinstance(tx_hash, str) or not tx_hash.startswith("0x") or len(tx_hash) != 66:
            raise ManifestError(f"{where}.txHash is not a 32-byte hex string: {tx_hash!r}")
        return cls(
            address=_address(d["address"], f"{where}.address"),
            tx_hash=tx_hash,
            block_number=_int(d["blockNumber"], f"{where}.blockNumber"),
        )


@dataclass(frozen=True, slots=True)
class RoleGrant:
    """A role granted at deployment.

    Attributes:
        contract: Name of the contract, e.g. ``StudyRegistry``.
        role: Name of the role, e.g. ``SITE_ROLE`` (granted by the admin), or ``GATEWAY`` /
            ``EMERGENCY`` (an AccessLog appointment, made by a site for itself).
        account: The account that received it.
        by: Who granted it: the admin, or the appointing site.
    """

    contract: str
    role: str
    account: ChecksumAddress
    by: ChecksumAddress

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this grant."""
        return {
            "contract": self.contract,
            "role": self.role,
            "account": self.account,
            "by": self.by,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RoleGrant:
        """Parse one role grant.

        Raises:
            ManifestError: If a key is missing, unknown or malformed.
        """
        d = _keys(data, {"contract", "role", "account", "by"}, where)
        if not isinstance(d["contract"], str) or not isinstance(d["role"], str):
            raise ManifestError(f"{where}: contract and role must be strings")
        return cls(
            d["contract"],
            d["role"],
            _address(d["account"], f"{where}.account"),
            _address(d["by"], f"{where}.by"),
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """Where the contracts of one chain live, and how they got there.

    Attributes:
        chain_id: EIP-155 chain id; the file is named after it.
        deployer: The account that sent the deployment transactions.
        block_number: The first deployment block: indexers start scanning here.
        deployed_at: Timestamp of that block, ISO 8601 UTC (``2026-11-28T12:00:00Z``).
        compiler: How the bytecode was compiled.
        contracts: Contract name to deployment, in deployment order.
        roles: Roles granted during deployment, in order.
        schema: Layout version, :data:`SCHEMA_VERSION`.
    """

    chain_id: int
    deployer: ChecksumAddress
    block_number: int
    deployed_at: str
    compiler: CompilerSettings
    contracts: Mapping[str, DeployedContract]
    roles: tuple[RoleGrant, ...] = ()
    schema: int = field(default=SCHEMA_VERSION)

    def address(self, name: str) -> ChecksumAddress:
        """The address of contract ``name``.

        Raises:
            ManifestError: If the manifest has no such contract.
        """
        try:
            return self.contracts[name].address
        except KeyError:
            raise ManifestError(
                f"no contract {name!r} in the manifest of chain {self.chain_id}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict."""
        return {
            "schema": self.schema,
            "chainId": self.chain_id,
            "deployer": self.deployer,
            "blockNumber": self.block_number,
            "deployedAt": self.deployed_at,
            "compiler": self.compiler.to_dict(),
            "contracts": {name: c.to_dict() for name, c in self.contracts.items()},
            "roles": [r.to_dict() for r in self.roles],
        }

    def to_json(self) -> str:
        """The manifest as indented JSON text, ending with a newline."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest.

        Raises:
            ManifestError: If the text is not JSON, has another schema version, or any field is
                missing, unknown or malformed.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"manifest is not valid JSON: {exc}") from None
        required = {"schema", "chainId", "deployer", "blockNumber", "deployedAt", "compiler"}
        d = _keys(data, required | {"contracts", "roles"}, "manifest")
        if d["schema"] != SCHEMA_VERSION:
            raise ManifestError(f"unsupported manifest schema {d['schema']!r}")
        if not isinstance(d["deployedAt"], str) or not isinstance(d["contracts"], dict):
            raise ManifestError("manifest: deployedAt must be a string, contracts an object")
        if not isinstance(d["roles"], list):
            raise ManifestError("manifest: roles must be a list")
        return cls(
            chain_id=_int(d["chainId"], "chainId"),
            deployer=_address(d["deployer"], "deployer"),
            block_number=_int(d["blockNumber"], "blockNumber"),
            deployed_at=d["deployedAt"],
            compiler=CompilerSettings.from_dict(d["compiler"]),
            contracts={
                name: DeployedContract.from_dict(c, f"contracts.{name}")
                for name, c in d["contracts"].items()
            },
            roles=tuple(RoleGrant.from_dict(r, f"roles[{i}]") for i, r in enumerate(d["roles"])),
        )

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest to ``path`` atomically (a temporary file, then a rename).

        Returns:
            The path written.

        Raises:
            OSError: If the directory cannot be created or written.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.to_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read a manifest file.

        Raises:
            ManifestError: If the file does not exist or is malformed.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ManifestError(f"no deployment manifest at {path}") from None
        return cls.from_json(text)


def replaced_path(path: str | os.PathLike[str], deployed_at: str) -> Path:
    """Where :func:`set_aside` keeps a replaced manifest: ``<stem>.replaced-<stamp>.json``.

    The stamp is ``deployed_at`` with only its letters and digits kept
    (``2026-11-28T12:44:54Z`` gives ``20261128T124454Z``), so it is safe in any file system.
    """
    target = Path(path)
    stamp = re.sub(r"[^0-9A-Za-z]", "", deployed_at)[:32] or "unknown"
    return target.with_name(f"{target.stem}.replaced-{stamp}{target.suffix}")


def refuse_existing(
    path: str | os.PathLike[str], *, hint: str = "pass replace=True to move it aside"
) -> None:
    """Refuse to deploy over an existing manifest.

    Raises:
        ManifestExistsError: If ``path`` exists; the message names it and ends with ``hint``.
    """
    target = Path(path)
    if target.exists():
        raise ManifestExistsError(
            f"{target} already exists: a new deployment would strand every study, consent and "
            f"log of the contracts it names; {hint}"
        )


def set_aside(path: str | os.PathLike[str]) -> Path:
    """Move an existing manifest to :func:`replaced_path` in the same folder; never overwrite.

    The stamp comes from the old manifest's ``deployedAt`` (from the file's modification time
    if it cannot be read); ``-2``, ``-3``... are added if that name is taken.

    Returns:
        The path the old manifest now has.

    Raises:
        OSError: If it cannot be moved.
    """
    target = Path(path)
    try:
        deployed_at = Manifest.read(target).deployed_at
    except ManifestError:
        modified = datetime.fromtimestamp(target.stat().st_mtime, tz=timezone.utc)
        deployed_at = modified.strftime("%Y%m%dT%H%M%SZ")
    aside = first = replaced_path(target, deployed_at)
    counter = 1
    while aside.exists():
        counter += 1
        aside = first.with_name(f"{first.stem}-{counter}{first.suffix}")
    target.rename(aside)
    return aside


def write_new(
    manifest: Manifest, path: str | os.PathLike[str], *, replace: bool = False
) -> Path | None:
    """Write a new deployment's manifest to ``path``, never silently over an old one.

    Args:
        manifest: The new deployment's manifest.
        path: Where to write it.
        replace: If a manifest is already there, move it aside first (:func:`set_aside`)
            instead of refusing.

    Returns:
        Where the old manifest was moved, or None if there was none.

    Raises:
        ManifestExistsError: If ``path`` exists and ``replace`` is False.
        OSError: If a file cannot be moved or written.
    """
    target = Path(path)
    aside = None
    if target.exists():
        if not replace:
            refuse_existing(target)
        aside = set_aside(target)
    manifest.write(target)
    return aside
