"""Safety of the ``imaging-consent`` command, run as a subprocess on a real Ganache.

(1) ``deploy`` never overwrites an existing manifest (``--replace`` moves it aside);
(2) ``verify`` fails a release with a file missing, or with a file its proof does not name;
(3) a patient's grant to their own address is refused, and nothing is sent.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import stat
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dicom_samples import sample
from hostile_dicom import nested_sequences
from release_samples import CT_STUDY, build_ct_study
from test_cli_e2e import assert_one_error_line, cli

from imaging_consent import errors
from imaging_consent.chain import LocalChain
from imaging_consent.cli.site import SKIPPED_LISTED
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.consent.signing import SignedConsent, sign_typed_data
from imaging_consent.contracts.deployment import deploy, load, sender_for
from imaging_consent.contracts.manifest import Manifest, manifest_path, set_aside
from imaging_consent.dicom import SitePepper
from imaging_consent.dicom.walk import walk_dicom
from imaging_consent.provenance import FileStatus, verify_release
from imaging_consent.stores import FolderStore, ProblemKind

SRC = Path(__file__).resolve().parents[2] / "src"
ADMIN, GATEWAY, PATIENT, RADIOLOGIST = range(4)


@dataclass
class World:
    chain: LocalChain
    root: Path
    env: dict[str, str]

    def address(self, index: int) -> str:
        return self.chain.accounts[index].address

    def nonce(self, index: int) -> int:
        return self.chain.session.w3.eth.get_transaction_count(self.address(index))

    def run(
        self, *args: str, key: int, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        secret = "0x" + bytes(self.chain.accounts[key].key).hex()
        cwd.mkdir(parents=True, exist_ok=True)
        return cli(*args, env={**self.env, **(env or {}), "IMAGING_CONSENT_PRIVATE_KEY": secret},
                   cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A Ganache chain, a CT study of three instances, a pepper file and a clean environment."""
    root = tmp_path_factory.mktemp("cli-safety")
    studies = build_ct_study(root / "studies", count=3)
    pepper_file = root / "site-pepper"
    pepper_file.write_text(SitePepper(os.urandom(32)).reveal().hex())
    pepper_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGING_CONSENT_")}
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["COLUMNS"] = "200"
    with LocalChain("ganache") as chain:
        env.update(
            HOME=str(root),
            XDG_CONFIG_HOME=str(root / ".config"),
            IMAGING_CONSENT_RPC_URL=chain.rpc_url,
            IMAGING_CONSENT_SITE_PEPPER_FILE=str(pepper_file),
            IMAGING_CONSENT_STORE=str(studies),
        )
        yield World(chain=chain, root=root, env=env)


# --- (1) deploy never overwrites a manifest ---------------------------------------------------


def test_deploy_refuses_an_existing_manifest_and_replace_moves_it_aside(world: World) -> None:
    here = world.root / "operator"
    manifest = here / "deployments" / f"{world.chain.chain_id}.json"
    first = world.run("deploy", "--site", world.address(ADMIN), key=ADMIN, cwd=here)
    assert first.returncode == 0, first.stderr
    old_text = manifest.read_text()
    old = Manifest.from_json(old_text)

    nonce = world.nonce(ADMIN)
    again = world.run("deploy", "--site", world.address(ADMIN), key=ADMIN, cwd=here)

    assert_one_error_line(again, f"deployments/{world.chain.chain_id}.json", "already exists",
                          "--replace")  # fmt: skip
    assert manifest.read_text() == old_text
    assert world.nonce(ADMIN) == nonce  # refused before anything was sent
    assert sorted(p.name for p in manifest.parent.iterdir()) == [manifest.name]

    replaced = world.run("deploy", "--site", world.address(ADMIN), "--replace", key=ADMIN, cwd=here)

    assert replaced.returncode == 0, replaced.stderr
    stamp = re.sub(r"[^0-9A-Za-z]", "", old.deployed_at)
    aside = manifest.parent / f"{world.chain.chain_id}.replaced-{stamp}.json"
    assert re.fullmatch(r"\d{8}T\d{6}Z", stamp)
    assert aside.read_text() == old_text
    new = Manifest.read(manifest)
    assert new.address("ConsentRegistry") != old.address("ConsentRegistry")
    assert "replaced the previous manifest" in replaced.stdout and aside.name in replaced.stdout
    assert load(world.chain.session, manifest).manifest == new

    # A custom --manifest is protected in the same way, and kept under its own name.
    custom = here / "site-a.json"
    shutil.copyfile(manifest, custom)
    refused = world.run("deploy", "--manifest", str(custom), key=ADMIN, cwd=here)
    assert_one_error_line(refused, "site-a.json", "already exists", "--replace")


