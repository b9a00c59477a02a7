"""The site pepper and the opaque keys derived from it.

``studyKey = keccak256(pepper ‖ utf8(StudyInstanceUID))`` and
``instanceKey = keccak256(pepper ‖ utf8(SOPInstanceUID))``, where the pepper is the site's
32-byte secret. A UID is hashed as pydicom returns it: no trailing NUL or space padding.

The pepper never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import hmac
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from eth_hash.auto import keccak

from imaging_consent.errors import DicomError, InsecureKeyFileError, KeyMaterialError

PEPPER_BYTES: Final = 32
#: Environment variable holding the pepper as 64 hex digits (an optional ``0x`` is accepted).
PEPPER_ENV: Final = "IMAGING_CONSENT_SITE_PEPPER"
#: Environment variable naming a file that holds the pepper (raw 32 bytes or 64 hex digits).
PEPPER_FILE_ENV: Final = "IMAGING_CONSENT_SITE_PEPPER_FILE"


class SitePepper:
    """The site's 32-byte secret. Its repr hides the value; compare in constant time."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        """Wrap ``secret``.

        Raises:
            KeyMaterialError: If ``secret`` is not exactly 32 bytes.
        """
        if not isinstance(secret, bytes) or len(secret) != PEPPER_BYTES:
            raise KeyMaterialError(f"site pepper must be exactly {PEPPER_BYTES} bytes")
        self._secret = secret

    @classmethod
    def from_hex(cls, text: str) -> SitePepper:
        """Parse 64 hex digits (an optional ``0x`` prefix and surrounding whitespace are allowed).

        Raises:
            KeyMaterialError: If ``text`` is not 32 bytes of hex.
        """
        body = text.strip()
        if body[:2].lower() == "0x":
            body = body[2:]
        try:
            secret = bytes.fromhex(body)
        except ValueError:
            raise KeyMaterialError("site pepper is not valid hex") from None
        return cls(secret)

    def reveal(self) -> bytes:
        """Return the secret bytes (for key derivation only; never log them)."""
        return self._secret

    def __repr__(self) -> str:
        return "SitePepper(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SitePepper):
            return NotImplemented
        return hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash((SitePepper, keccak(self._secret)))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("SitePepper cannot be pickled")


def _read_pepper_file(path: Path) -> SitePepper:
    try:
        st = path.stat()
    except OSError as exc:
        raise KeyMaterialError(
            f"{path}: cannot read site pepper file ({exc.strerror or 'error'})"
        ) from exc
    if not stat.S_ISREG(st.st_mode):
        raise KeyMaterialError(f"{path}: site pepper file is not a regular file")
    if st.st_mode & 0o077:
        raise InsecureKeyFileError(
            f"{path}: site pepper file has mode {stat.S_IMODE(st.st_mode):04o}; it must not be "
            "readable or writable by group or others (chmod 600)"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyMaterialError(
            f"{path}: cannot read site pepper file ({exc.strerror or 'error'})"
        ) from exc
    if len(data) == PEPPER_BYTES:
        return SitePepper(data)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyMaterialError(
            f"{path}: site pepper file must hold 32 raw bytes or 64 hex digits"
        ) from None
    try:
        return SitePepper.from_hex(text)
    except KeyMaterialError:
        raise KeyMaterialError(
            f"{path}: site pepper file must hold 32 raw bytes or 64 hex digits"
        ) from None


def load_pepper(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> SitePepper:
    """Load the site pepper from a file or the environment.

    Order: ``path`` if given; else the file named by ``IMAGING_CONSENT_SITE_PEPPER_FILE``; else
    the hex value of ``IMAGING_CONSENT_SITE_PEPPER``. A file must be a regular file with mode
    0600 or stricter (no group or other bits) and hold 32 raw bytes or 64 hex digits.

    Args:
        path: A pepper file to read.
        environ: The environment to consult (default ``os.environ``).

    Raises:
        InsecureKeyFileError: If the file is group- or world-accessible.
        KeyMaterialError: If no pepper is configured, or it is not 32 bytes.
    """
    env = os.environ if environ is None else environ
    if path is not None:
        return _read_pepper_file(Path(path))
    file_name = env.get(PEPPER_FILE_ENV)
    if file_name:
        return _read_pepper_file(Path(file_name))
    value = env.get(PEPPER_ENV)
    if value:
        try:
            return SitePepper.from_hex(value)
        except KeyMaterialError:
            raise KeyMaterialError(f"{PEPPER_ENV} must hold 64 hex digits") from None
    raise KeyMaterialError(f"no site pepper: set {PEPPER_ENV} or {PEPPER_FILE_ENV}")


def _uid_bytes(uid: str) -> bytes:
    if not isinstance(uid, str) or not uid or uid != uid.strip(" \x00"):
        raise DicomError("a UID must be a non-empty string without padding")
    return uid.encode("utf-8")


def study_key(pepper: SitePepper, study_instance_uid: str) -> bytes:
    """Return ``keccak256(pepper ‖ utf8(StudyInstanceUID))``, the on-chain study key.

    Raises:
        DicomError: If the UID is empty or padded.
    """
    return bytes(keccak(pepper.reveal() + _uid_bytes(study_instance_uid)))


def instance_key(pepper: SitePepper, sop_instance_uid: str) -> bytes:
    """Return ``keccak256(pepper ‖ utf8(SOPInstanceUID))``, the content-tree instance key.

    Raises:
        DicomError: If the UID is empty or padded.
    """
    return bytes(keccak(pepper.reveal() + _uid_bytes(sop_instance_uid)))
