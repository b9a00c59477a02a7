"""The ``imaging-consent`` command as a whole, run as subprocesses (on Ganache where needed).

(1) ``--version`` and shell completion; (2) exit codes: 2 for every usage error, wherever the bad
value came from; (3) Ctrl-C and SIGTERM at many moments of ``demo`` and ``chain start``: exit
130/143, no traceback, no chain process left, its port free; (4) ``demo --keep`` twice in one
folder, its printed next steps run as pasted each time; (5) the demo at 80 columns; (6) the docs:
every configuration variable, every command and option they use, ``env.sh``, ``make demo``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from test_cli_e2e import cli

from imaging_consent.chain import LocalChain
from imaging_consent.cli.app import app
from imaging_consent.cli.config import CONFIG_ENV, ENV
from imaging_consent.contracts.deployment import deploy, sender_for
from imaging_consent.contracts.manifest import manifest_path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
MARK = "IMAGING_CONSENT_TEST_MARK"
HEX = re.compile(r"0x[0-9a-fA-F]+")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGING_CONSENT_")}
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["COLUMNS"] = "200"
    return {**env, **extra}


def shell_exit_code(returncode: int) -> int:
    """What a shell reports: a process killed by signal N exits 128 + N."""
    return returncode if returncode >= 0 else 128 - returncode


# --- processes a run started, found by a mark in their environment -----------------------------


def marked_pids(marker: str) -> set[int]:
    """Every live process whose environment holds ``MARK=marker`` (a chain inherits it)."""
    needle = f"{MARK}={marker}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def chain_ports(pids: set[int]) -> set[int]:
    """The ports the chains among ``pids`` were told to listen on."""
    ports = set()
    for pid in pids:
        try:
            args = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        for flag in ("--server.port", "--port"):
            if flag in args[:-1]:
                ports.add(int(args[args.index(flag) + 1]))
    return ports


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


@dataclass(frozen=True)
class Stopped:
    moment: tuple[str, float]
    exit_code: int
    stderr: str
    ports: frozenset[int]
    left: frozenset[int]
    finished_first: bool = False  # the command had ended before the signal could be sent


def console_script(folder: Path) -> Path:
    """An ``imaging-consent`` script as pip writes it for the console entry point."""
    script = folder / "imaging-consent"
    if not script.exists():
        script.write_text(
            f"#!{sys.executable}\nimport re\nimport sys\nfrom imaging_consent.cli import main\n"
            "if __name__ == '__main__':\n    sys.exit(main())\n"
        )
        script.chmod(0o755)
    return script


def catches_sigterm(pid: int) -> bool:
    """Whether ``pid`` handles SIGTERM: then the entry point's handlers are in place (Python
    alone leaves SIGTERM to its default action)."""
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return False
    caught = re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.MULTILINE)
    return caught is not None and bool(int(caught.group(1), 16) >> (signal.SIGTERM - 1) & 1)


def stop_at(args: tuple[str, ...], moment: tuple[str, float], signum: int, cwd: Path) -> Stopped:
    """Run ``imaging-consent ARGS``, send ``signum`` at ``moment``, and see what is left.

    A moment is ``("handlers", s)``: ``s`` seconds after the entry point installed its handlers
    (its imports follow), or ``("chain", s)``: ``s`` seconds after the chain process was
    spawned. Both are found by watching the process, so they hold on a slow machine too.
    """
    anchor, delay = moment
    marker = uuid.uuid4().hex
    process = subprocess.Popen(
        [str(console_script(cwd)), *args],
        env=clean_env(**{MARK: marker}),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ports: set[int] = set()
    try:
        give_up = time.monotonic() + 120
        while not (catches_sigterm(process.pid) if anchor == "handlers" else ports):
            assert process.poll() is None and time.monotonic() < give_up, f"no {anchor} seen"
            ports |= chain_ports(marked_pids(marker) - {process.pid})
            time.sleep(0.005)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            ports |= chain_ports(marked_pids(marker) - {process.pid})
            time.sleep(0.02)
        finished_first = process.poll() is not None
        if not finished_first:
            process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
        left = marked_pids(marker)
        return Stopped(
            moment,
            shell_exit_code(process.returncode),
            stderr,
            frozenset(ports),
            frozenset(left),
            finished_first,
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        kill_all(marked_pids(marker))


def assert_stopped_cleanly(runs: list[Stopped], code: int) -> None:
    # On a fast machine a command can end before a late moment comes: nothing to interrupt.
    assert sum(not run.finished_first for run in runs) >= len(runs) // 2, runs
    for run in runs:
        assert run.exit_code == (0 if run.finished_first else code), run
        assert "Traceback" not in run.stderr, run
        assert not run.left, f"still running after a signal at {run.moment}: {run}"
        for port in run.ports:
            assert port_free(port), f"port {port} still taken after a signal at {run.moment}"


# --- (1) version and completion ----------------------------------------------------------------


def test_version_is_the_package_version(tmp_path: Path) -> None:
    declared = re.search(
        r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE
    )

    result = cli("--version", env=clean_env(), cwd=tmp_path)

    assert declared is not None
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"imaging-consent {declared.group(1)}"


def test_shell_completion_installs_and_completes_in_bash(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shim = tmp_path / "bin" / "imaging-consent"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m imaging_consent "$@"\n')
    shim.chmod(0o755)
    env = clean_env(HOME=str(home), SHELL="/bin/bash")
    env["PATH"] = f"{shim.parent}{os.pathsep}{env['PATH']}"

    def in_bash(command: str) -> subprocess.CompletedProcess[str]:
        """Run ``command`` as a child of bash (``; true``: not exec'd), which it detects."""
        return subprocess.run(
            ["bash", "-c", f"{command}; status=$?; true; exit $status"], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    shown = in_bash("imaging-consent --show-completion")
    installed = in_bash("imaging-consent --install-completion")
    script = home / ".bash_completions" / "imaging-consent.sh"
    completions = {}
    for words in ("imaging-consent cha", "imaging-consent chain st", "imaging-consent demo --ke"):
        cword = len(words.split()) - 1
        completed = subprocess.run(
            ["bash", "-c", f'. "{script}"; COMP_WORDS=({words}); COMP_CWORD={cword}; '
             '_imaging_consent_completion imaging-consent; printf "%s\\n" "${COMPREPLY[@]}"'],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        completions[words] = completed.stdout.split()

    assert shown.returncode == 0 and "_imaging_consent_completion" in shown.stdout, shown.stderr
    assert installed.returncode == 0, installed.stderr
    assert str(script) in (home / ".bashrc").read_text()
    assert completions == {
        "imaging-consent cha": ["chain"],
        "imaging-consent chain st": ["start"],
        "imaging-consent demo --ke": ["--keep"],
    }


# --- (2) usage errors exit 2 -------------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    chain: LocalChain
    env: dict[str, str]

    def key(self, index: int) -> dict[str, str]:
        secret = "0x" + bytes(self.chain.accounts[index].key).hex()
        return {**self.env, "IMAGING_CONSENT_PRIVATE_KEY": secret}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """A Ganache chain with the suite deployed, and an environment that points at it."""
    root = tmp_path_factory.mktemp("cli-app")
    with LocalChain("ganache") as chain:
        suite = deploy(chain.session, sender_for(chain.session, chain.accounts[0]), out_dir=None)
        manifest = manifest_path(root / "deployments", chain.chain_id)
        suite.manifest.write(manifest)
        env = clean_env(
            HOME=str(root),
            XDG_CONFIG_HOME=str(root / ".config"),
            IMAGING_CONSENT_RPC_URL=chain.rpc_url,
            IMAGING_CONSENT_MANIFEST=str(manifest),
        )
        yield Deployed(chain, env)


def test_every_usage_error_exits_2_with_one_line(deployed: Deployed, tmp_path: Path) -> None:
    patient = deployed.chain.accounts[2].address
    grantee = deployed.chain.accounts[3].address
    letter = next(i for i, c in enumerate(grantee) if i > 1 and c.isalpha())
    mistyped = grantee[:letter] + grantee[letter].swapcase() + grantee[letter + 1 :]
    grant = ("consent", "grant", "--grantee", grantee, "--all-studies", "--purpose")
    cases = {
        "unknown purpose": (("unknown purpose",), (*grant, "SHOPPING"), deployed.key(2)),
        "bad checksum": (("checksum",), ("audit", "--patient", mistyped), deployed.env),
        "not an address": (("not an address",), ("audit", "--patient", "0x12zz"), deployed.env),
        "bad scheme": (
            ("RPC URL",),
            ("audit", "--patient", patient, "--rpc-url", "ftp://example.org"),
            deployed.env,
        ),
        "bad port": (
            ("RPC URL",),
            ("audit", "--patient", patient, "--rpc-url", "http://127.0.0.1:port"),
            deployed.env,
        ),
        "bad url from the environment": (
            ("RPC URL",),
            ("audit", "--patient", patient),
            {**deployed.env, ENV["rpc_url"]: "127.0.0.1:8545"},
        ),
        "bad private key": (
            ("IMAGING_CONSENT_PRIVATE_KEY",),
            (*grant, "TREAT"),
            {**deployed.env, "IMAGING_CONSENT_PRIVATE_KEY": "0x1234"},
        ),
        "bad study key": (
            ("study key",),
            ("consent", "grant", "--grantee", grantee, "--study-key", "0x12", "--purpose", "TREAT"),
            deployed.key(2),
        ),
    }
    for name, (fragments, args, env) in cases.items():
        result = cli(*args, env=env, cwd=tmp_path)

        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, name
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        text = " ".join(lines)
        for fragment in fragments:
            assert fragment.lower() in text.lower(), (name, text)
        if name != "bad study key":  # typer's own usage errors also print the usage line
            assert len(lines) == 1 and lines[0].startswith("error:"), (name, lines)


def test_click_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = cli("audit", env=clean_env(), cwd=tmp_path)
    unknown_option = cli("audit", "--nope", env=clean_env(), cwd=tmp_path)
    unknown_command = cli("no-such-command", env=clean_env(), cwd=tmp_path)

    for result in (missing, unknown_option, unknown_command):
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    assert "--patient" in missing.stderr and "--nope" in unknown_option.stderr


# --- (3) Ctrl-C and SIGTERM at any moment ------------------------------------------------------

#: Through the imports, the chain's start (spawned, not yet answering, answering), the story.
MOMENTS = (
    *(("handlers", s) for s in (0.0, 0.05, 0.2, 0.5, 1.0)),
    *(("chain", s) for s in (0.0, 0.2, 0.6, 1.5, 3.0)),
)
COMMANDS = {"demo": ("demo",), "chain start": ("chain", "start")}


@pytest.mark.parametrize("command", COMMANDS)
def test_ctrl_c_at_any_moment_exits_130_and_stops_the_chain(command: str, tmp_path: Path) -> None:
    runs = [stop_at(COMMANDS[command], moment, signal.SIGINT, tmp_path) for moment in MOMENTS]

    assert_stopped_cleanly(runs, 130)
    assert all(run.ports for run in runs if run.moment[0] == "chain")


@pytest.mark.parametrize("command", COMMANDS)
def test_sigterm_at_any_moment_exits_143_and_stops_the_chain(command: str, tmp_path: Path) -> None:
    moments = (("handlers", 0.3), ("chain", 0.0), ("chain", 0.5), ("chain", 2.0))
    runs = [stop_at(COMMANDS[command], moment, signal.SIGTERM, tmp_path) for moment in moments]

    assert_stopped_cleanly(runs, 143)


def test_ctrl_c_stops_a_kept_chain_with_exit_130(tmp_path: Path) -> None:
    run = stop_at(("chain", "start", "--anvil"), ("chain", 3.0), signal.SIGINT, tmp_path)

    assert_stopped_cleanly([run], 130)
    assert run.ports and "Press Ctrl-C" in run.stderr and "error" not in run.stderr


def test_chain_start_json_is_one_document_then_ctrl_c_stops_it(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    process = subprocess.Popen(
        [sys.executable, "-m", "imaging_consent", "chain", "start", "--anvil", "--json"],
        env=clean_env(**{MARK: marker}),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        text = ""
        while not text.rstrip().endswith("}") or text.count("{") != text.count("}"):
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else ""
            text += line
        document = json.loads(text)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        kill_all(marked_pids(marker))

    assert document["kind"] == "anvil" and document["rpc_url"].startswith("http://127.0.0.1:")
    assert len(document["accounts"]) == 10 and "NEVER USE" in document["test_keys_notice"]
    assert shell_exit_code(process.returncode) == 130 and "Traceback" not in stderr
    assert not marked_pids(marker)


# --- (4) demo --keep, twice in one folder ------------------------------------------------------


def next_steps(stdout: str) -> str:
    """The commands ``demo --keep`` prints under "In another shell:", as a shell script."""
    block = stdout[stdout.index("In another shell:") :].splitlines()[1:]
    return "\n".join(line[2:] for line in block if line.startswith("  "))


def keep_and_follow(folder: Path, cwd: Path) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Run ``demo --keep``, run its printed next steps in bash, then Ctrl-C the demo."""
    marker = uuid.uuid4().hex
    demo = subprocess.Popen(
        [sys.executable, "-m", "imaging_consent", "demo", "--keep", "--dir", str(folder)],
        env=clean_env(**{MARK: marker}),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert demo.stdout is not None
        stdout = ""
        while "--patient" not in stdout.rsplit("In another shell:", 1)[-1]:
            line = demo.stdout.readline()
            assert line, ("the demo ended early", stdout, demo.stderr and demo.stderr.read())
            stdout += line
        script = (
            "set -euo pipefail\n"
            f'imaging-consent() {{ "{sys.executable}" -m imaging_consent "$@"; }}\n'
            + next_steps(stdout)
        )
        followed = subprocess.run(
            ["bash", "-c", script], env=clean_env(), cwd=cwd, capture_output=True, text=True,
            timeout=180, check=False,
        )  # fmt: skip
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=60)
        assert shell_exit_code(demo.returncode) == 130
        assert not marked_pids(marker)
        return stdout, followed
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        kill_all(marked_pids(marker))


def test_demo_keep_twice_in_one_folder_and_its_next_steps_run_as_printed(tmp_path: Path) -> None:
    folder = tmp_path / "my demo"  # a space: the printed commands must quote it

    first, followed_first = keep_and_follow(folder, tmp_path)
    second, followed_second = keep_and_follow(folder, tmp_path)

    for printed, followed in ((first, followed_first), (second, followed_second)):
        assert followed.returncode == 0, (followed.stdout[-3000:], followed.stderr[-3000:])
        assert "Traceback" not in followed.stderr
        assert "verified 1 file(s)" in followed.stdout or "verified" in followed.stdout
        assert "…" not in printed[printed.index("Continue by hand") :]
    received = {p.name for p in (folder / "received").iterdir()}
    assert received == {"radiologist", "research", "emergency", "ct-again"}
    names = {p.name for p in folder.iterdir()}
    assert {"deployments", "keys", "studies", "site-pepper", "imaging-consent.toml"} <= names
    assert "env.sh" in names and "received" in names


def test_demo_keep_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")

    result = cli("demo", "--keep", "--dir", str(folder), env=clean_env(), cwd=tmp_path)

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "no demo wrote it" in result.stderr and "Traceback" not in result.stderr
    assert (folder / "notes.txt").read_text() == "keep me"


# --- (5) the demo at 80 columns ----------------------------------------------------------------


def demo_at_80_columns(tmp_path: Path) -> str:
    result = cli("demo", env={**clean_env(), "COLUMNS": "80"}, cwd=tmp_path, timeout=180)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


def step_line(text: str, title: str) -> int:
    """Where the line of a step's rule starts."""
    return text.rindex("\n", 0, text.index(title)) + 1


def assert_reads_at_80_columns(text: str) -> None:
    assert "…" not in text
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, wide
    cut = [value for value in HEX.findall(text) if len(value) - 2 not in (40, 64)]
    assert not cut, f"keys or addresses cut or broken across lines: {cut}"


def test_demo_reads_well_at_80_columns(tmp_path: Path) -> None:
    text = demo_at_80_columns(tmp_path)

    audit, gas = step_line(text, "6. The patient reads"), step_line(text, "7. What it cost")
    story = text[:audit] + text[gas:]
    assert_reads_at_80_columns(story)
    assert len(HEX.findall(story)) >= 7 + 3 * 2  # the cast, then each study's key and root


def test_demo_audit_step_reads_well_at_80_columns(tmp_path: Path) -> None:
    text = demo_at_80_columns(tmp_path)

    audit, gas = step_line(text, "6. The patient reads"), step_line(text, "7. What it cost")
    assert_reads_at_80_columns(text[audit:gas])


# --- (6) the docs are true to the tool ---------------------------------------------------------


def test_every_configuration_variable_is_documented() -> None:
    docs = (ROOT / "docs" / "cli.md").read_text()
    table = docs[docs.index("## Configuration") :]
    table = table[: table.index("\n\n", table.index("| setting"))]
    named = {
        *ENV.values(),
        CONFIG_ENV,
        "IMAGING_CONSENT_KEYSTORE_PASSWORD",
        "IMAGING_CONSENT_PRIVATE_KEY",
        "IMAGING_CONSENT_REQUESTER_KEYSTORE_PASSWORD",
        "IMAGING_CONSENT_SITE_PEPPER",
        "IMAGING_CONSENT_LOG_FILE",
        "IMAGING_CONSENT_DEBUG",
        "IMAGING_CONSENT_NODE_MODULES",
        "IMAGING_CONSENT_ORTHANC_USERNAME",
        "IMAGING_CONSENT_ORTHANC_PASSWORD",
        "IMAGING_CONSENT_SERVE_HOST",
        "IMAGING_CONSENT_SERVE_PORT",
        "IMAGING_CONSENT_SERVE_PUBLIC_URL",
        "IMAGING_CONSENT_SERVE_LOG_MODE",
        "IMAGING_CONSENT_SERVE_FLUSH_INTERVAL",
        "IMAGING_CONSENT_SERVE_ALLOW_ORIGINS",
        "IMAGING_CONSENT_SERVE_TOKEN_LIFETIME",
        "IMAGING_CONSENT_SERVE_WORK_DIR",
        "IMAGING_CONSENT_SERVE_NETWORK_NAME",
        "IMAGING_CONSENT_SERVE_TX_LINK",
        "IMAGING_CONSENT_SERVE_RELAY_PER_HOUR",
        "IMAGING_CONSENT_SERVE_LABELS",
        "IMAGING_CONSENT_BREAK_GLASS_WEBHOOK",
    }
    used = set(re.findall(r"IMAGING_CONSENT_[A-Z_]+", "".join(
        path.read_text() for path in (SRC / "imaging_consent").rglob("*.py")
    )))  # fmt: skip

    assert used - {MARK} <= named, (
        f"variables the code reads but this test does not know: {used - named}"
    )
    missing = [name for name in sorted(named) if f"`{name}" not in table]
    assert not missing, f"not in the configuration table of docs/cli.md: {missing}"


def documented_commands() -> list[list[str]]:
    """Every ``imaging-consent ...`` command in the README's and docs/cli.md's code blocks."""
    commands = []
    for doc in (ROOT / "README.md", ROOT / "docs" / "cli.md"):
        for block in re.findall(r"```(?:sh|bash)\n(.*?)```", doc.read_text(), re.DOTALL):
            joined = block.replace("\\\n", " ")
            for line in joined.splitlines():
                line = line.split("#", 1)[0].strip()
                if "imaging-consent " in line:
                    words = line[line.index("imaging-consent ") :].split()[1:]
                    commands.append(words)
    return commands


def test_every_documented_command_and_option_exists() -> None:
    root = typer.main.get_command(app)
    commands = documented_commands()

    assert len(commands) >= 10
    for words in commands:
        command, path = root, []
        while words[len(path) :] and words[len(path)] in getattr(command, "commands", {}):
            command = command.commands[words[len(path)]]  # type: ignore[attr-defined]
            path.append(command.name)
        assert path or words[0].startswith("-"), f"no such command: imaging-consent {words}"
        known = {"--help"} | {opt for param in command.params for opt in param.opts}
        known |= {opt for param in command.params for opt in param.secondary_opts}
        for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", " ".join(words[len(path) :])):
            assert option in known, f"imaging-consent {' '.join(path)} has no {option}"


def test_env_sh_puts_the_venv_on_path_and_sets_nothing_secret(tmp_path: Path) -> None:
    text = (ROOT / "env.sh").read_text()
    project = tmp_path / "project"
    (project / ".venv" / "bin").mkdir(parents=True)
    tool = project / ".venv" / "bin" / "imaging-consent"
    tool.write_text("#!/bin/sh\necho from-the-venv\n")
    tool.chmod(0o755)
    shutil.copy(ROOT / "env.sh", project / "env.sh")
    source = (
        '. ./env.sh && command -v imaging-consent && imaging-consent && . ./env.sh && echo "$PATH"'
    )

    sourced = subprocess.run(
        ["bash", "-c", source], cwd=project, env=clean_env(), capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    not_installed = tmp_path / "not-installed"
    not_installed.mkdir()
    shutil.copy(ROOT / "env.sh", not_installed / "env.sh")
    elsewhere = subprocess.run(
        ["bash", "-c", ". ./env.sh"], cwd=not_installed, env=clean_env(), capture_output=True,
        text=True, timeout=30, check=False,
    )  # fmt: skip

    assert sourced.returncode == 0, sourced.stderr
    lines = sourced.stdout.splitlines()
    assert lines[0] == str(tool) and lines[1] == "from-the-venv"
    assert lines[2].split(os.pathsep).count(str(tool.parent)) == 1  # sourcing twice adds it once
    assert elsewhere.returncode != 0 and "make demo" in elsewhere.stderr
    assert set(re.findall(r"export (\w+)", text)) == {"PATH"}
    assert "IMAGING_CONSENT" not in text and "KEY" not in text


def test_make_demo_says_how_to_put_the_command_on_path() -> None:
    dry = subprocess.run(
        ["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )

    assert dry.returncode == 0, dry.stderr
    assert ". ./env.sh" in dry.stdout
    readme = (ROOT / "README.md").read_text()
    assert ". ./env.sh" in readme and "imaging-consent --version" in readme
