"""Checking released instances against the chain, and the on-disk form of a release.

A receiver needs no trust in the gateway. From the bytes it got it recomputes the instance's
hashes (:func:`~imaging_consent.dicom.walk.walk_dicom`), forms the leaf with the instance key
and the protocol the gateway handed over, and asks ``StudyRegistry.verifyInstance(site,
studyKey, leaf, proof)``. What that proves depends on the study's content protocol and on the
release (docs/trust-model.md, "What a verification proves"):

- protocol v2, identified: the file is byte for byte the file the site registered;
- protocol v2, de-identified: the pixels and every display attribute (``viewHash``) are as
  registered; the rest of the file is the gateway's de-identification of it (its ``fileHash``
  is the original's, taken from the proof, since the original is not released);
- protocol v1 (studies registered before v2): the pixels only.

:class:`ReleaseFolder` stages a release's files in a private folder and moves them into place,
with ``proof.json``, only when the gateway commits the release. :func:`verify_release` checks
such a release later (the CLI's ``fetch`` and ``verify``): every file it names must be there and
prove against the chain, and no other ``.dcm`` file may be there. :func:`verify_files` checks
single files by name.

``proof.json`` (version 3; version 2 files, written before protocol v2, still read)::

    {"version": 3, "contentProtocol": 2, "site": "0x..", "studyKey": "0x..",
     "requestId": "0x..", "identified": true, "breakGlass": false,
     "files": {"<name>.dcm": {"instanceKey": "0x..", "pixelHash": "0x..", "viewHash": "0x..",
                              "fileHash": "0x..", "proof": ["0x..", ...]}}}

``pixelHash`` and ``viewHash`` there are informational: verification recomputes them from the
file, and ``fileHash`` too for an identified release.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from imaging_consent.contracts.deployment import Suite
from imaging_consent.dicom.walk import ContentDigest, walk_dicom
from imaging_consent.errors import DicomError, ReleaseProofError
from imaging_consent.provenance.content import ContentProtocol, content_leaf
from imaging_consent.provenance.released import ReleasedInstance, ReleasedStudy

__all__ = [
    "PROOF_FILE",
    "FileCheck",
    "FileStatus",
    "InstanceProof",
    "ReleaseCheck",
    "ReleaseFolder",
    "ReleaseProofs",
    "read_proofs",
    "verify_files",
    "verify_release",
    "verify_released",
    "write_release",
]

PROOF_FILE = "proof.json"
PROOF_VERSION = 3
_V1_PROOF_VERSION = 2
_SAFE_NAME = re.compile(r"^[0-9A-Za-z.\-_]{1,64}$")
_ZERO = bytes(32)


@dataclass(frozen=True, slots=True)
class InstanceProof:
    """What proves one released file against the study's content root."""

    instance_key: bytes
    digest: ContentDigest
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ReleaseProofs:
    """The contents of a ``proof.json``."""

    site: ChecksumAddress
    study_key: bytes
    request_id: bytes
    identified: bool
    break_glass: bool
    protocol: ContentProtocol
    files: MappingProxyType[str, InstanceProof]

    @property
    def proves(self) -> str:
        """What a successful verification of these files proves, in words."""
        if self.protocol is ContentProtocol.V1:
            return "the pixels only (the study was registered under content protocol v1)"
        if self.identified:
            return "every byte of each file, as the site registered it"
        return "the pixels and display attributes as registered (the rest is de-identified)"


def _leaf_of(
    data: bytes, protocol: ContentProtocol, key: bytes, registered: ContentDigest, identified: bool
) -> bytes | None:
    """The leaf recomputed from received bytes, or None if they are not sound DICOM."""
    try:
        digest = walk_dicom(data).digest
    except DicomError:
        return None
    assert digest is not None
    if not identified:  # the original file is not released: its fileHash comes from the proof
        digest = ContentDigest(digest.pixel_hash, digest.view_hash, registered.file_hash)
    return content_leaf(protocol, key, digest)


