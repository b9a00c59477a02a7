"""The site pepper (env, file, permissions) and the keyed study and instance keys."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from eth_hash.auto import keccak

from imaging_consent.dicom import SitePepper, instance_key, load_pepper, study_key
from imaging_consent.errors import DicomError, InsecureKeyFileError, KeyMaterialError

PEPPER = bytes(range(32))
UID = "1.2.826.0.1.3680043.10.1234.1"


def _pepper_file(tmp_path: Path, content: bytes, mode: int) -> Path:
    path = tmp_path / "pepper"
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


def test_study_key_is_keccak_of_pepper_and_uid() -> None:
    pepper = SitePepper(PEPPER)

    assert study_key(pepper, UID) == keccak(PEPPER + UID.encode())
    assert instance_key(pepper, UID) == keccak(PEPPER + UID.encode())
    assert study_key(pepper, UID) == study_key(SitePepper(PEPPER), UID)


def test_keys_differ_with_pepper() -> None:
    other = SitePepper(bytes(32))

    assert study_key(SitePepper(PEPPER), UID) != study_key(other, UID)


@pytest.mark.parametrize("uid", ["", " 1.2.3", "1.2.3\x00"])
def test_keys_refuse_padded_or_empty_uid(uid: str) -> None:
    with pytest.raises(DicomError):
        instance_key(SitePepper(PEPPER), uid)


def test_load_pepper_from_env_hex() -> None:
    env = {"IMAGING_CONSENT_SITE_PEPPER": "0x" + PEPPER.hex()}

    assert load_pepper(environ=env) == SitePepper(PEPPER)


def test_load_pepper_env_wrong_length_hides_value() -> None:
    env = {"IMAGING_CONSENT_SITE_PEPPER": PEPPER.hex()[:-2]}

    with pytest.raises(KeyMaterialError) as info:
        load_pepper(environ=env)

    assert PEPPER.hex()[:16] not in str(info.value)


def test_load_pepper_nothing_configured() -> None:
    with pytest.raises(KeyMaterialError, match="no site pepper"):
        load_pepper(environ={})


@pytest.mark.parametrize("content", [PEPPER, PEPPER.hex().encode() + b"\n"])
def test_load_pepper_file_0600(tmp_path: Path, content: bytes) -> None:
    path = _pepper_file(tmp_path, content, 0o600)

    assert load_pepper(path) == SitePepper(PEPPER)
    assert load_pepper(environ={"IMAGING_CONSENT_SITE_PEPPER_FILE": str(path)}) == SitePepper(
        PEPPER
    )


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_load_pepper_file_readable_by_others_refused(tmp_path: Path, mode: int) -> None:
    path = _pepper_file(tmp_path, PEPPER, mode)

    with pytest.raises(InsecureKeyFileError, match="chmod 600"):
        load_pepper(path)


def test_load_pepper_file_bad_content(tmp_path: Path) -> None:
    path = _pepper_file(tmp_path, b"too short", 0o600)

    with pytest.raises(KeyMaterialError):
        load_pepper(path)


def test_load_pepper_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError):
        load_pepper(tmp_path / "absent")


def test_site_pepper_hides_value() -> None:
    pepper = SitePepper(PEPPER)

    assert PEPPER.hex() not in repr(pepper) and "hidden" in repr(pepper)
    assert str(PEPPER) not in str(pepper)
    with pytest.raises(TypeError):
        pickle.dumps(pepper)
    with pytest.raises(KeyMaterialError):
        SitePepper(PEPPER[:31])
