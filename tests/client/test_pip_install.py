"""`pip install .` into a fresh venv is enough to use the library against a running chain.

Slow (about a minute: pip resolves and installs the runtime dependencies from PyPI, or its
cache). It installs from a copy of pyproject.toml, README.md and src/ only, so it proves that
no brownie build, test helper or dev dependency is needed. A PyPI that cannot be reached fails
the test: the package must install on a fresh machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imaging_consent.chain import LocalChain
from imaging_consent.contracts.deployment import deploy, sender_for
from imaging_consent.contracts.manifest import manifest_path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "consent_quickstart.py"

CHECK_INSTALL = """
import importlib.resources, importlib.util, json, sys
import imaging_consent, imaging_consent.access_log.history, imaging_consent.consent
import imaging_consent.contracts.deployment
assert "site-packages" in imaging_consent.__file__, imaging_consent.__file__
names = sorted(p.name for p in importlib.resources.files("imaging_consent").joinpath(
    "artifacts").iterdir())
assert names == ["AccessLog.json", "ConsentRegistry.json", "StudyRegistry.json"], names
for name in names:
    data = json.loads(importlib.resources.files("imaging_consent").joinpath(
        "artifacts", name).read_text())
    assert data["abi"] and len(data["bytecode"]) > 1000, name
assert importlib.resources.files("imaging_consent").joinpath("py.typed").is_file()
migrations = importlib.resources.files("imaging_consent").joinpath("index", "migrations")
assert migrations.joinpath("versions", "0001_initial.py").is_file()
assert migrations.joinpath("env.py").is_file() and migrations.joinpath("script.py.mako").is_file()
assert "brownie" not in sys.modules
assert importlib.util.find_spec("brownie") is None
print("install ok")
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


@pytest.mark.slow
def test_pip_install_then_quickstart(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copy(ROOT / "README.md", project)
    shutil.copytree(
        ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)

    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", str(project)],
        capture_output=True, text=True, timeout=900, env=_clean_env(), cwd=tmp_path,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    check = subprocess.run(
        [str(python), "-c", CHECK_INSTALL],
        capture_output=True, text=True, timeout=120, env=_clean_env(), cwd=tmp_path,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert "install ok" in check.stdout

    with LocalChain("anvil") as chain:
        admin, patient, grantee, relayer = (chain.accounts[i] for i in (0, 1, 2, 3))
        deploy(chain.session, sender_for(chain.session, admin), out_dir=tmp_path)
        run = subprocess.run(
            [
                str(python), str(EXAMPLE), "--rpc-url", chain.rpc_url,
                "--manifest", str(manifest_path(tmp_path, chain.chain_id)),
                "--grantee", grantee.address,
            ],
            capture_output=True, text=True, timeout=180, cwd=tmp_path,
            env=_clean_env(
                IMAGING_CONSENT_PRIVATE_KEY=patient.key.hex(),
                IMAGING_CONSENT_RELAYER_KEY=relayer.key.hex(),
            ),
        )  # fmt: skip
        patient_txs = chain.session.w3.eth.get_transaction_count(patient.address)

    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"chain {chain.chain_id}, ConsentRegistry 0x")
    assert any(line.startswith("granted TREAT") for line in lines)
    assert any(line.startswith("revoked in block") for line in lines)
    assert any(line.startswith("relayed signed grant (issued at ") for line in lines)
    assert "is_permitted HRESCH: True (identified: False)" in lines
    assert "history: granted, revoked, granted" in lines
    assert f"current grant to {grantee.address}: HRESCH, identified=False" in lines
    assert patient_txs == 2  # the patient sent the grant and the revoke, not the signed one
