"""Where the CLI finds its RPC URL, manifest, key and image store.

Every value is taken from the first of: the command-line option, the environment variable, the
config file, the default. The config file is TOML with flat keys (all optional)::

    rpc_url = "http://127.0.0.1:8545"
    manifest = "deployments/1337.json"       # relative paths are relative to the config file
    keystore = "keys/patient.json"            # a keystore file, never a key
    store = "studies"                         # the site's DICOM folder (site register, fetch)
    orthanc = "https://pacs.example:8042"     # or an Orthanc server (site register)
    site_pepper_file = "site-pepper"          # the site pepper file (mode 0600), never the pepper
    allow_insecure_rpc = false                # accept http:// to a node not on loopback
    index = "index.sqlite3"                   # the audit index: a SQLite file or a database URL

It is found at ``--config`` / ``IMAGING_CONSENT_CONFIG``, else ``./imaging-consent.toml``, else
``$XDG_CONFIG_HOME/imaging-consent/config.toml`` (``~/.config/...``). TOML is read with the
standard library's ``tomllib`` (Python 3.11+) or ``tomli`` if installed; on Python 3.10 without
``tomli``, use the environment variables.

Every environment variable the command reads (the configuration table of ``docs/cli.md`` lists
them all, and a test checks that it does):

- :data:`ENV`, one per config key: ``IMAGING_CONSENT_RPC_URL``, ``IMAGING_CONSENT_MANIFEST``,
  ``IMAGING_CONSENT_KEYSTORE``, ``IMAGING_CONSENT_STORE``, ``IMAGING_CONSENT_SITE_PEPPER_FILE``,
  ``IMAGING_CONSENT_ALLOW_INSECURE_RPC`` (1/true/yes/on or 0/false/no/off),
  ``IMAGING_CONSENT_INDEX`` (a SQLite file, or a database URL such as
  ``postgresql+psycopg://user@host/db``);
- ``IMAGING_CONSENT_CONFIG``: the config file;
- secrets, never in the config file: ``IMAGING_CONSENT_KEYSTORE_PASSWORD`` (else a hidden
  prompt), ``IMAGING_CONSENT_REQUESTER_KEYSTORE_PASSWORD`` (``fetch --requester-keystore``),
  ``IMAGING_CONSENT_PRIVATE_KEY`` (a raw key, when no keystore is set) and
  ``IMAGING_CONSENT_SITE_PEPPER`` (the pepper as hex, when no pepper file is set);
- ``IMAGING_CONSENT_LOG_FILE`` (log lines, mode 0600) and ``IMAGING_CONSENT_DEBUG=1`` (tracebacks
  and DEBUG lines), read by :mod:`.app`;
- ``IMAGING_CONSENT_NODE_MODULES``: where ``ganache`` and ``anvil`` are, if not in a
  ``node_modules`` above the package or the working folder.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imaging_consent.errors import ImagingConsentError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_RPC_URL",
    "ENV",
    "KEYS",
    "Config",
    "ConfigError",
    "database_url",
    "find_config_file",
    "load_config",
]

CONFIG_ENV = "IMAGING_CONSENT_CONFIG"
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
LOCAL_CONFIG = "imaging-consent.toml"

#: Config keys and the environment variable for each.
ENV: Mapping[str, str] = {
    "rpc_url": "IMAGING_CONSENT_RPC_URL",
    "manifest": "IMAGING_CONSENT_MANIFEST",
    "keystore": "IMAGING_CONSENT_KEYSTORE",
    "store": "IMAGING_CONSENT_STORE",
    "orthanc": "IMAGING_CONSENT_ORTHANC_URL",
    "site_pepper_file": "IMAGING_CONSENT_SITE_PEPPER_FILE",
    "allow_insecure_rpc": "IMAGING_CONSENT_ALLOW_INSECURE_RPC",
    "index": "IMAGING_CONSENT_INDEX",
}
KEYS = frozenset(ENV)
_PATH_KEYS = frozenset({"manifest", "keystore", "store", "site_pepper_file"})
_BOOL_KEYS = frozenset({"allow_insecure_rpc"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(ImagingConsentError, ValueError):
    """The configuration file is unreadable, malformed or holds an unknown key."""


def _toml_loads(text: str, where: Path) -> dict[str, Any]:
    for name in ("tomllib", "tomli"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        try:
            data: dict[str, Any] = module.loads(text)
        except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
            raise ConfigError(f"{where}: not valid TOML ({exc})") from None
        return data
    raise ConfigError(
        f"{where}: reading TOML needs Python 3.11+ or the tomli package; "
        "use the IMAGING_CONSENT_* environment variables instead"
    )


def find_config_file(
    explicit: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The config file to read, or None if there is none.

    Raises:
        ConfigError: If a file named explicitly (option or ``IMAGING_CONSENT_CONFIG``) is missing.
    """
    env = os.environ if environ is None else environ
    named = explicit if explicit is not None else env.get(CONFIG_ENV) or None
    if named is not None:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    local = (cwd or Path.cwd()) / LOCAL_CONFIG
    if local.is_file():
        return local
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(base).expanduser() / "imaging-consent" / "config.toml"
    return user if user.is_file() else None


