"""A real Orthanc server for tests: Debian's ``orthanc`` with the DICOMweb plugin, on loopback.

``make orthanc`` installs the packages (``make test-client`` depends on it). A test that needs a
server and finds no ``Orthanc`` executable fails, naming that target: nothing is skipped.

Each server gets its own folder (config JSON, storage, log), a free loopback HTTP port and a free
DICOM port, ``RemoteAccessAllowed`` false (Orthanc binds every interface but answers loopback
only), no DICOM peer allowed to store, echo, find or move, and HTTP basic authentication **on**,
with a user ``tester`` and a random password (so the credential path of the store is what every
test exercises). Storage is uncompressed and Orthanc's in-memory file cache is off, so a test
can alter a stored file in place and Orthanc serves the altered bytes. It is stopped (terminate,
wait, kill) when the ``with`` block or the fixture ends, even when the test fails.

Import the fixture into a test module by name (``from orthanc_server import orthanc``), or use
:func:`running_orthanc` directly.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from imaging_consent.stores import OrthancStore

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USERNAME = "tester"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_ATTEMPTS = 3  # a free port can be taken between choosing it and Orthanc binding it


def orthanc_binary() -> str:
    """The ``Orthanc`` executable; the test fails (never skips) if it is not installed."""
    found = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/bin")
    if found is None or not DICOMWEB_PLUGIN.is_file():
        pytest.fail(
            "Orthanc or its DICOMweb plugin is not installed: run `make orthanc` "
            "(apt-get install -y orthanc orthanc-dicomweb, as root)"
        )
    return found


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OrthancServer:
    """A running Orthanc server and what a test needs to use it."""

    url: str
    password: str
    http_port: int
    dicom_port: int
    storage: Path
    log: Path
    process: subprocess.Popen[bytes]
    username: str = USERNAME

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root (QIDO-RS, WADO-RS) of the plugin."""
        return f"{self.url}/dicom-web"

    def http(self) -> requests.Session:
        """An HTTP session with the server's credentials."""
        session = requests.Session()
        session.auth = (self.username, self.password)
        session.trust_env = False
        return session

    def upload(self, data: bytes | Path) -> dict[str, Any]:
        """``POST /instances`` one DICOM file; return Orthanc's answer (raises on HTTP errors)."""
        body = data.read_bytes() if isinstance(data, Path) else data
        with self.http() as http:
            response = http.post(f"{self.url}/instances", data=body, timeout=30)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def try_upload(self, data: bytes | Path) -> int:
        """``POST /instances``; return the HTTP status (Orthanc refuses unparsable files)."""
        body = data.read_bytes() if isinstance(data, Path) else data
        with self.http() as http:
            return http.post(f"{self.url}/instances", data=body, timeout=30).status_code

    def delete(self, orthanc_id: str) -> None:
        """``DELETE /instances/{id}``."""
        with self.http() as http:
            http.delete(f"{self.url}/instances/{orthanc_id}", timeout=30).raise_for_status()

    def attachment(self, orthanc_id: str) -> Path:
        """The file in Orthanc's storage folder that holds an instance's DICOM bytes."""
        with self.http() as http:
            response = http.get(f"{self.url}/instances/{orthanc_id}/attachments/dicom/info")
        response.raise_for_status()
        uuid = str(response.json()["Uuid"])
        return self.storage / uuid[0:2] / uuid[2:4] / uuid

    def store(self, **kwargs: Any) -> OrthancStore:
        """An :class:`OrthancStore` of this server, with its credentials."""
        kwargs.setdefault("username", self.username)
        kwargs.setdefault("password", self.password)
        return OrthancStore(self.url, **kwargs)


def _config(folder: Path, http_port: int, dicom_port: int, password: str) -> dict[str, Any]:
    storage = folder / "storage"
    return {
        "Name": "imaging-consent-test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "StorageCompression": False,  # tests alter stored files in place...
        "MaximumStorageCacheSize": 0,  # ...and Orthanc must serve them from disk, not memory
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USERNAME: password},
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomModalities": {},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "SaveJobs": False,
    }


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, wait, then kill if it does not go."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


def _answers(url: str, password: str) -> bool:
    with requests.Session() as http:
        http.trust_env = False
        try:
            return http.get(f"{url}/system", auth=(USERNAME, password), timeout=2).ok
        except requests.RequestException:
            return False


def _start(binary: str, folder: Path) -> OrthancServer | None:
    """Start one server; None if it exited first (a port was taken)."""
    http_port, dicom_port = free_port(), free_port()
    password = secrets.token_urlsafe(16)
    config = folder / "orthanc.json"
    config.write_text(json.dumps(_config(folder, http_port, dicom_port, password), indent=2))
    log = folder / "orthanc.log"
    url = f"http://127.0.0.1:{http_port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, str(config)], stdout=out, stderr=subprocess.STDOUT, cwd=folder
        )
    server = OrthancServer(url, password, http_port, dicom_port, folder / "storage", log, process)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        if _answers(url, password):
            return server
        time.sleep(0.1)
    _stop(process)
    pytest.fail(f"Orthanc did not answer /system within {START_TIMEOUT:.0f} s; see {log}")


@contextmanager
def running_orthanc(workdir: Path) -> Iterator[OrthancServer]:
    """Start Orthanc in ``workdir`` (created), yield it, stop it whatever happens."""
    binary = orthanc_binary()
    for attempt in range(_ATTEMPTS):
        folder = workdir / f"orthanc-{attempt}"
        folder.mkdir(parents=True)
        server = _start(binary, folder)
        if server is not None:
            break
    else:
        tail = (workdir / f"orthanc-{_ATTEMPTS - 1}" / "orthanc.log").read_text(errors="replace")
        pytest.fail(f"Orthanc exited at start {_ATTEMPTS} times; last log:\n{tail[-2000:]}")
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """A running Orthanc for the module (an empty storage folder of its own)."""
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


__all__ = ["OrthancServer", "free_port", "orthanc", "orthanc_binary", "running_orthanc"]