def _verify_leaf(
    suite: Suite,
    site: ChecksumAddress,
    study_key: bytes,
    leaf: bytes | None,
    proof: Sequence[bytes],
) -> bool:
    return leaf is not None and suite.studies.verify_instance(site, study_key, leaf, proof)


def verify_released(suite: Suite, site: str, study_key: bytes, instance: ReleasedInstance) -> bool:
    """Check a released instance against the study's current content root on chain.

    Args:
        suite: The deployed contracts.
        site: The site that released it (``Release.site``), whose namespace holds the study.
        study_key: The study's key (``Release.study_key``).
        instance: The released instance; its bytes are hashed again (the whole file must match
            the registered one if it was released identified).

    Returns:
        True if the hashes recomputed from what was received prove against the root; False if
        they do not, or if the bytes are not readable DICOM.

    Raises:
        StudyNotRegisteredError: If the study key is not registered.
        ChainUnavailableError: If the chain cannot be reached (no answer is not "no").
    """
    leaf = _leaf_of(
        instance.to_bytes(),
        instance.protocol,
        instance.instance_key,
        instance.digest,
        instance.identified,
    )
    return _verify_leaf(suite, to_checksum_address(site), study_key, leaf, instance.proof)


def _file_name(uid: str, position: int) -> str:
    return f"{uid}.dcm" if _SAFE_NAME.match(uid) else f"instance-{position:05d}.dcm"


def _proof_document(release: ReleasedStudy, names: Sequence[str]) -> dict[str, Any]:
    protocols = {instance.protocol for instance in release.instances}
    files: dict[str, Any] = {}
    for name, instance in zip(names, release.instances, strict=True):
        files[name] = {
            "instanceKey": "0x" + instance.instance_key.hex(),
            "pixelHash": "0x" + instance.digest.pixel_hash.hex(),
            "viewHash": "0x" + instance.digest.view_hash.hex(),
            "fileHash": "0x" + instance.digest.file_hash.hex(),
            "proof": ["0x" + p.hex() for p in instance.proof],
        }
    return {
        "version": PROOF_VERSION,
        "contentProtocol": int(protocols.pop()) if protocols else int(ContentProtocol.V2),
        "site": release.site,
        "studyKey": "0x" + release.study_key.hex(),
        "requestId": "0x" + release.request_id.hex(),
        "identified": release.identified,
        "breakGlass": release.break_glass,
        "files": files,
    }


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


