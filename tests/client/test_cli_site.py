"""The site, keys, deploy, audit, fetch and verify commands, run as subprocesses on a Ganache.

Full keys at any width (80 columns included), ``--json`` parsed back, the new commands
(``site list``, ``site roles``, ``site pepper new``, ``keys new|import|show``), progress with
counts on stderr, and errors that name the role, the file, or the pepper.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_utils.address import is_checksum_address
from release_samples import CT_STUDY, build_ct_study, write_copy
from test_cli_e2e import assert_one_error_line, cli

from imaging_consent.chain import LocalChain, load_keystore
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.contracts.deployment import Suite, load, sender_for
from imaging_consent.dicom import SitePepper, load_pepper, study_key
from imaging_consent.provenance import read_proofs

SRC = Path(__file__).resolve().parents[2] / "src"
ADMIN, GATEWAY, PATIENT, RADIOLOGIST, OTHER_PATIENT, EMERGENCY, STRANGER = range(7)
BIG_STUDY = "1.2.826.0.1.3680043.10.5432.77"
BIG_COUNT = 30
PASSWORD = "correct horse"


@dataclass
class World:
    chain: LocalChain
    root: Path
    env: dict[str, str]
    pepper: SitePepper
    deployed: dict[str, Any]

    def address(self, index: int) -> str:
        return self.chain.accounts[index].address

    def key_env(self, index: int) -> dict[str, str]:
        secret = "0x" + bytes(self.chain.accounts[index].key).hex()
        return {**self.env, "IMAGING_CONSENT_PRIVATE_KEY": secret}

    def run(
        self, *args: str, key: int | None = ADMIN, env: dict[str, str] | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        base = self.key_env(key) if key is not None else dict(self.env)
        if stdin is not None:
            return subprocess.run(
                [sys.executable, "-m", "imaging_consent", *args], input=stdin,
                env={**base, **(env or {})}, cwd=self.root, capture_output=True, text=True,
                timeout=120, check=False,
            )  # fmt: skip
        return cli(*args, env={**base, **(env or {})}, cwd=self.root)

    def suite(self) -> Suite:
        return load(self.chain.session, self.root / "deployments" / f"{self.chain.chain_id}.json")

    def key_of(self, uid: str) -> str:
        return "0x" + study_key(self.pepper, uid).hex()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A Ganache chain, a suite deployed with ``deploy --json``, a 3-instance CT study and a
    30-instance one in their own folders, a pepper file and a clean environment."""
    root = tmp_path_factory.mktemp("cli-site")
    build_ct_study(root / "ct", count=3)
    for i in range(1, BIG_COUNT + 1):
        write_copy("CT_small.dcm", root / "big" / f"b{i:02d}.dcm", study=BIG_STUDY,
                   series=BIG_STUDY + ".1", sop=f"{BIG_STUDY}.1.{i}", number=i)  # fmt: skip
    pepper = SitePepper(os.urandom(32))
    pepper_file = root / "site-pepper"
    pepper_file.write_text(pepper.reveal().hex())
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
            IMAGING_CONSENT_STORE=str(root / "ct"),
        )
        world = World(chain, root, env, pepper, {})
        deployed = world.run(
            "deploy", "--site", world.address(ADMIN), "--gateway", world.address(GATEWAY),
            "--emergency", world.address(EMERGENCY), "--json",
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        world.deployed = json.loads(deployed.stdout)
        yield world


def assert_full_width(text: str, width: int) -> None:
    """No cut value, no line wider than ``width``."""
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width, text


def run_with_terminal_stderr(world: World, *args: str, key: int) -> tuple[int, str, str]:
    """Run the command with stderr on a 100-column pseudo-terminal (as a person sees it) and
    stdout on a pipe; return the exit code, stdout and everything the terminal received."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**world.key_env(key), "COLUMNS": "100", "TERM": "xterm"}
    process = subprocess.Popen(
        [sys.executable, "-m", "imaging_consent", *args], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=follower, env=env, cwd=world.root,
    )  # fmt: skip
    os.close(follower)
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        stdout, _ = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        os.close(leader)
    terminal = b"".join(received).decode(errors="replace")
    return process.returncode, stdout.decode(), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal)


# --- deploy --json ------------------------------------------------------------------------------


def test_deploy_json_names_every_contract_and_role_by_name(world: World) -> None:
    document = world.deployed
    assert document["chain_id"] == world.chain.chain_id
    assert document["admin"] == world.address(ADMIN)
    assert sorted(document["contracts"]) == ["AccessLog", "ConsentRegistry", "StudyRegistry"]
    for contract in document["contracts"].values():
        assert is_checksum_address(contract["address"])
        assert re.fullmatch(r"0x[0-9a-f]{64}", contract["tx_hash"])
    roles = {(r["role"], r["account"]) for r in document["roles"]}
    assert roles == {
        ("SITE_ROLE", world.address(ADMIN)),
        ("GATEWAY_ROLE", world.address(GATEWAY)),
        ("EMERGENCY_ROLE", world.address(EMERGENCY)),
    }
    assert Path(world.root / document["manifest"]).is_file()
    assert document["replaced"] is None


# --- site register, list and roles --------------------------------------------------------------


def test_register_prints_full_keys_at_80_columns_and_json(world: World) -> None:
    patient = ("--patient", world.address(PATIENT))
    key = world.key_of(CT_STUDY)

    narrow = world.run("site", "register", str(world.root / "ct"), *patient,
                       env={"COLUMNS": "80"})  # fmt: skip
    as_json = world.run("site", "register", str(world.root / "ct"), *patient, "--json")

    assert narrow.returncode == 0, narrow.stderr
    assert_full_width(narrow.stdout, 80)
    assert key in narrow.stdout and "registered" in narrow.stdout
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["site"] == world.address(ADMIN)
    assert document["patient"] == world.address(PATIENT)
    [study] = document["studies"]
    assert study["study_key"] == key and study["action"] == "unchanged"
    assert study["instance_count"] == 3 and re.fullmatch(r"0x[0-9a-f]{64}", study["content_root"])
    assert "study_uid" not in study and CT_STUDY not in as_json.stdout
    assert document["skipped"] == []


def test_site_list_shows_a_sites_studies_and_one_patients(world: World) -> None:
    other = world.root / "other"
    write_copy("CT_small.dcm", other / "o.dcm", study=CT_STUDY + ".5", series=CT_STUDY + ".5.1",
               sop=CT_STUDY + ".5.1.1")  # fmt: skip
    retired = world.root / "retired"
    write_copy("CT_small.dcm", retired / "r.dcm", study=CT_STUDY + ".6",
               series=CT_STUDY + ".6.1", sop=CT_STUDY + ".6.1.1")  # fmt: skip
    for folder in (other, retired):
        done = world.run("site", "register", str(folder), "--patient",
                         world.address(OTHER_PATIENT))  # fmt: skip
        assert done.returncode == 0, done.stderr
    suite = world.suite()
    admin = sender_for(world.chain.session, world.chain.accounts[ADMIN])
    retired_key = study_key(world.pepper, CT_STUDY + ".6")
    admin.transact(suite.studies.retire_study(world.address(ADMIN), retired_key))

    everything = world.run("site", "list", "--json")
    mine = world.run("site", "list", "--site", world.address(ADMIN), "--patient",
                     world.address(PATIENT), "--json", key=None)  # fmt: skip
    narrow = world.run("site", "list", "--patient", world.address(PATIENT),
                       env={"COLUMNS": "80"})  # fmt: skip

    assert everything.returncode == 0, everything.stderr
    listed = json.loads(everything.stdout)
    assert listed["site"] == world.address(ADMIN) and listed["patient"] is None
    keys = {s["study_key"]: s for s in listed["studies"]}
    assert set(keys) >= {world.key_of(CT_STUDY), world.key_of(CT_STUDY + ".5")}
    assert world.key_of(CT_STUDY + ".6") not in keys and listed["retired"] == 1
    ct = keys[world.key_of(CT_STUDY)]
    assert ct["patient"] == world.address(PATIENT) and ct["instance_count"] == 3
    assert ct["content_version"] == 1 and ct["registered_at"].endswith("Z")
    assert mine.returncode == 0, mine.stderr
    assert [s["study_key"] for s in json.loads(mine.stdout)["studies"]] == [world.key_of(CT_STUDY)]
    assert narrow.returncode == 0, narrow.stderr
    assert_full_width(narrow.stdout, 80)
    assert world.key_of(CT_STUDY) in narrow.stdout
    assert world.key_of(CT_STUDY + ".5") not in narrow.stdout

    # Without --site and without a key, the command says what to pass.
    nobody = world.run("site", "list", key=None)
    assert_one_error_line(nobody, "--keystore")


def test_site_roles_lists_holders_by_role_name(world: World) -> None:
    listed = world.run("site", "roles", "--json", key=None)

    assert listed.returncode == 0, listed.stderr
    holders = {(h["role"], h["account"], h["site"]) for h in json.loads(listed.stdout)["holders"]}
    admin = world.address(ADMIN)
    assert holders == {
        ("DEFAULT_ADMIN_ROLE", admin, None),
        ("SITE_ROLE", admin, None),
        ("GATEWAY_ROLE", world.address(GATEWAY), admin),
        ("EMERGENCY_ROLE", world.address(EMERGENCY), admin),
    }

    revoked = world.run("site", "revoke-role", "EMERGENCY", world.address(EMERGENCY), "--json")
    again = world.run("site", "revoke-role", "EMERGENCY", world.address(EMERGENCY), "--json")
    after = world.run("site", "roles", "--json", key=None)
    unchecked = world.run("site", "grant-role", "EMERGENCY", world.address(EMERGENCY).lower())
    granted = world.run("site", "grant-role", "EMERGENCY", world.address(EMERGENCY))
    text = world.run("site", "roles", key=None, env={"COLUMNS": "80"})

    assert revoked.returncode == 0, revoked.stderr
    change = json.loads(revoked.stdout)
    assert change["role"] == "EMERGENCY_ROLE" and change["action"] == "revoked"
    assert change["site"] == admin and re.fullmatch(r"0x[0-9a-f]{64}", change["tx_hash"])
    assert json.loads(again.stdout)["action"] == "unchanged"
    assert "EMERGENCY_ROLE" not in {h["role"] for h in json.loads(after.stdout)["holders"]}
    assert unchecked.returncode == 2 and "--accept-unchecksummed" in unchecked.stderr
    assert granted.returncode == 0 and "granted EMERGENCY_ROLE" in granted.stdout
    assert text.returncode == 0, text.stderr
    assert_full_width(text.stdout, 80)
    for name in ("DEFAULT_ADMIN_ROLE", "SITE_ROLE", "GATEWAY_ROLE", "EMERGENCY_ROLE"):
        assert name in text.stdout
    assert world.address(EMERGENCY) in text.stdout


def test_errors_name_roles_not_hashes(world: World) -> None:
    not_admin = world.run("site", "grant-role", "SITE", world.address(STRANGER), key=PATIENT)
    not_site = world.run("site", "register", str(world.root / "ct"), "--patient",
                         world.address(PATIENT), key=STRANGER)  # fmt: skip

    assert_one_error_line(not_admin, f"{world.address(PATIENT)} lacks DEFAULT_ADMIN_ROLE")
    assert_one_error_line(not_site, f"{world.address(STRANGER)} lacks SITE_ROLE")
    assert "0x0000000000" not in not_admin.stderr and "0x" + "b9" not in not_site.stderr


# --- site pepper new, keys new|import|show ------------------------------------------------------


def test_pepper_new_writes_32_random_bytes_0600_and_never_overwrites(world: World) -> None:
    path = world.root / "peppers" / "new-pepper"
    path.parent.mkdir()

    made = world.run("site", "pepper", "new", str(path), key=None)
    first = path.read_bytes()
    again = world.run("site", "pepper", "new", str(path), "--json", key=None)
    other = world.run("site", "pepper", "new", str(path.with_name("second")), "--json", key=None)

    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert re.fullmatch(rb"[0-9a-f]{64}\n", first)
    assert load_pepper(path).reveal() == bytes.fromhex(first.decode())
    assert first.decode().strip() not in made.stdout + made.stderr
    assert f"IMAGING_CONSENT_SITE_PEPPER_FILE={path}" in made.stdout
    assert_one_error_line(again, str(path), "already exists")
    assert path.read_bytes() == first
    assert json.loads(other.stdout) == {"path": str(path.with_name("second")), "mode": "0600"}
    assert path.with_name("second").read_bytes() != first


def test_keys_new_import_and_show(world: World) -> None:
    folder = world.root / "keys"
    folder.mkdir()
    password = {"IMAGING_CONSENT_KEYSTORE_PASSWORD": PASSWORD}
    account = world.chain.accounts[STRANGER]
    secret = "0x" + bytes(account.key).hex()

    made = world.run("keys", "new", str(folder / "new.json"), "--json", key=None, env=password)
    shown = world.run("keys", "show", str(folder / "new.json"), key=None)
    shown_json = world.run("keys", "show", str(folder / "new.json"), "--json", key=None)
    again = world.run("keys", "new", str(folder / "new.json"), key=None, env=password)
    piped = world.run("keys", "import", str(folder / "piped.json"), key=None, env=password,
                      stdin=secret + "\n")  # fmt: skip
    from_env = world.run("keys", "import", str(folder / "env.json"), key=STRANGER, env=password)
    on_argv = world.run("keys", "import", str(folder / "argv.json"), secret, key=None,
                        env=password)  # fmt: skip
    no_password = world.run("keys", "new", str(folder / "nopw.json"), key=None)
    bad_key = world.run("keys", "import", str(folder / "bad.json"), key=None, env=password,
                        stdin="0x1234\n")  # fmt: skip

    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)["address"]
    assert is_checksum_address(created)
    assert stat.S_IMODE((folder / "new.json").stat().st_mode) == 0o600
    assert load_keystore(folder / "new.json", PASSWORD).address == created
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == created  # checksummed, and no password was needed
    assert json.loads(shown_json.stdout) == {"path": str(folder / "new.json"), "address": created}
    assert_one_error_line(again, "already exists")
    for imported, name in ((piped, "piped.json"), (from_env, "env.json")):
        assert imported.returncode == 0, imported.stderr
        assert account.address in imported.stdout
        assert secret[2:] not in imported.stdout + imported.stderr
        assert load_keystore(folder / name, PASSWORD).address == account.address
    assert on_argv.returncode == 2 and not (folder / "argv.json").exists()  # not an argument
    assert_one_error_line(no_password, "IMAGING_CONSENT_KEYSTORE_PASSWORD")
    assert not (folder / "nopw.json").exists()
    assert bad_key.returncode == 2  # malformed input is a usage error
    assert bad_key.stderr.strip().startswith("error:") and "Traceback" not in bad_key.stderr
    assert "standard input does not hold a private key" in bad_key.stderr


# --- fetch, verify and audit --------------------------------------------------------------------


@pytest.fixture(scope="module")
def consented(world: World) -> World:
    """The radiologist holds an identified TREAT grant on all of the patient's studies."""
    patient = sender_for(world.chain.session, world.chain.accounts[PATIENT])
    client = ConsentClient(world.suite(), patient)
    client.grant(world.address(RADIOLOGIST), None, [Purpose.TREAT], identified=True)
    return world


def test_fetch_and_verify_json(consented: World) -> None:
    world = consented
    out = world.root / "received" / "ct"
    asked = ("--purpose", "TREAT", "--as", world.address(RADIOLOGIST))

    fetched = world.run("fetch", CT_STUDY, *asked, "--out", str(out), "--json", key=GATEWAY)
    verified = world.run("verify", str(out), "--json", key=None)

    assert fetched.returncode == 0, fetched.stderr
    release = json.loads(fetched.stdout)
    assert release["study_key"] == world.key_of(CT_STUDY)
    assert release["requester"] == world.address(RADIOLOGIST) and release["purpose"] == "TREAT"
    assert release["identified"] is True and release["break_glass"] is False
    assert len(release["files"]) == 3 and all(Path(f).is_file() for f in release["files"])
    assert re.fullmatch(r"0x[0-9a-f]{64}", release["log_tx"])
    proves = read_proofs(out).proves
    assert release["proves"] == proves
    assert verified.returncode == 0, verified.stderr
    check = json.loads(verified.stdout)
    assert check["ok"] is True and check["proves"] == proves
    assert check["study_key"] == world.key_of(CT_STUDY) and check["content_protocol"] == 2
    assert sorted(Path(f["path"]).name for f in check["files"]) == sorted(
        Path(f).name for f in release["files"]
    )
    assert {f["status"] for f in check["files"]} == {"ok"}

    # A deleted file: the JSON still comes, says which, and the exit code is 1.
    Path(release["files"][0]).unlink()
    failed = world.run("verify", str(out), "--json", key=None)
    assert_one_error_line(failed, "1 file(s) named in proof.json are missing")
    statuses = {Path(f["path"]).name: f["status"] for f in json.loads(failed.stdout)["files"]}
    assert statuses[Path(release["files"][0]).name] == "missing"
    assert json.loads(failed.stdout)["ok"] is False


def test_progress_counts_on_stderr_and_json_stdout_stays_clean(consented: World) -> None:
    world = consented
    big = str(world.root / "big")
    out = world.root / "received" / "big"

    registered = run_with_terminal_stderr(world, "site", "register", big, "--patient",
                                          world.address(PATIENT), "--json", key=ADMIN)  # fmt: skip
    fetched = run_with_terminal_stderr(
        world, "fetch", BIG_STUDY, "--purpose", "TREAT", "--as", world.address(RADIOLOGIST),
        "--store", big, "--out", str(out), "--json", key=GATEWAY,
    )  # fmt: skip
    verified = run_with_terminal_stderr(world, "verify", str(out), "--json", key=ADMIN)

    for code, stdout, terminal in (registered, fetched, verified):
        assert code == 0, terminal
        json.loads(stdout)  # nothing else on stdout
        assert re.search(rf"\b{BIG_COUNT}/{BIG_COUNT}\b", terminal), terminal
    assert json.loads(registered[1])["studies"][0]["instance_count"] == BIG_COUNT
    assert len(json.loads(fetched[1])["files"]) == BIG_COUNT
    assert len(json.loads(verified[1])["files"]) == BIG_COUNT


def test_audit_reads_at_80_columns_with_full_keys_and_json(consented: World) -> None:
    world = consented
    patient = ("--patient", world.address(PATIENT))

    narrow = world.run("audit", *patient, key=None, env={"COLUMNS": "80"})
    wide = world.run("audit", *patient, key=None, env={"COLUMNS": "250"})
    as_json = world.run("audit", *patient, "--json", key=None)

    assert as_json.returncode == 0, as_json.stderr
    trail = json.loads(as_json.stdout)
    assert trail["patient"] == world.address(PATIENT)
    [grant] = trail["grants"]
    assert grant["grantee"] == world.address(RADIOLOGIST) and grant["purposes"] == ["TREAT"]
    assert grant["active"] is True and grant["expires_at"] is None
    accesses = [e for e in trail["events"] if e["type"] == "access"]
    assert accesses and all(e["kind"] == "granted" for e in accesses)
    released = accesses[-1]
    assert released["study_key"] == world.key_of(CT_STUDY)
    assert re.fullmatch(r"0x[0-9a-f]{64}", released["tx_hash"])
    assert released["timestamp"].endswith("Z")
    blocks = [(e["block_number"], e["log_index"]) for e in trail["events"]]
    assert blocks == sorted(blocks, reverse=True)
    for result, width in ((narrow, 80), (wide, 250)):
        assert result.returncode == 0, result.stderr
        assert_full_width(result.stdout, width)
        assert world.key_of(CT_STUDY) in result.stdout
        assert released["tx_hash"] in result.stdout
        assert world.address(RADIOLOGIST) in result.stdout


# --- errors that say what to do -----------------------------------------------------------------


def test_a_tampered_store_file_is_named(consented: World) -> None:
    world = consented
    store = world.root / "tampered"
    shutil.copytree(world.root / "ct", store)
    indexed = world.run("fetch", CT_STUDY, "--purpose", "TREAT", "--as",
                        world.address(RADIOLOGIST), "--store", str(store), "--out",
                        str(world.root / "received" / "first"), key=GATEWAY)  # fmt: skip
    assert indexed.returncode == 0, indexed.stderr
    # The second instance's SOP Instance UID changes in the dataset, same size and mtime: the
    # index does not notice, the gateway does.
    victim = store / "ct2.dcm"
    before = victim.stat()
    data = victim.read_bytes()
    uid = f"{CT_STUDY}.1.2".encode()
    at = data.rindex(uid)
    victim.write_bytes(data[:at] + f"{CT_STUDY}.1.9".encode() + data[at + len(uid) :])
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))

    refused = world.run("fetch", CT_STUDY, "--purpose", "TREAT", "--as",
                        world.address(RADIOLOGIST), "--store", str(store), "--out",
                        str(world.root / "received" / "second"), key=GATEWAY)  # fmt: skip

    assert_one_error_line(refused, "instance 2 of 3", f"(file {victim})")
    assert not (world.root / "received" / "second").exists()


