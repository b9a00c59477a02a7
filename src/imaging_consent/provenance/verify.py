"""Checking released instances against the chain, and the on-disk form of a release.

A receiver needs no trust in the gateway: it recomputes the pixelHash from the bytes it got,
forms the leaf with the instance key the gateway handed over, and asks
``StudyRegistry.verifyInstance(site, studyKey, leaf, proof)``. De-identification does not touch
PixelData, so a de-identified instance verifies too (an instance without PixelData is hashed
whole, so it verifies only if released unchanged).

:func:`write_release` writes ``<SOP Instance UID>.dcm`` files and a ``proof.json``;
:func:`verify_release` checks such a release later (the CLI's ``fetch`` and ``verify``): every
file it names must be there and prove against the chain, and no other ``.dcm`` file may be
there. :func:`verify_files` checks single files by name.

``proof.json`` (version 1)::

    {"version": 2, "site": "0x..", "studyKey": "0x..", "requestId": "0x..", "identified": true,
     "breakGlass": false,
     "files": {"<name>.dcm": {"instanceKey": "0x..", "pixelHash": "0x..", "proof": ["0x..", ...]}}}

``pixelHash`` there is informational: verification always recomputes it from the file.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from pydicom.dataset import Dataset

from imaging_consent.contracts.deployment import Suite
from imaging_consent.dicom import dataset_bytes, dataset_pixel_hash, pixel_hash
from imaging_consent.errors import DicomError, ReleaseProofError
from imaging_consent.provenance.merkle import leaf_hash
from imaging_consent.provenance.released import ReleasedInstance, ReleasedStudy

__all__ = [
    "PROOF_FILE",
    "FileCheck",
    "FileStatus",
    "InstanceProof",
    "ReleaseCheck",
    "ReleaseProofs",
    "read_proofs",
    "verify_files",
    "verify_release",
    "verify_released",
    "write_release",
]

PROOF_FILE = "proof.json"
PROOF_VERSION = 2
_SAFE_NAME = re.compile(r"^[0-9A-Za-z.\-_]{1,64}$")


@dataclass(frozen=True, slots=True)
class InstanceProof:
    """What proves one released file against the study's content root."""

    instance_key: bytes
    pixel_hash: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ReleaseProofs:
    """The contents of a ``proof.json``."""

    site: ChecksumAddress
    study_key: bytes
    request_id: bytes
    identified: bool
    break_glass: bool
    files: MappingProxyType[str, InstanceProof]


def _pixel_hash_of(data: Dataset | bytes) -> bytes:
    if isinstance(data, bytes):
        return pixel_hash(io.BytesIO(data))
    digest = dataset_pixel_hash(data)
    if digest is None:
        return pixel_hash(io.BytesIO(dataset_bytes(data)))
    return digest


def _verify_leaf(
    suite: Suite, site: ChecksumAddress, study_key: bytes, leaf: bytes, proof: Sequence[bytes]
) -> bool:
    return suite.studies.verify_instance(site, study_key, leaf, proof)


def verify_released(
    suite: Suite,
    site: str,
    study_key: bytes,
    instance: ReleasedInstance | tuple[Dataset | bytes, bytes, Sequence[bytes]],
) -> bool:
    """Check a released instance against the study's current content root on chain.

    Args:
        suite: The deployed contracts.
        site: The site that released it (``Release.site``), whose namespace holds the study.
        study_key: The study's key (``Release.study_key``).
        instance: A :class:`ReleasedInstance` (its released bytes are re-hashed), or a
            ``(dataset or file bytes, instance_key, proof)`` triple.

    Returns:
        True if the pixel data recomputed from what was received proves against the root;
        False if it does not, or if the bytes are not readable DICOM.

    Raises:
        StudyNotRegisteredError: If the study key is not registered.
        ChainUnavailableError: If the chain cannot be reached (no answer is not "no").
    """
    if isinstance(instance, ReleasedInstance):
        data: Dataset | bytes = instance.to_bytes()
        key: bytes = instance.instance_key
        proof: Sequence[bytes] = instance.proof
    else:
        data, key, proof = instance
    try:
        digest = _pixel_hash_of(data)
    except DicomError:
        return False
    return _verify_leaf(suite, to_checksum_address(site), study_key, leaf_hash(key, digest), proof)


