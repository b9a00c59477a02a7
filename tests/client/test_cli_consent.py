"""The ``consent`` commands a first-day user can trust, run as subprocesses on a real chain.

(1) addresses without a checksum are refused for grants, revocations and delegations unless
``--accept-unchecksummed``; (2) a grant says what it replaces and asks (``--yes``), an identical
grant sends nothing, an unregistered study key is refused unless ``--force``; (3) durations
count from now, times are ISO 8601 UTC, a chain clock ahead of this machine's is refused;
(4) ``consent check`` says why access is refused; (5) ``--for PATIENT``; (6) history that says
appointed or removed, and by whom, at 80 columns too; (7) several signed consents relayed in
and out of order; (8) ``--json`` on every command, parsed back.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from imaging_consent.chain import LocalChain
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.contracts.deployment import Suite, deploy, sender_for
from imaging_consent.contracts.manifest import manifest_path

SRC = Path(__file__).resolve().parents[2] / "src"
ADMIN = 0
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
UNIX_SECONDS = re.compile(r"\b1\d{9}\b")


@dataclass
class World:
    chain: LocalChain
    suite: Suite
    root: Path
    env: dict[str, str]
    registered: bytes  # a study key registered by the site for account 1
    next_account: int = 1

    def account(self) -> Any:
        """A dev account no other test has used (its own patient, grantee or delegate)."""
        self.next_account += 1
        return self.chain.accounts[self.next_account]

    def run(
        self,
        *args: str,
        key: Any = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``imaging-consent ARGS`` off a terminal (stdin closed), signing with ``key``."""
        extra = {} if key is None else {"IMAGING_CONSENT_PRIVATE_KEY": "0x" + bytes(key.key).hex()}
        return subprocess.run(
            [sys.executable, "-m", "imaging_consent", *args],
            env={**self.env, **extra, **(env or {})},
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def json(self, *args: str, key: Any = None, code: int = 0) -> Any:
        result = self.run(*args, "--json", key=key)
        assert result.returncode == code, (result.stdout, result.stderr)
        return json.loads(result.stdout)

    def nonce(self, account: Any) -> int:
        return self.chain.session.w3.eth.get_transaction_count(account.address)

    def client(self, account: Any = None) -> ConsentClient:
        sender = None if account is None else sender_for(self.chain.session, account)
        return ConsentClient(self.suite, sender)

    def register(self, patient: str) -> bytes:
        """Register a fresh study key for ``patient`` at the site (account 0)."""
        key = os.urandom(32)
        site = sender_for(self.chain.session, self.chain.accounts[ADMIN])
        site.transact(self.suite.studies.register_study(key, patient, b"\x01" * 32, 1))
        return key


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGING_CONSENT_")}
    env.pop("COLUMNS", None)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(HOME=str(root), XDG_CONFIG_HOME=str(root / ".config"), COLUMNS="200")
    return env


def _world(chain: LocalChain, root: Path) -> World:
    session = chain.session
    admin = chain.accounts[ADMIN]
    suite = deploy(session, sender_for(session, admin), sites=[admin.address], out_dir=root)
    env = _env(root)
    env.update(
        IMAGING_CONSENT_RPC_URL=chain.rpc_url,
        IMAGING_CONSENT_MANIFEST=str(manifest_path(root, session.chain_id)),
    )
    world = World(chain=chain, suite=suite, root=root, env=env, registered=b"")
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A Ganache chain with the suite deployed; account 0 is admin and site."""
    with LocalChain("ganache", accounts=40) as chain:
        yield _world(chain, tmp_path_factory.mktemp("cli-consent"))


def assert_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """Exit ``code``, no traceback, nothing on stdout, the fragments on stderr; the error text."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    text = " ".join(result.stderr.split())
    for fragment in fragments:
        assert fragment in text, text
    return text


def _iso_to_unix(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


# --- (1) addresses without a checksum -------------------------------------------------------


def test_an_address_without_checksum_is_refused_unless_accepted(world: World) -> None:
    patient, doctor, guardian = world.account(), world.account(), world.account()
    nonce = world.nonce(patient)
    grant = ("consent", "grant", "--all-studies", "--purpose", "TREAT", "--identified")

    lower = world.run(*grant, "--grantee", doctor.address.lower(), key=patient)
    upper = world.run(*grant, "--grantee", "0x" + doctor.address[2:].upper(), key=patient)
    typo = doctor.address[:-1] + ("1" if doctor.address[-1] != "1" else "2")
    mistyped = world.run(*grant, "--grantee", typo, key=patient)
    revoke = world.run(
        "consent", "revoke", "--all-studies", "--grantee", doctor.address.lower(), key=patient
    )
    appoint = world.run(
        "consent", "delegate", guardian.address.lower(), "--expires", "30d", key=patient
    )
    remove = world.run("consent", "delegate", guardian.address.lower(), "--remove", key=patient)

    for result in (lower, upper, revoke, appoint, remove):
        text = assert_error(
            result, 2, "no EIP-55 checksum", "cannot be caught", "--accept-unchecksummed"
        )
        assert guardian.address.lower() not in text and doctor.address.lower() not in text
    assert_error(mistyped, 2, "does not match its mixed-case EIP-55 checksum")
    assert world.nonce(patient) == nonce  # nothing was sent
    assert world.client().get_grant(patient.address, doctor.address, None) is None

    accepted = world.run(
        *grant, "--grantee", doctor.address.lower(), "--accept-unchecksummed", key=patient
    )
    assert accepted.returncode == 0, accepted.stderr
    assert world.client().get_grant(patient.address, doctor.address, None) is not None
    # Digits-only or checksummed addresses need no flag; self-grants are refused first.
    own = world.run(*grant, "--grantee", patient.address.lower(), key=patient)
    assert_error(own, 1, "patient's own address")


# --- (2) what a grant replaces, identical grants, unregistered keys ---------------------------


def test_a_replacing_grant_says_what_it_replaces_and_needs_yes_off_a_terminal(
    world: World,
) -> None:
    patient, doctor = world.account(), world.account()
    grant = ("consent", "grant", "--all-studies", "--grantee", doctor.address)
    first = world.run(
        *grant, "--purpose", "TREAT", "--identified", "--expires", "2031-01-01", key=patient
    )
    assert first.returncode == 0, first.stderr
    nonce = world.nonce(patient)

    replacing = world.run(*grant, "--purpose", "HRESCH", key=patient)

    assert_error(
        replacing,
        1,
        "would replace the existing one",
        "TREAT (identified), now → 2031-01-01T00:00:00Z",
        "HRESCH (de-identified), now → no expiry",
        "pass --yes",
    )
    assert world.nonce(patient) == nonce
    stored = world.client().get_grant(patient.address, doctor.address, None)
    assert stored is not None and stored.purposes == {Purpose.TREAT} and stored.identified

    identical = world.run(
        *grant,
        "--purpose",
        "TREAT",
        "--identified",
        "--expires",
        "2031-01-01T00:00:00Z",
        key=patient,
    )
    assert identical.returncode == 0, identical.stderr
    assert "unchanged: the same grant is already in place" in identical.stdout
    assert "nothing sent" in identical.stdout
    assert world.nonce(patient) == nonce
    same = world.json(
        *grant, "--purpose", "TREAT", "--identified", "--expires", "2031-01-01", key=patient
    )
    assert same["result"] == "unchanged" and same["tx_hash"] is None

    replaced = world.json(*grant, "--purpose", "HRESCH", "--yes", key=patient)

    assert replaced["result"] == "replaced"
    assert replaced["replaced"] == {
        "purposes": ["TREAT"],
        "identified": True,
        "not_before": None,
        "expires_at": "2031-01-01T00:00:00Z",
    }
    assert replaced["purposes"] == ["HRESCH"] and replaced["identified"] is False
    assert re.fullmatch(r"0x[0-9a-f]{64}", replaced["tx_hash"])
    stored = world.client().get_grant(patient.address, doctor.address, None)
    assert stored is not None and stored.purposes == {Purpose.HRESCH} and not stored.identified


def _on_a_terminal(world: World, args: list[str], key: Any, answer: bytes) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdin/stdout, answer its prompt."""
    leader, follower = pty.openpty()
    env = {**world.env, "IMAGING_CONSENT_PRIVATE_KEY": "0x" + bytes(key.key).hex()}
    process = subprocess.Popen(
        [sys.executable, "-m", "imaging_consent", *args],
        env=env,
        cwd=world.root,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Replace it?" not in seen and time.monotonic() < deadline:
            if select.select([leader], [], [], 1)[0]:
                seen += os.read(leader, 4096)
        os.write(leader, answer + b"\n")
        code = process.wait(timeout=60)
        while select.select([leader], [], [], 0.2)[0]:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    return code, re.sub(r"\x1b\[[0-9;]*m", "", seen.decode(errors="replace"))


def test_on_a_terminal_a_replacing_grant_asks_first(world: World) -> None:
    patient, doctor = world.account(), world.account()
    grant = ["consent", "grant", "--all-studies", "--grantee", doctor.address]
    assert world.run(*grant, "--purpose", "TREAT", key=patient).returncode == 0
    nonce = world.nonce(patient)

    declined, screen = _on_a_terminal(world, [*grant, "--purpose", "PUBHLTH"], patient, b"n")

    assert declined == 1 and "This replaces the existing grant" in screen, screen
    assert "TREAT (de-identified)" in screen and "PUBHLTH (de-identified)" in screen
    assert world.nonce(patient) == nonce

    agreed, screen = _on_a_terminal(world, [*grant, "--purpose", "PUBHLTH"], patient, b"y")

    assert agreed == 0 and "granted PUBHLTH" in screen, screen
    stored = world.client().get_grant(patient.address, doctor.address, None)
    assert stored is not None and stored.purposes == {Purpose.PUBHLTH}


def test_a_grant_on_a_study_key_nobody_registered_is_refused_unless_forced(world: World) -> None:
    patient, other, doctor = world.account(), world.account(), world.account()
    mine, theirs = world.register(patient.address), world.register(other.address)
    nonce = world.nonce(patient)
    grant = ("consent", "grant", "--grantee", doctor.address, "--purpose", "TREAT")
    unknown_key = "0x" + os.urandom(32).hex()

    unknown = world.run(*grant, "--study-key", unknown_key, key=patient)
    not_mine = world.run(*grant, "--study-key", "0x" + theirs.hex(), key=patient)
    signed = world.run(
        "consent",
        "sign",
        *grant[2:],
        "--study-key",
        unknown_key,
        "--out",
        str(world.root / "unknown.json"),
        key=patient,
    )

    for result in (unknown, not_mine, signed):
        text = assert_error(result, 1, "no site has registered a study of this patient", "--force")
        assert unknown_key not in text and theirs.hex() not in text and patient.address not in text
    assert world.nonce(patient) == nonce and not (world.root / "unknown.json").exists()

    assert world.run(*grant, "--study-key", "0x" + mine.hex(), key=patient).returncode == 0
    forced = world.run(*grant, "--study-key", unknown_key, "--force", key=patient)
    assert forced.returncode == 0, forced.stderr
    assert (
        world.client().get_grant(patient.address, doctor.address, bytes.fromhex(unknown_key[2:]))
        is not None
    )


# --- (3) times --------------------------------------------------------------------------------


def test_durations_count_from_now_and_times_are_iso(world: World) -> None:
    patient, doctor = world.account(), world.account()
    grant = ("consent", "grant", "--all-studies", "--grantee", doctor.address, "--purpose", "TREAT")

    before = int(time.time())
    week = world.json(*grant, "--expires", "7d", key=patient)
    after = int(time.time())
    later = world.run(*grant, "--not-before", "2030-01-01", "--expires", "7d", "--yes", key=patient)
    past = world.run(*grant, "--expires", "2020-01-01", "--yes", key=patient)
    garbled = world.run(*grant, "--expires", "next tuesday", "--yes", key=patient)

    end = _iso_to_unix(week["expires_at"])
    assert before + 7 * 86400 <= end <= after + 7 * 86400
    assert ISO.fullmatch(week["expires_at"])
    text = assert_error(
        later, 2, "--expires", "is not after --not-before 2030-01-01T00:00:00Z", "counts from now"
    )
    assert "expires_at" not in text and not UNIX_SECONDS.search(text)
    assert_error(past, 2, "--expires 2020-01-01T00:00:00Z is in the past")
    assert_error(garbled, 2, "--expires", "expected a duration")
    human = world.run(*grant, "--expires", "30d", "--yes", key=patient)
    assert human.returncode == 0, human.stderr
    assert ISO.search(human.stdout) and "UTC" not in human.stdout


def test_a_chain_clock_ahead_of_this_machine_refuses_durations(tmp_path: Path) -> None:
    with LocalChain("anvil", accounts=3) as chain:
        world = _world(chain, tmp_path)
        chain.increase_time(2 * 86400)
        patient, doctor = chain.accounts[1], chain.accounts[2]
        grant = (
            "consent",
            "grant",
            "--all-studies",
            "--grantee",
            doctor.address,
            "--purpose",
            "TREAT",
        )

        ahead = world.run(*grant, "--expires", "7d", key=patient)
        dated = world.run(*grant, "--expires", "2031-01-01", key=patient)

    text = assert_error(ahead, 1, "is ahead of this machine's clock", "give ISO dates")
    assert len(ISO.findall(text)) == 2
    assert dated.returncode == 0, dated.stderr


# --- (4) refusals say why, (5) --for a patient ------------------------------------------------


def _check(
    world: World, patient: Any, grantee: Any, scope: tuple[str, ...], purpose: str, *extra: str
) -> dict[str, Any]:
    result = world.run(
        "consent",
        "check",
        "--patient",
        patient.address,
        "--grantee",
        grantee.address,
        *scope,
        "--purpose",
        purpose,
        *extra,
        "--json",
    )
    document: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == (0 if document["permitted"] else 1), result.stderr
    return document


def test_check_says_why_access_is_refused(world: World) -> None:
    patient, doctor, lab = world.account(), world.account(), world.account()
    study = world.register(patient.address)
    on_study = ("--study-key", "0x" + study.hex())
    client = world.client(patient)

    assert _check(world, patient, doctor, on_study, "TREAT")["reason"] == "no_grant"
    client.grant(doctor.address, None, ["TREAT"], identified=False)
    allowed = _check(world, patient, doctor, on_study, "TREAT")
    assert allowed["permitted"] and allowed["decided_by"] == "0x" + "00" * 32
    wrong = _check(world, patient, doctor, on_study, "HRESCH")
    assert wrong["reason"] == "wrong_purpose" and wrong["purposes"] == ["TREAT"]
    deid = _check(world, patient, doctor, on_study, "TREAT", "--identified")
    assert deid["reason"] == "deidentified_only" and not deid["permitted"]
    client.set_exclusion(study)
    assert _check(world, patient, doctor, on_study, "TREAT")["reason"] == "excluded"
    client.set_exclusion(study, False)
    client.revoke(doctor.address, None)
    revoked = _check(world, patient, doctor, on_study, "TREAT")
    assert revoked["reason"] == "revoked" and ISO.fullmatch(revoked["changed_at"])

    start = int(time.time()) + 86400
    client.grant(lab.address, study, ["HRESCH"], identified=False, not_before=start)
    soon = _check(world, patient, lab, on_study, "HRESCH")
    assert soon["reason"] == "not_yet_valid" and _iso_to_unix(soon["not_before"]) == start
    end = int(time.time()) + 5  # wall clock: the next block's time, whatever the last one's
    client.grant(lab.address, study, ["HRESCH"], identified=False, expires_at=end)
    time.sleep(max(0.0, end - time.time()) + 1)
    world.chain.mine()
    gone = _check(world, patient, lab, on_study, "HRESCH")
    assert gone["reason"] == "expired" and _iso_to_unix(gone["expires_at"]) == end

    text = world.run(
        "consent",
        "check",
        "--patient",
        patient.address,
        "--grantee",
        lab.address,
        *on_study,
        "--purpose",
        "HRESCH",
    )
    assert text.returncode == 1 and "not permitted" in text.stdout
    assert f"expired: the study's grant ended at {gone['expires_at']}" in text.stdout


def test_a_delegate_grants_and_revokes_for_the_patient(world: World) -> None:
    patient, guardian, doctor, stranger = (world.account() for _ in range(4))
    appointed = world.json("consent", "delegate", guardian.address, "--expires", "90d", key=patient)
    assert appointed["result"] == "delegate_appointed"

    granted = world.json(
        "consent",
        "grant",
        "--for",
        patient.address,
        "--grantee",
        doctor.address,
        "--all-studies",
        "--purpose",
        "TREAT",
        key=guardian,
    )
    refused = world.run(
        "consent",
        "grant",
        "--for",
        patient.address,
        "--grantee",
        doctor.address,
        "--all-studies",
        "--purpose",
        "ETREAT",
        key=stranger,
    )

    assert granted["as_delegate"] and granted["patient"] == patient.address
    assert granted["expires_at"] == appointed["expires_at"]  # ends with the delegation
    assert_error(refused, 1, "not a delegate")
    everyone = ("--all-studies",)
    assert _check(world, patient, doctor, everyone, "TREAT")["permitted"]
    revoked = world.run(
        "consent",
        "revoke",
        "--for",
        patient.address,
        "--grantee",
        doctor.address,
        "--all-studies",
        key=guardian,
    )
    assert revoked.returncode == 0 and "as their delegate" in revoked.stdout, revoked.stderr
    assert _check(world, patient, doctor, everyone, "TREAT")["reason"] == "revoked"

    again = world.run(
        "consent",
        "grant",
        "--for",
        patient.address,
        "--grantee",
        doctor.address,
        "--all-studies",
        "--purpose",
        "TREAT",
        key=guardian,
    )
    assert again.returncode == 0, again.stderr
    removed = world.run("consent", "delegate", guardian.address, "--remove", key=patient)
    assert removed.returncode == 0, removed.stderr
    assert _check(world, patient, doctor, everyone, "TREAT")["reason"] == "delegate_removed"

    # (6) the history says appointed, then removed, and who acted.
    history = world.json("consent", "list", "--patient", patient.address, "--history")
    kinds = [(e["event"], e["via"]) for e in history["events"]]
    assert kinds == [
        ("delegate_appointed", "patient"),
        ("consent_granted", "delegate"),
        ("consent_revoked", "delegate"),
        ("consent_granted", "delegate"),
        ("delegate_removed", "patient"),
    ]
    assert history["events"][1]["actor"] == guardian.address
    assert history["grants"][0]["grantee"] == doctor.address
    text = world.run("consent", "list", "--patient", patient.address, "--history")
    assert text.returncode == 0, text.stderr
    assert "delegate appointed" in text.stdout and "delegate removed" in text.stdout
    assert "…" not in text.stdout

    narrow = world.run(
        "consent", "list", "--patient", patient.address, "--history", env={"COLUMNS": "80"}
    )
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in narrow.stdout
    for event in history["events"]:
        assert any(line.split()[-1:] == [event["tx_hash"]] for line in lines), event
    assert f"delegate {guardian.address}" in narrow.stdout


# --- (7) several signed consents, relayed in and out of order -------------------------------


def _sign_three(world: World, patient: Any, a: Any, b: Any, tag: str) -> list[Path]:
    files = [world.root / f"{tag}-{n}.json" for n in ("grant-a", "grant-b", "revoke-a")]
    for path, grantee, extra in (
        (files[0], a, ("--purpose", "TREAT")),
        (files[1], b, ("--purpose", "HRESCH")),
        (files[2], a, ("--revoke",)),
    ):
        signed = world.json(
            "consent",
            "sign",
            "--grantee",
            grantee.address,
            "--all-studies",
            *extra,
            "--out",
            str(path),
            key=patient,
        )
        assert signed["signed"] and ISO.fullmatch(signed["issued_at"])
    return files


def test_several_signed_consents_each_relay_in_order(world: World) -> None:
    patient, a, b, relayer = (world.account() for _ in range(4))
    files = _sign_three(world, patient, a, b, "in-order")

    results = [world.json("consent", "relay", str(path), key=relayer) for path in files]

    assert [r["applied"] for r in results] == [True, True, True]
    assert [r["kind"] for r in results] == ["grant", "grant", "revoke"]
    grants = world.json("consent", "list", "--patient", patient.address)["grants"]
    assert [(g["grantee"], g["purposes"]) for g in grants] == [(b.address, ["HRESCH"])]


def test_several_signed_consents_relayed_out_of_order_newest_wins(world: World) -> None:
    patient, a, b, relayer = (world.account() for _ in range(4))
    grant_a, grant_b, revoke_a = _sign_three(world, patient, a, b, "out-of-order")

    first = world.json("consent", "relay", str(revoke_a), key=relayer)
    second = world.json("consent", "relay", str(grant_b), key=relayer)
    late = world.run("consent", "relay", str(grant_a), key=relayer)

    assert first["applied"] and second["applied"]
    text = assert_error(late, 1, "superseded", "newer or same-second change wins")
    assert len(ISO.findall(text)) == 2 and not UNIX_SECONDS.search(text)
    grants = world.json("consent", "list", "--patient", patient.address)["grants"]
    assert [(g["grantee"], g["purposes"]) for g in grants] == [(b.address, ["HRESCH"])]
    relayed_again = world.run("consent", "relay", str(revoke_a), key=relayer)
    assert relayed_again.returncode == 0 and "superseded" not in relayed_again.stdout


# --- (8) --json everywhere, usage errors exit 2 ---------------------------------------------


def test_json_documents_and_usage_errors(world: World) -> None:
    patient, doctor = world.account(), world.account()
    granted = world.json(
        "consent",
        "grant",
        "--grantee",
        doctor.address,
        "--all-studies",
        "--purpose",
        "TREAT",
        "--purpose",
        "ETREAT",
        "--identified",
        key=patient,
    )
    assert granted["result"] == "granted" and granted["purposes"] == ["TREAT", "ETREAT"]
    assert granted["patient"] == patient.address and granted["scope"] == "0x" + "00" * 32
    to_doctor = world.json("consent", "list", "--grantee", doctor.address)
    assert to_doctor["grants"][0]["status"] == "active" and ISO.fullmatch(to_doctor["at"])
    revoked = world.json(
        "consent", "revoke", "--grantee", doctor.address, "--all-studies", key=patient
    )
    assert revoked["result"] == "revoked" and revoked["tx_hash"].startswith("0x")
    nothing = world.json(
        "consent", "revoke", "--grantee", doctor.address, "--all-studies", key=patient
    )
    assert nothing["result"] == "no_grant"
    assert world.json("consent", "list", "--grantee", doctor.address)["grants"] == []

    bad_purpose = world.run(
        "consent",
        "grant",
        "--grantee",
        doctor.address,
        "--all-studies",
        "--purpose",
        "SHOPPING",
        "--json",
        key=patient,
    )
    assert_error(bad_purpose, 2, "--purpose", "unknown purpose")
    bad_address = world.run("consent", "list", "--patient", "0x1234", "--json")
    assert_error(bad_address, 2, "--patient is not an address")
