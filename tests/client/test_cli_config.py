"""The CLI's configuration resolution and its parsing of times and keys (no chain needed)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from imaging_consent.cli import main
from imaging_consent.cli.common import UsageProblem, parse_study_key, parse_when
from imaging_consent.cli.config import DEFAULT_RPC_URL, Config, ConfigError

NOW = 1_800_000_000


def test_resolve_prefers_option_then_env_then_config(tmp_path: Path) -> None:
    (tmp_path / "imaging-consent.toml").write_text(
        'rpc_url = "http://config:8545"\nmanifest = "deployments/1337.json"\nstore = "studies"\n'
    )
    env = {"IMAGING_CONSENT_RPC_URL": "http://env:8545", "HOME": str(tmp_path)}

    from_env = Config.resolve(environ=env, cwd=tmp_path)
    from_option = Config.resolve(rpc_url="http://option:8545", environ=env, cwd=tmp_path)
    from_file = Config.resolve(environ={"HOME": str(tmp_path)}, cwd=tmp_path)

    assert from_env.rpc_url == "http://env:8545" and from_env.sources["rpc_url"] == "env"
    assert from_option.rpc_url == "http://option:8545"
    assert from_file.rpc_url == "http://config:8545"
    assert from_file.manifest == (tmp_path / "deployments" / "1337.json").resolve()
    assert from_file.store == (tmp_path / "studies").resolve()


def test_resolve_defaults_without_config(tmp_path: Path) -> None:
    config = Config.resolve(environ={"XDG_CONFIG_HOME": str(tmp_path / "none")}, cwd=tmp_path)

    assert config.rpc_url == DEFAULT_RPC_URL
    assert config.manifest is None and config.keystore is None and config.config_file is None


def test_user_config_is_found_under_xdg(tmp_path: Path) -> None:
    user = tmp_path / "xdg" / "imaging-consent" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('keystore = "~/keys/me.json"\n')

    config = Config.resolve(environ={"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, cwd=tmp_path)

    assert config.config_file == user
    assert config.keystore is not None and config.keystore.name == "me.json"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rpc_url = ", "not valid TOML"),
        ('private_key = "0xabc"', "unknown key(s) private_key"),
        ("rpc_url = 8545", "must be a non-empty string"),
        ('allow_insecure_rpc = "yes"', "allow_insecure_rpc must be true or false"),
    ],
)
def test_bad_config_files_raise(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "imaging-consent.toml").write_text(text + "\n")

    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        Config.resolve(environ={}, cwd=tmp_path)


def test_allow_insecure_rpc_from_option_env_or_config(tmp_path: Path) -> None:
    home = {"XDG_CONFIG_HOME": str(tmp_path / "none")}
    var = "IMAGING_CONSENT_ALLOW_INSECURE_RPC"

    assert Config.resolve(environ=home, cwd=tmp_path).allow_insecure_rpc is False
    assert Config.resolve(allow_insecure_rpc=True, environ=home, cwd=tmp_path).allow_insecure_rpc
    assert Config.resolve(environ={**home, var: "yes"}, cwd=tmp_path).allow_insecure_rpc
    assert not Config.resolve(environ={**home, var: "0"}, cwd=tmp_path).allow_insecure_rpc
    with pytest.raises(ConfigError, match=var):
        Config.resolve(environ={**home, var: "maybe"}, cwd=tmp_path)
    (tmp_path / "imaging-consent.toml").write_text("allow_insecure_rpc = true\n")
    assert Config.resolve(environ=home, cwd=tmp_path).allow_insecure_rpc
    assert not Config.resolve(environ={**home, var: "off"}, cwd=tmp_path).allow_insecure_rpc


def test_named_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Config.resolve(config_file=tmp_path / "missing.toml", environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW + 30 * 86400),
        ("12h", NOW + 12 * 3600),
        ("90m", NOW + 90 * 60),
        ("2w", NOW + 14 * 86400),
        ("2027-01-31", int(datetime(2027, 1, 31, tzinfo=timezone.utc).timestamp())),
        (
            "2027-01-31T12:00:00+01:00",
            int(datetime(2027, 1, 31, 11, tzinfo=timezone.utc).timestamp()),
        ),
    ],
)
def test_parse_when(text: str, expected: int) -> None:
    assert parse_when(text, NOW, "--expires") == expected


@pytest.mark.parametrize("text", ["soon", "30 days", "-1d", "2027-13-01"])
def test_parse_when_rejects(text: str) -> None:
    with pytest.raises(UsageProblem, match="--expires"):
        parse_when(text, NOW, "--expires")


def test_parse_study_key() -> None:
    assert parse_study_key("0x" + "ab" * 32) == bytes([0xAB]) * 32
    with pytest.raises(UsageProblem):
        parse_study_key("0x1234")


def test_main_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["consent", "grant"])

    assert code == 2
    assert "Missing option" in capsys.readouterr().err


def test_main_help_is_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "consent" in capsys.readouterr().out