def _file_name(instance: ReleasedInstance, position: int) -> str:
    uid = instance.sop_instance_uid
    return f"{uid}.dcm" if _SAFE_NAME.match(uid) else f"instance-{position:05d}.dcm"


def write_release(release: ReleasedStudy, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write a release's instances as ``<SOP Instance UID>.dcm`` and their ``proof.json``.

    Args:
        release: What ``ImageGateway.release`` returned (a :class:`ReleasedStudy`).
        out_dir: The folder to write into (created if needed).

    Returns:
        The paths written: the DICOM files in release order, then ``proof.json``.

    Raises:
        OSError: If a file cannot be written.
        DeidentificationError: If a dataset cannot be encoded.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    files: dict[str, Any] = {}
    for position, instance in enumerate(release.instances, start=1):
        name = _file_name(instance, position)
        path = folder / name
        path.write_bytes(instance.to_bytes())
        written.append(path)
        files[name] = {
            "instanceKey": "0x" + instance.instance_key.hex(),
            "pixelHash": "0x" + instance.pixel_hash.hex(),
            "proof": ["0x" + p.hex() for p in instance.proof],
        }
    document = {
        "version": PROOF_VERSION,
        "site": release.site,
        "studyKey": "0x" + release.study_key.hex(),
        "requestId": "0x" + release.request_id.hex(),
        "identified": release.identified,
        "breakGlass": release.break_glass,
        "files": files,
    }
    proof_path = folder / PROOF_FILE
    proof_path.write_text(json.dumps(document, indent=2) + "\n")
    written.append(proof_path)
    return written


def _hash32(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ReleaseProofError(f"{what} must be a 0x-prefixed hex string")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise ReleaseProofError(f"{what} is not valid hex") from None
    if len(raw) != 32:
        raise ReleaseProofError(f"{what} must be 32 bytes")
    return raw


def _site(value: object) -> ChecksumAddress:
    if not isinstance(value, str):
        raise ReleaseProofError("site must be an address")
    try:
        return to_checksum_address(value)
    except ValueError:
        raise ReleaseProofError("site is not a valid address") from None


def read_proofs(path: str | os.PathLike[str]) -> ReleaseProofs:
    """Read a ``proof.json`` written by :func:`write_release`.

    Args:
        path: The ``proof.json`` file, or the folder holding it.

    Raises:
        ReleaseProofError: If the file is missing, malformed or of another version.
    """
    file = Path(path)
    if file.is_dir():
        file = file / PROOF_FILE
    try:
        document = json.loads(file.read_text())
    except OSError as exc:
        raise ReleaseProofError(f"{file}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise ReleaseProofError(f"{file}: not JSON") from exc
    if not isinstance(document, dict) or document.get("version") != PROOF_VERSION:
        raise ReleaseProofError(f"{file}: not a version {PROOF_VERSION} proof file")
    entries = document.get("files")
    if not isinstance(entries, dict):
        raise ReleaseProofError(f"{file}: 'files' must be an object")
    files: dict[str, InstanceProof] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("proof"), list):
            raise ReleaseProofError(f"{file}: entry {name!r} is malformed")
        files[name] = InstanceProof(
            instance_key=_hash32(entry.get("instanceKey"), f"{name}: instanceKey"),
            pixel_hash=_hash32(entry.get("pixelHash"), f"{name}: pixelHash"),
            proof=tuple(_hash32(p, f"{name}: proof") for p in entry["proof"]),
        )
    return ReleaseProofs(
        site=_site(document.get("site")),
        study_key=_hash32(document.get("studyKey"), "studyKey"),
        request_id=_hash32(document.get("requestId"), "requestId"),
        identified=bool(document.get("identified")),
        break_glass=bool(document.get("breakGlass")),
        files=MappingProxyType(files),
    )


def verify_files(
    suite: Suite,
    files: Iterable[str | os.PathLike[str]],
    proof_json: str | os.PathLike[str] | ReleaseProofs,
) -> dict[Path, bool]:
    """Check released files on disk against the chain, by their ``proof.json`` entries.

    A file is matched to its entry by name. A file without an entry, unreadable, or whose
    recomputed pixel hash does not prove against the current content root is False.

    Raises:
        ReleaseProofError: If the proof file is missing or malformed.
        StudyNotRegisteredError: If the study key is not registered.
        ChainUnavailableError: If the chain cannot be reached.
    """
    proofs = proof_json if isinstance(proof_json, ReleaseProofs) else read_proofs(proof_json)
    results: dict[Path, bool] = {}
    for item in files:
        path = Path(item)
        entry = proofs.files.get(path.name)
        if entry is None:
            results[path] = False
            continue
        try:
            data = path.read_bytes()
            digest = pixel_hash(io.BytesIO(data))
        except (OSError, DicomError):
            results[path] = False
            continue
        leaf = leaf_hash(entry.instance_key, digest)
        results[path] = _verify_leaf(suite, proofs.site, proofs.study_key, leaf, entry.proof)
    return results


class FileStatus(Enum):
    """The outcome for one file of a release; only ``OK`` passes."""

    OK = "ok"
    MISMATCH = "does not match the chain"
    MISSING = "missing: named in proof.json but not there"
    UNLISTED = "not named in proof.json"


@dataclass(frozen=True, slots=True)
class FileCheck:
    """One file of a release and its outcome."""

    path: Path
    status: FileStatus

    @property
    def ok(self) -> bool:
        """Whether the file passed."""
        return self.status is FileStatus.OK


@dataclass(frozen=True, slots=True)
class ReleaseCheck:
    """The outcome of :func:`verify_release`: one entry per file, named or found."""

    proofs: ReleaseProofs
    files: tuple[FileCheck, ...]

    @property
    def ok(self) -> bool:
        """True if every named file is there and verifies, and no unnamed file is there."""
        return all(check.ok for check in self.files)

    @property
    def failed(self) -> tuple[FileCheck, ...]:
        """The files that did not pass."""
        return tuple(check for check in self.files if not check.ok)


def _is_dicom_name(path: Path) -> bool:
    return path.suffix.lower() == ".dcm"


def verify_release(
    suite: Suite,
    proof_json: str | os.PathLike[str],
    files: Iterable[str | os.PathLike[str]] | None = None,
) -> ReleaseCheck:
    """Check a whole release against the chain: complete, nothing extra, every file proven.

    The release is the folder of ``proof_json``. Checked are ``files`` (default none) and every
    ``.dcm`` file in that folder. A checked file must be named in ``proof.json`` (else
    ``UNLISTED``) and prove against the content root on chain (else ``MISMATCH``, also for an
    unreadable file). A file ``proof.json`` names that is neither in the folder nor among
    ``files`` (by name) is ``MISSING``.

    Args:
        suite: The deployed contracts.
        proof_json: The release's ``proof.json``, or the folder holding it.
        files: More files to check (e.g. copies kept elsewhere), matched by name.

    Returns:
        One :class:`FileCheck` per checked file, in name order, then one per missing file.

    Raises:
        ReleaseProofError: If the proof file is missing or malformed.
        StudyNotRegisteredError: If the study key is not registered.
        ChainUnavailableError: If the chain cannot be reached.
    """
    proof_file = Path(proof_json)
    if proof_file.is_dir():
        proof_file = proof_file / PROOF_FILE
    proofs = read_proofs(proof_file)
    folder = proof_file.parent
    found = [p for p in folder.iterdir() if p.is_file() and _is_dicom_name(p)]
    chosen: dict[Path, Path] = {}
    for item in [*(Path(f) for f in files or ()), *found]:
        chosen.setdefault(item.resolve(), item)
    checked = sorted(chosen.values(), key=lambda p: (p.name, str(p)))
    listed = [p for p in checked if p.name in proofs.files]
    verified = verify_files(suite, listed, proofs) if listed else {}
    results: list[FileCheck] = []
    for path in checked:
        if path.name not in proofs.files:
            status = FileStatus.UNLISTED
        else:
            status = FileStatus.OK if verified[path] else FileStatus.MISMATCH
        results.append(FileCheck(path, status))
    present = {p.name for p in checked}
    results += [
        FileCheck(folder / name, FileStatus.MISSING)
        for name in sorted(proofs.files)
        if name not in present
    ]
    return ReleaseCheck(proofs, tuple(results))