def test_library_deploy_refuses_an_existing_manifest(world: World, tmp_path: Path) -> None:
    session = world.chain.session
    first = deploy(session, sender_for(session, world.chain.accounts[ADMIN]), out_dir=tmp_path)
    path = manifest_path(tmp_path, session.chain_id)
    old_text = path.read_text()
    nonce = world.nonce(ADMIN)

    with pytest.raises(errors.ManifestExistsError, match="already exists") as refused:
        deploy(session, sender_for(session, world.chain.accounts[ADMIN]), out_dir=tmp_path)

    assert isinstance(refused.value, errors.ManifestError)
    assert isinstance(refused.value, FileExistsError)
    assert str(path) in str(refused.value)
    assert world.nonce(ADMIN) == nonce and path.read_text() == old_text

    second = deploy(
        session, sender_for(session, world.chain.accounts[ADMIN]), out_dir=tmp_path, replace=True
    )

    stamp = re.sub(r"[^0-9A-Za-z]", "", first.manifest.deployed_at)
    aside = tmp_path / f"{session.chain_id}.replaced-{stamp}.json"
    assert aside.read_text() == old_text
    assert Manifest.read(path) == second.manifest
    # out_dir=None still writes nothing.
    deploy(session, sender_for(session, world.chain.accounts[ADMIN]), out_dir=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, aside.name])


def test_set_aside_never_overwrites_an_earlier_replaced_manifest(
    world: World, tmp_path: Path
) -> None:
    session = world.chain.session
    manifest = deploy(
        session, sender_for(session, world.chain.accounts[ADMIN]), out_dir=None
    ).manifest
    path = manifest.write(tmp_path / "1337.json")
    first = set_aside(path)
    manifest.write(path)  # the same deployedAt again

    second = set_aside(path)

    assert first != second and first.is_file() and second.is_file()
    assert second.name == first.name.replace(".json", "-2.json")
    assert not path.exists()
    (tmp_path / "broken.json").write_text("{not json")
    assert ".replaced-" in set_aside(tmp_path / "broken.json").name


# --- (2) verify fails an incomplete release ----------------------------------------------------


