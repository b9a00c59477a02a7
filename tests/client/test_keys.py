"""Signing keys: keystore files and keys from the environment."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from eth_account import Account

from imaging_consent.chain import key_from_env, load_keystore, write_keystore
from imaging_consent.chain.keys import write_private_file
from imaging_consent.errors import KeystoreError, PrivateKeyError, SignerError

# scrypt n = 2**4 keeps the tests fast; real keystores use eth-account's default.
FAST = 16


@pytest.fixture
def keystore(tmp_path: Path) -> tuple[Path, str]:
    account = Account.create()
    path = write_keystore(account, tmp_path / "key.json", "correct horse", iterations=FAST)
    return path, account.address


def test_keystore_round_trip(keystore: tuple[Path, str]) -> None:
    path, address = keystore

    account = load_keystore(path, "correct horse")

    assert account.address == address


def test_write_keystore_is_owner_only(keystore: tuple[Path, str]) -> None:
    path, _ = keystore

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def _durability_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record every fsync (by the path of its descriptor) and every rename, in order."""
    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def spy_replace(src: str, dst: str) -> None:
        events.append(("replace", os.fspath(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    return events


def test_write_keystore_syncs_the_file_then_renames_then_syncs_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name descriptors")
    events = _durability_events(monkeypatch)

    path = write_keystore(Account.create(), tmp_path / "key.json", "pw", iterations=FAST)

    assert [kind for kind, _ in events] == ["fsync", "replace", "fsync"]
    assert Path(events[0][1]).parent == tmp_path and events[0][1] != str(path)
    assert events[1][1] == str(path)
    assert events[2][1] == str(tmp_path)


def test_write_private_file_is_owner_only_from_the_start(tmp_path: Path) -> None:
    target = tmp_path / "consent.json"
    target.write_text("old")
    target.chmod(0o644)
    old = os.umask(0o022)
    try:
        write_private_file(target, '{"signature": "0x..."}\n')
    finally:
        os.umask(old)

    assert target.read_text() == '{"signature": "0x..."}\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["consent.json"]


def test_write_private_file_names_the_target_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "consent.json"

    with pytest.raises(FileNotFoundError) as caught:
        write_private_file(target, "{}")

    assert caught.value.filename == str(target)


def test_load_keystore_password_from_env(
    keystore: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, address = keystore
    monkeypatch.setenv("IMAGING_CONSENT_KEYSTORE_PASSWORD", "correct horse")

    assert load_keystore(path).address == address


def test_load_keystore_wrong_password(keystore: tuple[Path, str]) -> None:
    path, _ = keystore

    with pytest.raises(KeystoreError, match=f"wrong password for keystore {path}") as caught:
        load_keystore(path, "battery staple")

    assert isinstance(caught.value, SignerError) and isinstance(caught.value, ValueError)


def test_load_keystore_no_password_without_terminal(
    keystore: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = keystore
    monkeypatch.delenv("IMAGING_CONSENT_KEYSTORE_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)

    with pytest.raises(KeystoreError, match=r"no password for keystore .*IMAGING_CONSENT"):
        load_keystore(path)


def test_load_keystore_prompts_on_terminal(
    keystore: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, address = keystore
    monkeypatch.delenv("IMAGING_CONSENT_KEYSTORE_PASSWORD", raising=False)

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt: "correct horse")

    assert load_keystore(path).address == address


@pytest.mark.parametrize(
    "content",
    ["not json at all", "[1, 2]", '{"version": 3}', '{"crypto": {"cipher": "aes-128-ctr"}}'],
    ids=["not-json", "not-object", "no-crypto", "incomplete-crypto"],
)
def test_load_keystore_malformed_names_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)

    with pytest.raises(KeystoreError, match=str(path)):
        load_keystore(path, "pw")


def test_load_keystore_missing_file_names_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"

    with pytest.raises(KeystoreError, match=f"{path} does not exist"):
        load_keystore(path, "pw")


def test_load_keystore_address_mismatch(keystore: tuple[Path, str]) -> None:
    path, _ = keystore
    keyfile = json.loads(path.read_text())
    keyfile["address"] = "00" * 20
    path.write_text(json.dumps(keyfile))

    with pytest.raises(KeystoreError, match="another address"):
        load_keystore(path, "correct horse")


def test_write_keystore_refuses_empty_password(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="empty password"):
        write_keystore(Account.create(), tmp_path / "k.json", "")


def test_key_from_env_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    account = Account.create()
    monkeypatch.setenv("IMAGING_CONSENT_PRIVATE_KEY", account.key.hex())

    assert key_from_env().address == account.address


def test_key_from_env_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGING_CONSENT_PRIVATE_KEY", raising=False)

    with pytest.raises(PrivateKeyError, match="IMAGING_CONSENT_PRIVATE_KEY is not set"):
        key_from_env()


@pytest.mark.parametrize(
    "value",
    ["0x1234", "zz" * 32, "00" * 32, "ff" * 32],
    ids=["short", "not-hex", "zero", "above-curve-order"],
)
def test_key_from_env_malformed_never_echoes_value(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MY_KEY", value)

    with pytest.raises(PrivateKeyError, match="MY_KEY") as caught:
        key_from_env("MY_KEY")

    assert value not in str(caught.value)
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