def test_a_wrong_pepper_gets_a_hint(consented: World) -> None:
    world = consented
    wrong = world.root / "wrong-pepper"
    wrong.write_text(os.urandom(32).hex())
    wrong.chmod(0o600)
    asked = ("--purpose", "TREAT", "--as", world.address(RADIOLOGIST))
    env = {"IMAGING_CONSENT_SITE_PEPPER_FILE": str(wrong)}

    refused = world.run("fetch", CT_STUDY, *asked, "--out", str(world.root / "received" / "w"),
                        key=GATEWAY, env=env)  # fmt: skip
    unknown = world.run("fetch", CT_STUDY + ".404", *asked, "--out",
                        str(world.root / "received" / "u"), key=GATEWAY)  # fmt: skip

    assert_one_error_line(refused, "no study is registered under this key: check the site pepper")
    assert_one_error_line(unknown, "the store has no such study either")
    assert not (world.root / "received" / "w").exists()


# --- the audit index (last: once the default index exists, audit reads it) ---------------------


def test_index_sync_then_audit_answers_from_the_index_like_the_chain(consented: World) -> None:
    world = consented
    patient = ("--patient", world.address(PATIENT))

    synced = world.run("index", "sync", "--confirmations", "0", "--json", key=None)
    status = world.run("index", "status", "--json", key=None)
    from_index = world.run("audit", *patient, "--json", key=None)
    from_chain = world.run("audit", *patient, "--from-chain", "--json", key=None)
    again = world.run("index", "sync", "--confirmations", "0", key=None)

    assert synced.returncode == 0, synced.stderr
    result = json.loads(synced.stdout)
    assert result["events"] > 0 and result["behind"] == 0
    index_file = world.root / "deployments" / f"index-{world.chain.chain_id}.sqlite3"
    assert stat.S_IMODE(index_file.stat().st_mode) == 0o600
    assert json.loads(status.stdout)["access_records"] >= 1
    assert from_index.returncode == 0, from_index.stderr
    assert "from the audit index, 0 block(s) behind the chain" in from_index.stderr
    assert "audit index" not in from_chain.stderr
    indexed, direct = json.loads(from_index.stdout), json.loads(from_chain.stdout)
    # The chain's logs hold what was recorded one by one; the index adds the gateway's batched
    # records (here the refusals of the tampered store and the wrong pepper), with proofs.
    on_chain = [e for e in indexed["events"] if not e.get("batched")]
    batched = [e for e in indexed["events"] if e.get("batched")]
    assert on_chain == direct["events"] and indexed["grants"] == direct["grants"]
    assert batched and {e["reason"] for e in batched} >= {"IntegrityError"}
    assert all(e["kind"] == "denied" and e["batch_root"] for e in batched)
    assert "0 new event(s)" in again.stdout


