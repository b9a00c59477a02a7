"""Local development chains: Ganache (the default) or Anvil, from the project's npm packages.

Both chains are started from the same well-known test mnemonic, so account ``i`` has the same
address and key on either chain. The process runs in its own session (process group) and the
whole group is stopped on exit, so no node child outlives the context, even when the body
raises or the interpreter exits without leaving the context. A start that fails or is
interrupted (Ctrl-C, or SIGTERM when a handler turns it into an exception, as the CLI's does)
stops the process too: SIGINT and SIGTERM are held while it is spawned and recorded.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount

from imaging_consent.chain.session import ChainSession, connect
from imaging_consent.errors import ChainBinaryNotFoundError, ChainError, LocalChainError

__all__ = ["TEST_MNEMONIC", "ChainKind", "LocalChain", "dev_accounts", "find_chain_binary"]

logger = logging.getLogger(__name__)

#: The public development mnemonic (Hardhat/Foundry default). Never hold real funds with it.
TEST_MNEMONIC = "test test test test test test test test test test test junk"

NODE_MODULES_ENV = "IMAGING_CONSENT_NODE_MODULES"

_START_DEADLINE = 30.0
_STOP_GRACE = 5.0
_PORT_ATTEMPTS = 3
_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ChainKind(str, enum.Enum):
    """The local chains the project can start."""

    GANACHE = "ganache"
    ANVIL = "anvil"

    @property
    def chain_id(self) -> int:
        """The chain id this kind is started with (each tool's own default)."""
        return 1337 if self is ChainKind.GANACHE else 31337


def dev_accounts(count: int, mnemonic: str = TEST_MNEMONIC) -> list[LocalAccount]:
    """Derive the first ``count`` accounts of ``mnemonic`` (path ``m/44'/60'/0'/0/i``) locally."""
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)
    ]


def _node_modules_candidates() -> list[Path]:
    found: list[Path] = []
    override = os.environ.get(NODE_MODULES_ENV)
    if override:
        found.append(Path(override).expanduser())
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            candidate = folder / "node_modules"
            if candidate.is_dir() and candidate not in found:
                found.append(candidate)
    return found