def test_verify_fails_a_release_with_a_missing_or_unnamed_file(world: World) -> None:
    here = world.root / "release"
    deployed = world.run(
        "deploy", "--site", world.address(ADMIN), "--gateway", world.address(GATEWAY),
        key=ADMIN, cwd=here,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    registered = world.run("site", "register", world.env["IMAGING_CONSENT_STORE"],
                           "--patient", world.address(PATIENT), key=ADMIN, cwd=here)  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    granted = world.run(
        "consent", "grant", "--grantee", world.address(RADIOLOGIST), "--all-studies",
        "--purpose", "TREAT", "--identified", "--expires", "30d", key=PATIENT, cwd=here,
    )  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    out = here / "received" / "ct"
    fetched = world.run(
        "fetch", CT_STUDY, "--purpose", "TREAT", "--as", world.address(RADIOLOGIST),
        "--out", str(out), key=GATEWAY, cwd=here,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    files = sorted(out.glob("*.dcm"))
    assert len(files) == 3

    complete = world.run("verify", str(out), key=ADMIN, cwd=here)
    assert complete.returncode == 0, complete.stderr
    assert "verified 3 file(s)" in complete.stdout

    # One of the three deleted: a failure, named.
    kept = files[1].read_bytes()
    files[1].unlink()
    incomplete = world.run("verify", str(out), key=ADMIN, cwd=here)
    assert_one_error_line(incomplete, "failed verification",
                          "1 file(s) named in proof.json are missing")  # fmt: skip
    assert re.search(rf"MISSING\s+\S*{re.escape(files[1].name)}", incomplete.stdout)
    assert "verified" not in incomplete.stdout
    # Naming the remaining files one by one does not hide it either.
    by_name = world.run("verify", str(files[0]), str(files[2]), key=ADMIN, cwd=here)
    assert_one_error_line(by_name, "1 file(s) named in proof.json are missing")

    # The library says the same, file by file.
    suite = load(world.chain.session, here / "deployments" / f"{world.chain.chain_id}.json")
    check = verify_release(suite, out)
    assert not check.ok
    assert [(c.path.name, c.status) for c in check.failed] == [(files[1].name, FileStatus.MISSING)]
    assert sum(c.ok for c in check.files) == 2

    # Restored, it verifies; a .dcm the proof does not name (here or given) fails.
    files[1].write_bytes(kept)
    assert verify_release(suite, out).ok
    stray = out / "extra.dcm"
    stray.write_bytes(kept)
    padded = world.run("verify", str(out), key=ADMIN, cwd=here)
    assert_one_error_line(padded, "1 file(s) are not named in proof.json")
    assert re.search(r"UNNAMED\s+\S*extra\.dcm", padded.stdout)
    stray.unlink()
    elsewhere = here / "elsewhere" / "other.dcm"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(kept)
    given = world.run("verify", str(elsewhere), "--proof", str(out / "proof.json"),
                      key=ADMIN, cwd=here)  # fmt: skip
    assert_one_error_line(given, "not named in proof.json")

    # Missing and mismatching together: one line counts both.
    files[0].unlink()
    pixels = walk_dicom(files[2].read_bytes())
    assert pixels.pixel_offset is not None
    data = bytearray(files[2].read_bytes())
    data[pixels.pixel_offset + pixels.pixel_length // 2] ^= 0xFF  # one pixel byte
    files[2].write_bytes(bytes(data))
    both = world.run("verify", str(out), key=ADMIN, cwd=here)
    assert_one_error_line(both, "1 file(s) do not match the chain",
                          "1 file(s) named in proof.json are missing")  # fmt: skip
    assert "FAILED" in both.stdout and "MISSING" in both.stdout


# --- (3) a grant to oneself is refused ---------------------------------------------------------


def test_grant_to_oneself_is_refused_and_nothing_is_sent(world: World, tmp_path: Path) -> None:
    session = world.chain.session
    deploy(session, sender_for(session, world.chain.accounts[ADMIN]), out_dir=tmp_path)
    manifest = manifest_path(tmp_path, session.chain_id)
    env = {"IMAGING_CONSENT_MANIFEST": str(manifest)}
    patient = world.address(PATIENT)
    nonce = world.nonce(PATIENT)

    granted = world.run("consent", "grant", "--grantee", patient.lower(), "--all-studies",
                        "--purpose", "TREAT", key=PATIENT, cwd=tmp_path, env=env)  # fmt: skip
    signed_file = tmp_path / "self.json"
    signed = world.run(
        "consent", "sign", "--grantee", patient, "--all-studies", "--purpose", "TREAT",
        "--out", str(signed_file), key=PATIENT, cwd=tmp_path, env=env,
    )  # fmt: skip

    assert_one_error_line(granted, "patient's own address")
    assert_one_error_line(signed, "patient's own address")
    assert not signed_file.exists()

    suite = load(session, manifest)
    client = ConsentClient(suite, sender_for(session, world.chain.accounts[PATIENT]))
    with pytest.raises(errors.InvalidGrantError, match="patient's own address"):
        client.grant(patient, None, [Purpose.TREAT], identified=True)
    with pytest.raises(errors.InvalidGrantError, match="patient's own address"):
        client.sign_grant(patient, patient, None, ["TREAT"], identified=False,
                          key=world.chain.accounts[PATIENT])  # fmt: skip
    assert world.nonce(PATIENT) == nonce
    assert client.get_grant(patient, patient, None) is None

    # A grant to someone else still goes through.
    client.grant(world.address(RADIOLOGIST), None, [Purpose.TREAT], identified=True)
    assert client.get_grant(patient, world.address(RADIOLOGIST), None) is not None
    # A self-grant signed by hand (without the client's checks) is not relayed either.
    other = client.sign_grant(patient, world.address(RADIOLOGIST), None, ["TREAT"],
                              identified=False)  # fmt: skip
    data = copy.deepcopy(other.typed_data)
    data["message"]["grantee"] = patient
    forged = SignedConsent("grant", data, sign_typed_data(data, world.chain.accounts[PATIENT]))
    relayer = ConsentClient(suite, sender_for(session, world.chain.accounts[ADMIN]))
    relayer_nonce = world.nonce(ADMIN)
    with pytest.raises(errors.InvalidGrantError, match="patient's own address"):
        relayer.relay_grant(forged)
    assert world.nonce(ADMIN) == relayer_nonce


# --- (4) secrets on disk and on the wire ----------------------------------------------------------


def test_consent_sign_writes_a_file_only_its_owner_can_read(world: World, tmp_path: Path) -> None:
    session = world.chain.session
    deploy(session, sender_for(session, world.chain.accounts[ADMIN]), out_dir=tmp_path)
    env = {"IMAGING_CONSENT_MANIFEST": str(manifest_path(tmp_path, session.chain_id))}
    out = tmp_path / "consent.json"
    out.write_text("an older, world-readable file\n")
    out.chmod(0o644)

    old = os.umask(0o022)
    try:
        signed = world.run(
            "consent", "sign", "--grantee", world.address(RADIOLOGIST), "--all-studies",
            "--purpose", "TREAT", "--out", str(out), key=PATIENT, cwd=tmp_path, env=env,
        )  # fmt: skip
    finally:
        os.umask(old)

    assert signed.returncode == 0, signed.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert SignedConsent.from_json(out.read_text()).signature is not None
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_plain_http_to_a_remote_node_is_refused_unless_allowed(world: World) -> None:
    here = world.root / "insecure"
    patient = ("--patient", world.address(PATIENT))
    remote = "http://10.255.255.1:8545/v1/secret-api-key"

    refused = world.run("audit", *patient, "--rpc-url", remote, key=ADMIN, cwd=here)

    assert_one_error_line(refused, "http://10.255.255.1:8545/...", "https://",
                          "--allow-insecure-rpc")  # fmt: skip
    assert "secret-api-key" not in refused.stderr
    # Allowed (option or environment), the URL is tried: here nothing listens.
    closed = "http://0.0.0.0:1"
    for extra, env in (
        (("--allow-insecure-rpc",), None),
        ((), {"IMAGING_CONSENT_ALLOW_INSECURE_RPC": "1"}),
    ):
        tried = world.run("audit", *patient, "--rpc-url", closed, *extra, key=ADMIN, cwd=here,
                          env=env)  # fmt: skip
        assert_one_error_line(tried, "cannot reach JSON-RPC endpoint http://0.0.0.0:1")


# --- (5) site register tells the truth about the folder -----------------------------------------


def _deployed(world: World, here: Path) -> None:
    deployed = world.run("deploy", "--site", world.address(ADMIN), key=ADMIN, cwd=here)
    assert deployed.returncode == 0, deployed.stderr


def test_site_register_names_every_skipped_file_and_its_reason(world: World) -> None:
    here = world.root / "pydicom-files"
    _deployed(world, here)
    folder = here / "studies"
    folder.mkdir()
    for dcm in sorted(sample("CT_small.dcm").parent.glob("*.dcm")):
        shutil.copyfile(dcm, folder / dcm.name)
    expected = FolderStore(folder, here / "expected.sqlite3")
    problems = expected.problems()
    counts = Counter(p.kind for p in problems)
    assert len(problems) > SKIPPED_LISTED and len(counts) >= 3
    log = here / "imaging-consent.log"
    register = ("site", "register", str(folder), "--patient", world.address(PATIENT))

    quiet = world.run(*register, key=ADMIN, cwd=here, env={"IMAGING_CONSENT_LOG_FILE": str(log)})

    assert quiet.returncode == 0, quiet.stderr
    assert "Traceback" not in quiet.stderr and "Warning" not in quiet.stderr
    assert "unreadable DICOM[/]" not in quiet.stderr
    summary = [line for line in quiet.stderr.splitlines() if "file(s) skipped" in line]
    assert len(summary) == 1 and "--show-skipped lists them" in summary[0]
    assert summary[0].startswith(f"{len(problems)} file(s) skipped: ")
    for kind, n in counts.items():
        assert f"{n} {kind.value}" in summary[0]
    assert all(p.path.name not in quiet.stderr for p in problems)  # counted, not listed
    # Study keys (and content roots) only: no Study UID on screen.
    assert len(re.findall(r"0x[0-9a-f]{64}", quiet.stdout)) == 2 * len(expected.studies())
    assert not [uid for uid in expected.studies() if uid in quiet.stdout + quiet.stderr]
    # The log file is private; pydicom's lines (which may quote values) are not in it.
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "image index refreshed" in log.read_text() and "pydicom" not in log.read_text()

    debug = {"IMAGING_CONSENT_LOG_FILE": str(log), "IMAGING_CONSENT_DEBUG": "1"}
    listed = world.run(*register, "--show-skipped", "--show-uids", key=ADMIN, cwd=here, env=debug)

    assert listed.returncode == 0, listed.stderr
    assert "Warning" not in listed.stderr and "pydicom" in log.read_text()
    assert all(uid in listed.stdout for uid in expected.studies())
    rows = {line.split()[1]: line for line in listed.stderr.splitlines() if line.startswith("│ ")}
    for problem in problems:
        row = rows[problem.path.name]
        assert problem.kind.value in row and problem.detail[:40] in row, row
    duplicate = next(p for p in problems if p.kind is ProblemKind.DUPLICATE)
    assert f"also in {duplicate.detail.removeprefix('also in ')}" in rows[duplicate.path.name]


def test_site_register_survives_a_hostile_file_and_a_link_out(world: World) -> None:
    here = world.root / "hostile"
    _deployed(world, here)
    folder = here / "studies"
    shutil.copytree(world.env["IMAGING_CONSENT_STORE"], folder)
    nested_sequences(folder / "nested.dcm", depth=3000)
    outside = shutil.copyfile(sample("MR_small.dcm"), here / "outside.dcm")
    (folder / "link.dcm").symlink_to(outside)

    registered = world.run("site", "register", str(folder), "--patient", world.address(PATIENT),
                           key=ADMIN, cwd=here)  # fmt: skip

    assert registered.returncode == 0, registered.stderr
    assert re.search(r"0x[0-9a-f]{64}.*\s3\s.*registered", registered.stdout)
    assert re.search(r"│ link\.dcm\s+│ symbolic link out of the store", registered.stderr)
    assert re.search(r"│ nested\.dcm\s+│ unreadable DICOM", registered.stderr)
    assert "2 file(s) skipped: " in registered.stderr
    assert "--show-skipped" not in registered.stderr