def test_audit_time_range_and_index_of_another_chain(consented: World, tmp_path: Path) -> None:
    world = consented
    patient = ("--patient", world.address(PATIENT))
    future = world.run("audit", *patient, "--since", "2999-01-01", "--json", key=None)
    recent = world.run("audit", *patient, "--since", "3650d", "--json", key=None)
    bad = world.run("audit", *patient, "--since", "yesterday", key=None)
    with LocalChain("ganache") as other:
        foreign = tmp_path / "other.sqlite3"
        env = {"IMAGING_CONSENT_RPC_URL": other.rpc_url}
        deployed = world.run("deploy", "--manifest", str(tmp_path / "m.json"), env=env)
        assert deployed.returncode == 0, deployed.stderr
        made = world.run("index", "sync", "--manifest", str(tmp_path / "m.json"),
                         "--index", str(foreign), key=None, env=env)  # fmt: skip
        assert made.returncode == 0, made.stderr
    refused = world.run("audit", *patient, "--index", str(foreign), key=None)

    events = json.loads(future.stdout)["events"]
    assert not [e for e in events if e["type"] == "access"]
    assert [e for e in json.loads(recent.stdout)["events"] if e["type"] == "access"]
    assert bad.returncode == 2 and "--since" in bad.stderr
    assert_one_error_line(refused, "follows chain")


