"""End-to-end tests of the ``imaging-consent`` command, run as a subprocess on a real Ganache.

(a) ``imaging-consent demo`` tells its story and exits 0; (b) a scripted session with the
individual commands: deploy, roles, registration, consent, fetch, verify (and tampering),
signed consent relayed, revocation, refusal, break-glass, audit; plus usage and key errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from dicom_samples import sample

from imaging_consent.chain import LocalChain, write_keystore
from imaging_consent.dicom import SitePepper, locate_pixel_data, study_key

SRC = Path(__file__).resolve().parents[2] / "src"
PASSWORD = "correct horse"
# Dev accounts of the test mnemonic, by role.
ADMIN, GATEWAY, PATIENT, RADIOLOGIST, RESEARCH, RELAYER, EMERGENCY = range(7)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGING_CONSENT_")}
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["COLUMNS"] = "200"
    return env


def cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m imaging_consent ARGS`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "imaging_consent", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 1 with exactly one error line on stderr, naming ``fragments``, no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), lines
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --- (a) the demo ----------------------------------------------------------------------------


def test_demo_tells_the_story_and_exits_0(tmp_path: Path) -> None:
    started = time.monotonic()

    result = cli("demo", env=_clean_env(), cwd=tmp_path, timeout=180)

    elapsed = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, (out[-3000:], result.stderr[-3000:])
    assert elapsed < 60
    assert "released 1 instance(s) to the radiologist, identified" in out
    assert "verified 1/1 file(s) against the content root on chain" in out
    assert "refused: no consent for HRESCH; the refusal is recorded on chain" in out
    assert "the patient's balance is unchanged" in out
    assert "released 1 instance(s) to the research app, de-identified" in out
    assert "no identifying attribute left" in out
    assert "the de-identified pixels still verified against the chain" in out
    assert "refused: the grant is revoked" in out
    assert "break-glass: released" in out and "flagged for the patient" in out
    assert "BREAK-GLASS" in out and "1 break-glass access(es) flagged for review" in out
    assert "grantBySig (relayer pays)" in out and "recordBreakGlass" in out
    assert "demo complete" in out
    assert "Traceback" not in result.stderr


# --- (b) a scripted session ------------------------------------------------------------------


@dataclass
class Session:
    chain: LocalChain
    root: Path
    env: dict[str, str]
    pepper: SitePepper
    patient_keystore: Path
    ct_uid: str
    mr_uid: str

    def address(self, index: int) -> str:
        return self.chain.accounts[index].address

    def as_key(self, index: int) -> dict[str, str]:
        """The environment with account ``index``'s dev key as the signing key."""
        return {
            **self.env,
            "IMAGING_CONSENT_PRIVATE_KEY": "0x" + bytes(self.chain.accounts[index].key).hex(),
        }

    def run(
        self, *args: str, key: int | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        chosen = env if env is not None else (self.as_key(key) if key is not None else self.env)
        return cli(*args, env=chosen, cwd=self.root)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """A Ganache chain, two real studies, a pepper file, a patient keystore, and the env."""
    root = tmp_path_factory.mktemp("cli-session")
    studies = root / "studies"
    studies.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copyfile(sample(name), studies / name)
    pepper = SitePepper(os.urandom(32))
    pepper_file = root / "site-pepper"
    pepper_file.write_text(pepper.reveal().hex())
    pepper_file.chmod(0o600)
    with LocalChain("ganache") as chain:
        keystore = write_keystore(
            chain.accounts[PATIENT], root / "patient.json", PASSWORD, iterations=2**12
        )
        env = _clean_env()
        env.update(
            HOME=str(root),
            XDG_CONFIG_HOME=str(root / ".config"),
            IMAGING_CONSENT_RPC_URL=chain.rpc_url,
            IMAGING_CONSENT_MANIFEST=str(root / "deployments" / "1337.json"),
            IMAGING_CONSENT_SITE_PEPPER_FILE=str(pepper_file),
            IMAGING_CONSENT_STORE=str(studies),
        )
        yield Session(
            chain=chain,
            root=root,
            env=env,
            pepper=pepper,
            patient_keystore=keystore,
            ct_uid=str(pydicom.dcmread(studies / "CT_small.dcm").StudyInstanceUID),
            mr_uid=str(pydicom.dcmread(studies / "MR_small.dcm").StudyInstanceUID),
        )


def test_scripted_session(session: Session) -> None:
    s = session
    patient = s.address(PATIENT)
    ct_key = "0x" + study_key(s.pepper, s.ct_uid).hex()
    patient_env = {
        **s.env,
        "IMAGING_CONSENT_KEYSTORE": str(s.patient_keystore),
        "IMAGING_CONSENT_KEYSTORE_PASSWORD": PASSWORD,
    }

    # An operator deploys and is also the first site; the site appoints its own gateway and
    # emergency clinician (an account that is not a site cannot).
    deployed = s.run("deploy", "--site", s.address(ADMIN), key=ADMIN)
    assert deployed.returncode == 0, deployed.stderr
    assert (s.root / "deployments" / "1337.json").is_file()
    assert "granted SITE_ROLE" in deployed.stdout
    appointed = s.run("site", "grant-role", "GATEWAY", s.address(GATEWAY), key=ADMIN)
    assert appointed.returncode == 0, appointed.stderr
    assert f"granted GATEWAY_ROLE for site {s.address(ADMIN)}" in appointed.stdout
    clinician = s.run("site", "grant-role", "emergency", s.address(EMERGENCY), key=ADMIN)
    assert clinician.returncode == 0, clinician.stderr
    assert "granted EMERGENCY_ROLE" in clinician.stdout
    again = s.run("site", "grant-role", "GATEWAY", s.address(GATEWAY), key=ADMIN)
    assert again.returncode == 0 and "already has GATEWAY_ROLE" in again.stdout
    not_a_site = s.run("site", "grant-role", "GATEWAY", s.address(RELAYER), key=RELAYER)
    assert_one_error_line(not_a_site, "is not a site")

    # The site registers its folder for the patient (the pepper is never printed).
    registered = s.run("site", "register", str(s.root / "studies"), "--patient", patient, key=ADMIN)
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.count("registered") >= 2
    assert ct_key in registered.stdout
    assert s.pepper.reveal().hex() not in registered.stdout + registered.stderr

    # The patient grants the radiologist TREAT on the CT, with their keystore.
    granted = s.run(
        "consent", "grant", "--grantee", s.address(RADIOLOGIST), "--study-key", ct_key,
        "--purpose", "TREAT", "--identified", "--expires", "30d", env=patient_env,
    )  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    assert "granted TREAT (identified)" in granted.stdout

    # The radiologist's viewer fetches through the gate (the gateway key signs the log).
    out1 = s.root / "received" / "ct"
    fetched = s.run(
        "fetch", s.ct_uid, "--purpose", "TREAT", "--as", s.address(RADIOLOGIST), "--out", str(out1),
        key=GATEWAY,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    assert "released 1 instance(s)" in fetched.stdout and "(identified)" in fetched.stdout
    dicoms = sorted(out1.glob("*.dcm"))
    assert len(dicoms) == 1 and (out1 / "proof.json").is_file()

    # Anyone verifies the files against the chain; a flipped byte fails.
    verified = s.run("verify", str(dicoms[0]), "--proof", str(out1 / "proof.json"))
    assert verified.returncode == 0, verified.stderr
    assert "verified 1 file(s)" in verified.stdout
    pixels = locate_pixel_data(dicoms[0])
    assert pixels is not None
    data = bytearray(dicoms[0].read_bytes())
    data[pixels.offset + pixels.length // 2] ^= 0xFF  # one pixel byte
    dicoms[0].write_bytes(bytes(data))
    tampered = s.run("verify", str(out1))
    assert tampered.returncode == 1
    assert "FAILED" in tampered.stdout and "do not match the chain" in tampered.stderr
    assert "Traceback" not in tampered.stderr

    # The patient signs a research consent; a relayer pays for it.
    consent_file = s.root / "research-consent.json"
    signed = s.run(
        "consent", "sign", "--grantee", s.address(RESEARCH), "--all-studies",
        "--purpose", "HRESCH", "--deidentified", "--expires", "30d", "--out", str(consent_file),
        env=patient_env,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    document = json.loads(consent_file.read_text())
    assert document["kind"] == "grant" and document["signature"].startswith("0x")
    assert document["typedData"]["primaryType"] == "Grant"
    w3 = s.chain.session.w3
    balance_before = w3.eth.get_balance(patient)
    relayed = s.run("consent", "relay", str(consent_file), key=RELAYER)
    assert relayed.returncode == 0, relayed.stderr
    assert "relayed grant" in relayed.stdout and s.address(RELAYER) in relayed.stdout
    assert w3.eth.get_balance(patient) == balance_before
    research_out = s.root / "received" / "research"
    research = s.run(
        "fetch", s.mr_uid, "--purpose", "HRESCH", "--as", s.address(RESEARCH),
        "--out", str(research_out), key=GATEWAY,
    )  # fmt: skip
    assert research.returncode == 0, research.stderr
    assert "(de-identified)" in research.stdout and "verified 1/1" in research.stdout
    released = pydicom.dcmread(next(research_out.glob("*.dcm")))
    assert released.PatientIdentityRemoved == "YES"
    assert released.StudyInstanceUID != s.mr_uid

    # The patient revokes; the next fetch is refused, recorded, and writes nothing.
    revoked = s.run(
        "consent", "revoke", "--grantee", s.address(RADIOLOGIST), "--study-key", ct_key,
        env=patient_env,
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    out2 = s.root / "received" / "ct-again"
    refused = s.run(
        "fetch", s.ct_uid, "--purpose", "TREAT", "--as", s.address(RADIOLOGIST), "--out", str(out2),
        key=GATEWAY,
    )  # fmt: skip
    assert_one_error_line(refused, "consent does not permit", "refusal is recorded")
    assert not out2.exists()
    assert not list((s.root / "received").glob(".fetch-*"))

    # An emergency clinician breaks the glass, signing the request with their own key; the
    # gateway key alone cannot.
    medic_keystore = write_keystore(
        s.chain.accounts[EMERGENCY], s.root / "medic.json", PASSWORD, iterations=2**12
    )
    medic_env = {**s.as_key(GATEWAY), "IMAGING_CONSENT_REQUESTER_KEYSTORE_PASSWORD": PASSWORD}
    unsigned = s.run(
        "fetch", s.ct_uid, "--purpose", "ETREAT", "--as", s.address(EMERGENCY),
        "--break-glass", "unconscious patient in the ED", "--out", str(s.root / "received" / "x"),
        key=GATEWAY,
    )  # fmt: skip
    assert unsigned.returncode == 2 and "--requester-keystore" in unsigned.stderr
    glass = s.run(
        "fetch", s.ct_uid, "--purpose", "ETREAT", "--requester-keystore", str(medic_keystore),
        "--break-glass", "unconscious patient in the ED", "--out", str(s.root / "received" / "er"),
        env=medic_env,
    )  # fmt: skip
    assert glass.returncode == 0, glass.stderr
    assert "BREAK-GLASS" in glass.stdout

    # The patient appoints a guardian until a date, then removes them.
    guardian = s.run("consent", "delegate", s.address(RELAYER), env=patient_env)
    assert guardian.returncode == 2 and "--expires" in guardian.stderr
    guardian = s.run("consent", "delegate", s.address(RELAYER), "--expires", "90d", env=patient_env)
    assert guardian.returncode == 0, guardian.stderr
    assert "appointed delegate" in guardian.stdout
    removed = s.run("consent", "delegate", s.address(RELAYER), "--remove", env=patient_env)
    assert removed.returncode == 0, removed.stderr
    assert "removed delegate" in removed.stdout

    # The patient's audit trail shows every event, newest first.
    audit = s.run("audit", "--patient", patient)
    assert audit.returncode == 0, audit.stderr
    text = audit.stdout
    for word in ("consent granted", "consent revoked", "released", "refused", "BREAK-GLASS"):
        assert word in text, word
    assert "1 break-glass access(es) flagged for review" in text
    trail = text[text.index("Audit trail") :]
    assert trail.index("BREAK-GLASS") < trail.index("consent revoked") < trail.index("HRESCH")
    listed = s.run("consent", "list", "--patient", patient)
    assert listed.returncode == 0, listed.stderr
    assert s.address(RESEARCH) in listed.stdout and "HRESCH" in listed.stdout
    assert s.address(RADIOLOGIST) not in listed.stdout


def test_usage_errors_exit_2(session: Session) -> None:
    missing = session.run("consent", "grant", "--purpose", "TREAT", "--all-studies")
    both = session.run(
        "consent", "grant", "--grantee", session.address(RADIOLOGIST), "--purpose", "TREAT",
        "--all-studies", "--study-key", "0x" + "11" * 32,
    )  # fmt: skip
    no_requester = session.run("fetch", "1.2.3", "--purpose", "TREAT", "--out", "x")
    unknown = session.run("no-such-command")

    for result in (missing, both, no_requester, unknown):
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    assert "--grantee" in missing.stderr
    assert "exactly one of --study-key" in both.stderr


def test_key_errors_exit_1_with_one_line(session: Session) -> None:
    args = ("consent", "grant", "--grantee", session.address(RADIOLOGIST), "--all-studies",
            "--purpose", "TREAT")  # fmt: skip
    env = {**session.env, "IMAGING_CONSENT_KEYSTORE_PASSWORD": "wrong"}

    missing = session.run(*args, "--keystore", str(session.root / "nope.json"), env=env)
    wrong = session.run(*args, "--keystore", str(session.patient_keystore), env=env)
    none = session.run(*args)
    bad_purpose = session.run(*args[:-1], "SHOPPING", key=PATIENT)

    assert_one_error_line(missing, "nope.json", "does not exist")
    assert_one_error_line(wrong, "wrong password")
    assert_one_error_line(none, "no signing key", "--keystore")
    assert bad_purpose.returncode == 2 and "unknown purpose" in bad_purpose.stderr  # usage


def test_unreachable_chain_is_one_line(session: Session) -> None:
    result = session.run("audit", "--patient", session.address(PATIENT), "--rpc-url",
                         "http://127.0.0.1:9")  # fmt: skip

    assert_one_error_line(result, "cannot reach")