class ReleaseFolder:
    """A folder a release streams into: staged privately, moved into place on commit.

    Each file is written to ``<folder>/.staging-<random>/`` (mode 0700, files 0600) as soon as
    it is read and verified, so memory does not grow with the study. :meth:`commit` (after the
    access is recorded) moves the files into ``folder`` and writes ``proof.json``;
    :meth:`abort` removes the staging folder. Nothing appears in ``folder`` before the commit.

    Args:
        folder: The destination (created if needed).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._staging = self.folder / f".staging-{secrets.token_hex(8)}"
        self._staging.mkdir(mode=0o700)
        self._names: dict[str, str] = {}

    def stage(self, uid: str, data: bytes) -> Path:
        """Write one released file to the staging folder; return where it will be."""
        name = _file_name(uid, len(self._names) + 1)
        if name in self._names.values():
            name = f"instance-{len(self._names) + 1:05d}.dcm"
        self._names[uid] = name
        _write_private(self._staging / name, data)
        return self.folder / name

    def commit(self, release: ReleasedStudy) -> list[Path]:
        """Move the staged files into place and write ``proof.json``; return their paths.

        Raises:
            OSError: If a file cannot be moved or written.
        """
        names = [self._names[instance.sop_instance_uid] for instance in release.instances]
        document = _proof_document(release, names)
        _write_private(self._staging / PROOF_FILE, (json.dumps(document, indent=2) + "\n").encode())
        written = []
        for name in [*names, PROOF_FILE]:
            os.replace(self._staging / name, self.folder / name)
            written.append(self.folder / name)
        self._staging.rmdir()
        return written

    def abort(self) -> None:
        """Remove everything staged (nothing was ever in the destination)."""
        shutil.rmtree(self._staging, ignore_errors=True)


def write_release(release: ReleasedStudy, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write a release held in memory as ``<SOP Instance UID>.dcm`` files and ``proof.json``.

    Args:
        release: What ``ImageGateway.release`` returned (a :class:`ReleasedStudy`).
        out_dir: The folder to write into (created if needed).

    Returns:
        The paths written: the DICOM files in release order, then ``proof.json``.

    Raises:
        OSError: If a file cannot be written or read back.
    """
    folder = ReleaseFolder(out_dir)
    try:
        for instance in release.instances:
            folder.stage(instance.sop_instance_uid, instance.to_bytes())
        return folder.commit(release)
    finally:
        folder.abort()


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
    version = document.get("version") if isinstance(document, dict) else None
    if version not in (PROOF_VERSION, _V1_PROOF_VERSION):
        raise ReleaseProofError(f"{file}: not a version {PROOF_VERSION} (or 2) proof file")
    try:
        protocol = ContentProtocol(document.get("contentProtocol", 1))
    except ValueError:
        raise ReleaseProofError(f"{file}: unknown contentProtocol") from None
    entries = document.get("files")
    if not isinstance(entries, dict):
        raise ReleaseProofError(f"{file}: 'files' must be an object")
    files: dict[str, InstanceProof] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("proof"), list):
            raise ReleaseProofError(f"{file}: entry {name!r} is malformed")
        later = protocol is not ContentProtocol.V1
        files[name] = InstanceProof(
            instance_key=_hash32(entry.get("instanceKey"), f"{name}: instanceKey"),
            digest=ContentDigest(
                _hash32(entry.get("pixelHash"), f"{name}: pixelHash"),
                _hash32(entry.get("viewHash"), f"{name}: viewHash") if later else _ZERO,
                _hash32(entry.get("fileHash"), f"{name}: fileHash") if later else _ZERO,
            ),
            proof=tuple(_hash32(p, f"{name}: proof") for p in entry["proof"]),
        )
    return ReleaseProofs(
        site=_site(document.get("site")),
        study_key=_hash32(document.get("studyKey"), "studyKey"),
        request_id=_hash32(document.get("requestId"), "requestId"),
        identified=bool(document.get("identified")),
        break_glass=bool(document.get("breakGlass")),
        protocol=protocol,
        files=MappingProxyType(files),
    )


def verify_files(
    suite: Suite,
    files: Iterable[str | os.PathLike[str]],
    proof_json: str | os.PathLike[str] | ReleaseProofs,
    on_file: Callable[[Path], None] | None = None,
) -> dict[Path, bool]:
    """Check released files on disk against the chain, by their ``proof.json`` entries.

    A file is matched to its entry by name. A file without an entry, unreadable, or whose
    recomputed hashes do not prove against the current content root is False. ``on_file``, if
    given, is called with each file once it is checked (for progress).

    Raises:
        ReleaseProofError: If the proof file is missing or malformed.
        StudyNotRegisteredError: If the study key is not registered.
        ChainUnavailableError: If the chain cannot be reached.
    """
    proofs = proof_json if isinstance(proof_json, ReleaseProofs) else read_proofs(proof_json)
    results: dict[Path, bool] = {}
    for item in files:
        path = Path(item)
        results[path] = _verify_file(suite, proofs, path)
        if on_file is not None:
            on_file(path)
    return results


def _verify_file(suite: Suite, proofs: ReleaseProofs, path: Path) -> bool:
    entry = proofs.files.get(path.name)
    if entry is None:
        return False
    try:
        data = path.read_bytes()
    except OSError:
        return False
    leaf = _leaf_of(data, proofs.protocol, entry.instance_key, entry.digest, proofs.identified)
    return _verify_leaf(suite, proofs.site, proofs.study_key, leaf, entry.proof)


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
    on_file: Callable[[Path], None] | None = None,
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
        on_file: Called with each named file once it is proven or not (for progress).

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
    verified = verify_files(suite, listed, proofs, on_file) if listed else {}
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