def test_index_sync_follow_keeps_up_and_stops_cleanly_on_ctrl_c(consented: World) -> None:
    world = consented
    process = subprocess.Popen(
        [sys.executable, "-m", "imaging_consent", "index", "sync", "--follow", "--interval",
         "0.2", "--confirmations", "0", "--json"],
        env=world.env, cwd=world.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(4)
        patient = sender_for(world.chain.session, world.chain.accounts[PATIENT])
        ConsentClient(world.suite(), patient).grant(
            world.address(STRANGER), None, [Purpose.HRESCH], identified=False
        )
        time.sleep(3)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    status = world.run("index", "status", "--json", key=None)

    assert process.returncode == 130, stderr
    assert "following the chain into" in stderr and "stopped; the index is complete" in stderr
    seen = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert any(doc["events"] >= 1 for doc in seen)  # the new grant, picked up while following
    cursor = json.loads(status.stdout)["cursor"]
    assert f"up to block {cursor}" in stderr
    assert "Traceback" not in stderr


def test_index_accesses_per_study_accessor_and_gateway(consented: World) -> None:
    world = consented
    study = world.key_of(CT_STUDY)

    per_gateway = world.run("index", "accesses", "--gateway", world.address(GATEWAY), "--json",
                            key=None)  # fmt: skip
    released = world.run("index", "accesses", "--study", study, "--kind", "granted",
                         "--accessor", world.address(RADIOLOGIST), "--json", key=None)  # fmt: skip
    newest = world.run("index", "accesses", "--study", study, "--limit", "1", "--json", key=None)
    table = world.run("index", "accesses", "--study", study, key=None, env={"COLUMNS": "80"})
    nothing = world.run("index", "accesses", key=None)
    bad_key = world.run("index", "accesses", "--study", "0x1234", key=None)

    assert per_gateway.returncode == 0, per_gateway.stderr
    everything = json.loads(per_gateway.stdout)["accesses"]
    assert everything and all(a["gateway"] == world.address(GATEWAY) for a in everything)
    granted = json.loads(released.stdout)["accesses"]
    assert granted and all(
        a["kind"] == "granted" and a["study_key"] == study
        and a["accessor"] == world.address(RADIOLOGIST) for a in granted
    )  # fmt: skip
    stamps = [a["timestamp"] for a in everything if a["study_key"] == study]
    [latest] = json.loads(newest.stdout)["accesses"]
    assert latest["timestamp"] == max(stamps)
    assert table.returncode == 0 and study in table.stdout
    assert_full_width(table.stdout, 80)
    assert nothing.returncode == 2 and "at least one of --patient" in nothing.stderr
    assert bad_key.returncode == 2 and "--study" in bad_key.stderr