def find_chain_binary(kind: ChainKind | str) -> Path:
    """Find the ``ganache`` or ``anvil`` executable.

    Looks in ``$IMAGING_CONSENT_NODE_MODULES/.bin`` first, then in ``node_modules/.bin`` of
    every folder above this package and above the working directory, then on ``PATH``.

    Raises:
        ChainBinaryNotFoundError: If it is nowhere to be found.
    """
    name = ChainKind(kind).value
    for node_modules in _node_modules_candidates():
        binary = node_modules / ".bin" / name
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise ChainBinaryNotFoundError(
        f"cannot find the {name!r} executable in node_modules/.bin or on PATH: run `npm ci` "
        f"in the project folder (or set {NODE_MODULES_ENV} to its node_modules)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rpc(url: str, method: str, params: list[Any], timeout: float = 2.0) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise ChainError(f"{method} failed on {url}: {answer['error'].get('message', '?')}")
    return answer["result"]


class LocalChain:
    """A local Ganache or Anvil chain on a free loopback port.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with LocalChain("anvil") as chain:
            sender = TransactionSender(chain.session, chain.accounts[0])

    Attributes:
        kind: Which chain runs.
        chain_id: 1337 for Ganache, 31337 for Anvil.
        accounts: Funded accounts derived from :data:`TEST_MNEMONIC`, with private keys.
    """

    def __init__(
        self,
        kind: ChainKind | Literal["ganache", "anvil"] = "ganache",
        *,
        port: int | None = None,
        accounts: int = 10,
        block_time: float | None = None,
        mnemonic: str = TEST_MNEMONIC,
    ) -> None:
        """Prepare (but do not start) a local chain.

        Args:
            kind: ``"ganache"`` (the default) or ``"anvil"``.
            port: Loopback port; by default a free one is picked.
            accounts: Number of funded accounts.
            block_time: Seconds between blocks; by default every transaction is mined at once.
            mnemonic: Mnemonic for the funded accounts.

        Raises:
            ValueError: If ``kind`` is unknown or a number is out of range.
        """
        self.kind = ChainKind(kind)
        if accounts < 1:
            raise ValueError("accounts must be at least 1")
        if block_time is not None and block_time <= 0:
            raise ValueError("block_time must be positive")
        self.chain_id = self.kind.chain_id
        self._requested_port = port
        self._account_count = accounts
        self._block_time = block_time
        self._mnemonic = mnemonic
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._port: int | None = None
        self._session: ChainSession | None = None
        self.accounts: list[LocalAccount] = dev_accounts(accounts, mnemonic)

    # --- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalChain:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the chain process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the chain (the leader of its process group), or None if stopped."""
        return self._process.pid if self._process is not None else None

    @property
    def port(self) -> int:
        """The loopback port the chain listens on.

        Raises:
            LocalChainError: If the chain is not started.
        """
        if self._port is None:
            raise LocalChainError(f"the {self.kind.value} chain is not started")
        return self._port

    @property
    def rpc_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def session(self) -> ChainSession:
        """A connected session to this chain.

        Raises:
            LocalChainError: If the chain is not started.
        """
        if self._session is None:
            raise LocalChainError(f"the {self.kind.value} chain is not started")
        return self._session

    def start(self) -> LocalChain:
        """Start the chain and wait until it answers JSON-RPC.

        Returns:
            This chain, started.

        Raises:
            ChainBinaryNotFoundError: If the executable is missing (run ``npm ci``).
            LocalChainError: If the chain does not come up within 30 seconds; the message ends
                with the tail of its error output.

        Whatever ends a start early (an error, Ctrl-C, SIGTERM) stops the process first: from
        the moment it exists it is recorded here and stopped at interpreter exit at the latest.
        """
        if self._process is not None:
            raise LocalChainError(f"the {self.kind.value} chain is already started")
        binary = find_chain_binary(self.kind)
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        try:
            for attempt in range(1, attempts + 1):
                port = self._requested_port or _free_port()
                try:
                    self._launch(binary, port)
                    break
                except LocalChainError:
                    # Another process may have taken the port between picking and binding it.
                    if attempt == attempts:
                        raise
                    logger.warning("%s did not start on port %d, retrying", self.kind.value, port)
            self._session = connect(self.rpc_url, self.chain_id)
        except BaseException:  # an interrupt too: the process must not outlive a failed start
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the chain and every process in its group; a no-op if it is not running."""
        process, self._process = self._process, None
        self._session = None
        self._port = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if process is not None:
            _stop_group(process)
            logger.info("stopped %s (pid %d)", self.kind.value, process.pid)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _command(self, binary: Path, port: int) -> list[str]:
        if self.kind is ChainKind.GANACHE:
            command = [
                str(binary),
                "--hardfork", "shanghai",
                "--chain.chainId", str(self.chain_id),
                "--server.host", "127.0.0.1",
                "--server.port", str(port),
                "--wallet.mnemonic", self._mnemonic,
                "--wallet.totalAccounts", str(self._account_count),
                "--miner.blockGasLimit", "30000000",
                "--logging.quiet",
            ]  # fmt: skip
            if self._block_time is not None:
                command += ["--miner.blockTime", str(self._block_time)]
        else:
            command = [
                str(binary),
                "--host", "127.0.0.1",
                "--port", str(port),
                "--chain-id", str(self.chain_id),
                "--mnemonic", self._mnemonic,
                "--accounts", str(self._account_count),
                "--silent",
            ]  # fmt: skip
            if self._block_time is not None:
                command += ["--block-time", str(self._block_time)]
        return command

    def _launch(self, binary: Path, port: int) -> None:
        """Start the process on ``port`` and wait until it answers; stop it if it does not.

        Raises:
            LocalChainError: If it exits, answers another chain id, or stays silent too long.
        """
        if self._stderr is not None:
            self._stderr.close()
        # A file, not a pipe: a chatty chain can never block on a full pipe nobody reads.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        with _signals_held():  # no interrupt between the process starting and being recorded
            self._process = subprocess.Popen(
                self._command(binary, port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                start_new_session=True,
            )
            atexit.register(self.stop)
        url = f"http://127.0.0.1:{port}"
        problem = self._wait_until_up(self._process, url)
        if problem is not None:
            self.stop()
            raise LocalChainError(problem)
        self._port = port
        logger.info("started %s on %s (pid %d)", self.kind.value, url, self._process.pid)

    def _wait_until_up(self, process: subprocess.Popen[bytes], url: str) -> str | None:
        """Poll ``url`` until the chain answers: None, or why it never will."""
        deadline = time.monotonic() + _START_DEADLINE
        while True:
            if process.poll() is not None:
                return (
                    f"{self.kind.value} exited with status {process.returncode} before "
                    f"answering on {url}{self._stderr_tail()}"
                )
            try:
                answered = int(_rpc(url, "eth_chainId", [], timeout=1.0), 16)
            except (OSError, ValueError, ChainError):
                answered = None
            if answered is not None:
                if answered != self.chain_id:
                    return (
                        f"{url} answered chain id {answered}, expected {self.chain_id}: "
                        "is another chain on that port?"
                    )
                return None
            if time.monotonic() > deadline:
                return (
                    f"{self.kind.value} did not answer JSON-RPC on {url} within "
                    f"{_START_DEADLINE:.0f} s{self._stderr_tail()}"
                )
            time.sleep(0.05)

    def _stderr_tail(self, limit: int = 2000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - limit))
        tail = self._stderr.read().decode(errors="replace").strip()
        return f"; its stderr ends with:\n{tail}" if tail else "; it wrote nothing to stderr"

    # --- helpers for tests and demos -----------------------------------------------------------

    def rpc(self, method: str, *params: Any) -> Any:
        """Make one raw JSON-RPC request (for the evm_* development methods).

        Raises:
            ChainError: If the chain answers with an error.
            LocalChainError: If the chain is not started.
        """
        return _rpc(self.rpc_url, method, list(params), timeout=30.0)

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks."""
        for _ in range(blocks):
            self.rpc("evm_mine")

    def increase_time(self, seconds: int) -> None:
        """Move the chain clock forward by ``seconds`` and mine a block with the new time."""
        self.rpc("evm_increaseTime", int(seconds))
        self.rpc("evm_mine")

    def snapshot(self) -> str:
        """Take a snapshot of the chain state; returns its id for :meth:`revert`."""
        snapshot_id: str = self.rpc("evm_snapshot")
        return snapshot_id

    def revert(self, snapshot_id: str) -> None:
        """Return the chain to a snapshot (which is used up, on both chains).

        Senders keep a local nonce: call ``TransactionSender.resync_nonce()`` (or make a new
        sender) after reverting.

        Raises:
            LocalChainError: If the chain refused (unknown or used-up snapshot id).
        """
        if not self.rpc("evm_revert", snapshot_id):
            raise LocalChainError(f"{self.kind.value} refused to revert to snapshot {snapshot_id}")


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then act on them as before.

    In the main thread only (elsewhere signals cannot be handled). A held signal whose handler
    was Python code calls it (Ctrl-C raises ``KeyboardInterrupt`` as usual); one left to the
    default action exits with ``128 + signal`` through ``SystemExit``, so clean-up still runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in _HELD_SIGNALS}
    try:
        yield
    finally:
        for held_signal, handler in previous.items():
            signal.signal(held_signal, handler)
        for signum in held[:1]:
            before = previous[signal.Signals(signum)]
            if callable(before):
                before(signum, None)
            elif before == signal.SIG_DFL:
                raise SystemExit(128 + signum)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Terminate the process group led by ``process``, killing it if it does not stop."""
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        pgid = None
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_GRACE)
    except subprocess.TimeoutExpired:
        logger.warning("pid %d ignored SIGTERM, killing its group", process.pid)
    if pgid is not None:
        # Whatever is left in the group (a node child) is killed outright.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    process.wait()