def load_config(path: Path | None) -> dict[str, str]:
    """Read a config file's keys (paths made absolute against the file's folder).

    Raises:
        ConfigError: If the file is unreadable, not TOML, or has unknown keys or non-strings.
    """
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {type(exc).__name__}") from None
    data = _toml_loads(text, path)
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}"
        )
    values: dict[str, str] = {}
    for key, value in data.items():
        if key in _BOOL_KEYS:
            if not isinstance(value, bool):
                raise ConfigError(f"{path}: {key} must be true or false")
            values[key] = str(value).lower()
            continue
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: {key} must be a non-empty string")
        if key in _PATH_KEYS or (key == "index" and "://" not in value):
            value = str((path.parent / Path(value).expanduser()).resolve())
        values[key] = value
    return values


@dataclass(frozen=True, slots=True)
class Config:
    """Resolved settings for one command.

    Attributes:
        rpc_url: The JSON-RPC endpoint.
        manifest: The manifest path, or None for ``deployments/<chainId>.json``.
        keystore: The keystore file to sign with, or None (then IMAGING_CONSENT_PRIVATE_KEY).
        store: The site's DICOM folder, or None.
        orthanc: The base URL of the site's Orthanc server, or None.
        site_pepper_file: The site pepper file, or None (then IMAGING_CONSENT_SITE_PEPPER).
        allow_insecure_rpc: Accept a plain ``http://`` RPC URL to a node not on loopback.
        index: The audit index as a database URL (a path is made ``sqlite:///...``), or None.
        config_file: The config file read, if any.
        sources: Where each value came from (``option``, ``env``, ``config``, ``default``).
    """

    rpc_url: str
    manifest: Path | None = None
    keystore: Path | None = None
    store: Path | None = None
    orthanc: str | None = None
    site_pepper_file: Path | None = None
    allow_insecure_rpc: bool = False
    index: str | None = None
    config_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        *,
        rpc_url: str | None = None,
        manifest: str | os.PathLike[str] | None = None,
        keystore: str | os.PathLike[str] | None = None,
        store: str | os.PathLike[str] | None = None,
        allow_insecure_rpc: bool | None = None,
        index: str | None = None,
        config_file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Config:
        """Resolve each setting: option, then environment, then config file, then default.

        Raises:
            ConfigError: If the config file is named but missing, or is malformed, or
                IMAGING_CONSENT_ALLOW_INSECURE_RPC is not a yes/no value.
        """
        env = os.environ if environ is None else environ
        path = find_config_file(config_file, environ=env, cwd=cwd)
        from_file = load_config(path)
        options: dict[str, Any] = {
            "rpc_url": rpc_url,
            "manifest": manifest,
            "keystore": keystore,
            "store": store,
            "orthanc": None,
            "site_pepper_file": None,
            "allow_insecure_rpc": None if allow_insecure_rpc is None else str(allow_insecure_rpc),
            "index": index,
        }
        values: dict[str, str | None] = {}
        sources: dict[str, str] = {}
        for key in ENV:
            if options[key] is not None:
                values[key], sources[key] = str(options[key]), "option"
            elif env.get(ENV[key]):
                values[key], sources[key] = env[ENV[key]], "env"
            elif key in from_file:
                values[key], sources[key] = from_file[key], "config"
            else:
                values[key], sources[key] = None, "default"
        if values["rpc_url"] is None:
            values["rpc_url"] = DEFAULT_RPC_URL

        def as_path(key: str) -> Path | None:
            value = values[key]
            return Path(value).expanduser() if value else None

        return cls(
            rpc_url=str(values["rpc_url"]),
            manifest=as_path("manifest"),
            keystore=as_path("keystore"),
            store=as_path("store"),
            orthanc=values["orthanc"],
            site_pepper_file=as_path("site_pepper_file"),
            allow_insecure_rpc=_flag(values["allow_insecure_rpc"], ENV["allow_insecure_rpc"]),
            index=database_url(values["index"]),
            config_file=path,
            sources=sources,
        )


def database_url(value: str | None) -> str | None:
    """An index setting as a database URL: a URL as it is, a path as ``sqlite:///<absolute>``."""
    if not value:
        return None
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def _flag(value: str | None, what: str) -> bool:
    """A yes/no setting: unset is no.

    Raises:
        ConfigError: If it is neither (1/true/yes/on or 0/false/no/off).
    """
    if value is None:
        return False
    text = value.strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ConfigError(f"{what} must be 1/true/yes/on or 0/false/no/off, got {value!r}")
