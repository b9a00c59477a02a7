"""Audit outputs from a real trail: JSON, CSV, the patient's HTML report (rendered in headless
Chromium) and FHIR R4B, plus ``audit --format`` and ``--output`` run as a command.

The trail comes from a chain: a suite on Anvil, a study keyed from a real DICOM file, grants
(one revoked, one expired), releases, a refusal, a break-glass access over several days, and two
records anchored in a batch by the gateway's batched recorder (their proofs checked on chain).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from dicom_samples import sample
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from rich.console import Console
from test_cli_e2e import cli
from web3.logs import DISCARD

from imaging_consent.access_log import AccessEvent
from imaging_consent.access_log.break_glass import sign_break_glass
from imaging_consent.access_log.record import AccessRecord
from imaging_consent.access_log.recorder import AccessRequest, make_recorder
from imaging_consent.audit import (
    COLUMNS,
    audit_bundle,
    audit_csv,
    audit_document,
    audit_fhir,
    audit_html,
    audit_json,
)
from imaging_consent.audit.fhir import DETAILS
from imaging_consent.audit.report import BATCHED_TEXT, BREAK_GLASS_TEXT, buckets
from imaging_consent.chain import LocalChain
from imaging_consent.cli.tables import audit_view
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.contracts.deployment import Suite, deploy, sender_for
from imaging_consent.dicom import SitePepper, study_key
from imaging_consent.index import AuditTrail, trail_from_chain

DAY = 86400
CT = "CT_small.dcm"
SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class World:
    chain: LocalChain
    suite: Suite
    trail: AuditTrail
    empty: AuditTrail
    study: bytes
    people: dict[str, str]
    manifest: Path


def _batched(suite: Suite, entries: list[Any], outbox: Any) -> tuple[AccessEvent, ...]:
    """The batched records as the index shows them: the anchor's block, tx and log, the batch
    id, root and proof (each proof checked against the anchored root by AccessLog)."""
    events = []
    w3 = suite.session.w3
    for entry in entries:
        record = AccessRecord.from_json(entry.record)
        batch, proof = outbox.batch_of(entry.request_id)
        assert suite.access_log.verify_record(batch.root, record.gateway, record.as_tuple(), proof)
        receipt = w3.eth.get_transaction_receipt(batch.tx_hash)
        [log] = suite.access_log.events.BatchAnchored().process_receipt(receipt, errors=DISCARD)
        events.append(
            AccessEvent(
                kind="granted" if record.permitted else "denied",
                study_key=record.study_key,
                patient=record.patient,
                accessor=record.accessor,
                purpose=Purpose(record.purpose),
                purpose_code=record.purpose,
                request_id=record.request_id,
                gateway=record.gateway,
                block_number=int(receipt["blockNumber"]),
                tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
                log_index=int(log["logIndex"]),
                timestamp=record.timestamp,
                identified=record.identified,
                batched=True,
                batch_id=batch.batch_id,
                batch_root=batch.root,
                proof=tuple(proof),
                reason=entry.reason,
            )
        )
    return tuple(events)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("audit-formats")
    with LocalChain("anvil") as chain:
        admin, patient, doctor, medic, lab, visitor, stranger = chain.accounts[:7]
        gateway = sender_for(chain.session, admin)
        suite = deploy(chain.session, gateway, sites=[admin.address], gateways=[admin.address],
                       emergency=[medic.address], out_dir=root)  # fmt: skip
        uid = str(pydicom.dcmread(sample(CT)).StudyInstanceUID)
        study = study_key(SitePepper(os.urandom(32)), uid)
        gateway.transact(suite.studies.functions.registerStudy(study, patient.address,
                                                                b"\x11" * 32, 1))  # fmt: skip
        log = suite.access_log.functions
        w3 = chain.session.w3

        def now() -> int:
            return int(w3.eth.get_block("latest")["timestamp"])

        consent = ConsentClient(suite, sender_for(chain.session, patient))
        consent.grant(doctor.address, study, ["TREAT"], identified=True)
        consent.grant(
            lab.address, None, ["HRESCH"], identified=False, expires_at=now() + DAY + DAY // 2
        )
        consent.grant(visitor.address, study, ["PATRQT"], identified=False)
        gateway.transact(log.recordAccess(study, doctor.address, Purpose.TREAT.value, b"\x01" * 32))
        chain.increase_time(DAY)
        chain.mine()
        gateway.transact(log.recordAccess(study, lab.address, Purpose.HRESCH.value, b"\x02" * 32))
        gateway.transact(log.recordAccess(study, doctor.address, Purpose.HRESCH.value,
                                          b"\x03" * 32))  # fmt: skip
        consent.revoke(visitor.address, study)
        chain.increase_time(DAY)
        chain.mine()
        signed = sign_break_glass(medic, suite, admin.address, study, b"\x09" * 32,
                                  request_id=b"\x04" * 32)  # fmt: skip
        gateway.transact(log.recordBreakGlass(study, medic.address, signed.request_id,
                                              signed.reason_commitment, signed.deadline,
                                              signed.signature))  # fmt: skip
        chain.increase_time(DAY)
        chain.mine()
        recorder = make_recorder("batched", suite.access_log, sender_for(chain.session, admin),
                                 outbox_path=root / "outbox.sqlite",
                                 from_block=suite.manifest.block_number,
                                 clock=lambda: float(now()))  # fmt: skip
        for rid, who, purpose in ((b"\x05", doctor, Purpose.TREAT), (b"\x06", stranger,
                                                                      Purpose.HRESCH)):  # fmt: skip
            request = AccessRequest(rid * 32, admin.address, study, patient.address, who.address,
                                    purpose.value, False, purpose is Purpose.TREAT)  # fmt: skip
            if purpose is Purpose.TREAT:
                recorder.record_release(request)
            else:
                recorder.record_denial(request)
        recorder.flush()
        batched = _batched(suite, recorder.outbox.entries(), recorder.outbox)
        recorder.close()
        chain.mine(2)
        from_chain = trail_from_chain(suite, patient.address)
        trail = dataclasses.replace(from_chain, accesses=from_chain.accesses + batched,
                                    source="index", behind=2)  # fmt: skip
        people = {
            name: account.address
            for name, account in zip(
                ("admin", "patient", "doctor", "medic", "lab", "visitor", "stranger"),
                chain.accounts[:7],
                strict=False,
            )
        }
        manifest = next(root.rglob("*.json"))
        yield World(chain, suite, trail, trail_from_chain(suite, stranger.address), study,
                    people, manifest)  # fmt: skip


def test_the_world_holds_every_kind_of_event(world: World) -> None:
    kinds = [(e.kind, e.batched) for e in world.trail.accesses]
    assert kinds == [
        ("granted", False), ("granted", False), ("denied", False), ("break_glass", False),
        ("granted", True), ("denied", True),
    ]  # fmt: skip
    assert [e.kind for e in world.trail.consents] == ["granted"] * 3 + ["revoked"]
    assert world.empty.accesses == () and world.empty.consents == ()


# --- JSON ---------------------------------------------------------------------------------------


def test_json_document_lists_events_newest_first_with_source_and_batches(world: World) -> None:
    document = json.loads(audit_json(world.trail, 1_900_000_000))

    assert document == audit_document(world.trail, 1_900_000_000)
    assert (document["source"], document["behind"]) == ("index", 2)
    assert document["generated_at"] == "2030-03-17T17:46:40Z"
    assert document["break_glass_flagged"] == 1
    assert len(document["events"]) == 10
    order = [(e["block_number"], e["log_index"], e["timestamp"]) for e in document["events"]]
    assert order == sorted(order, reverse=True)
    batched = [e for e in document["events"] if e.get("batched")]
    assert [e["kind"] for e in batched] == ["denied", "granted"]
    assert batched[0]["reason"] == "ConsentDeniedError"
    assert all(re.fullmatch(r"0x[0-9a-f]{64}", e["batch_root"]) for e in batched)
    assert all(len(e["proof"]) == 1 for e in batched)  # two leaves: one sibling each
    assert {g["grantee"]: g["active"] for g in document["grants"]} == {
        world.people["doctor"]: True,
        world.people["lab"]: False,
    }


# --- CSV ----------------------------------------------------------------------------------------


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_has_one_row_per_event_with_fixed_columns(world: World) -> None:
    text = audit_csv(world.trail)
    rows = _rows(text)

    assert text.splitlines()[0].split(",") == list(COLUMNS)
    assert text.endswith("\r\n") and "\r\n" in text[:-2]  # RFC 4180 line ends
    assert len(rows) == 10
    assert [r["record"] for r in rows].count("access") == 6
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["time"]) for r in rows)
    assert [r["break_glass"] for r in rows].count("true") == 1
    [emergency] = [r for r in rows if r["break_glass"] == "true"]
    assert emergency["who"] == world.people["medic"]
    assert emergency["reason_commitment"] == "0x" + "09" * 32
    assert emergency["study"] == "0x" + world.study.hex()
    batched = [r for r in rows if r["batched"] == "true"]
    assert [(r["event"], r["reason_code"]) for r in batched] == [
        ("denied", "ConsentDeniedError"),
        ("granted", ""),
    ]
    assert all(re.fullmatch(r"0x[0-9a-f]{64}", r["batch_proof"]) for r in batched)
    assert batched[0]["batch_root"] == batched[1]["batch_root"]
    refused = [r for r in rows if r["outcome"] == "refused"]
    assert len(refused) == 2 and all(r["reason"] for r in refused)
    revoked = [r for r in rows if r["event"] == "revoked"]
    assert revoked[0]["who"] == world.people["visitor"]
    lab = next(r for r in rows if r["record"] == "consent" and r["who"] == world.people["lab"])
    assert lab["study"] == "all studies" and lab["valid_until"].endswith("Z")


def test_csv_quotes_values_with_commas(world: World) -> None:
    comma = dataclasses.replace(world.trail.accesses[-1], reason='Odd,"Reason"')
    text = audit_csv(dataclasses.replace(world.trail, consents=(), accesses=(comma,)))

    [row] = _rows(text)
    assert row["reason_code"] == 'Odd,"Reason"'
    assert '"Odd,""Reason"""' in text


# --- FHIR ---------------------------------------------------------------------------------------


def _resources(bundle: Bundle, kind: type[Any]) -> list[Any]:
    return [e.resource for e in bundle.entry or [] if isinstance(e.resource, kind)]


def test_fhir_bundle_validates_and_round_trips(world: World) -> None:
    bundle = audit_bundle(world.trail, 1_900_000_000)
    again = Bundle.model_validate_json(bundle.model_dump_json())

    assert again == bundle
    assert bundle.type == "collection"
    assert len(_resources(bundle, Consent)) == 3  # one per ConsentGranted
    assert len(_resources(bundle, AuditEvent)) == 6
    for entry in bundle.entry or []:
        resource = entry.resource
        type(resource).model_validate_json(resource.model_dump_json())
        assert entry.fullUrl == f"urn:uuid:{resource.id}"
    assert json.loads(audit_fhir(world.trail, 1_900_000_000)) == json.loads(
        bundle.model_dump_json()
    )


def test_fhir_consents_say_active_or_inactive(world: World) -> None:
    consents = {
        c.provision.actor[0].reference.identifier.value: c
        for c in _resources(audit_bundle(world.trail), Consent)
    }
    doctor, lab, visitor = (consents[world.people[n]] for n in ("doctor", "lab", "visitor"))

    assert (doctor.status, lab.status, visitor.status) == ("active", "inactive", "inactive")
    assert doctor.scope.coding[0].code == "patient-privacy"
    assert doctor.category[0].coding[0].code == "59284-0"
    assert doctor.patient.identifier.value == world.people["patient"]
    assert doctor.provision.type == "permit"
    assert [p.code for p in doctor.provision.purpose] == ["TREAT"]
    assert doctor.provision.data[0].reference.identifier.value == "0x" + world.study.hex()
    assert lab.provision.data is None  # all studies
    assert lab.provision.period.end is not None
    assert [p.code for p in lab.provision.purpose] == ["HRESCH"]
    assert lab.provision.securityLabel[0].code == "DEID"


def test_fhir_consent_replaced_by_a_later_grant_is_inactive(world: World) -> None:
    [first] = [e for e in world.trail.consents if e.grantee == world.people["doctor"]]
    later = dataclasses.replace(
        first, block_number=first.block_number + 100, tx_hash="0x" + "ab" * 32
    )
    trail = dataclasses.replace(world.trail, consents=(first, later))

    consents = _resources(audit_bundle(trail), Consent)

    assert [(c.identifier[0].value, c.status) for c in consents] == [
        (f"{first.tx_hash}:{first.log_index}", "inactive"),
        (f"{later.tx_hash}:{later.log_index}", "active"),
    ]


def test_fhir_audit_events_code_outcome_purpose_and_break_glass(world: World) -> None:
    events = _resources(audit_bundle(world.trail), AuditEvent)
    outcomes = [(e.type.code, e.outcome) for e in events]
    emergency = [e for e in events if e.subtype]
    batched = [e for e in events if any(d.type == "batched" for d in e.entity[0].detail or [])]

    assert outcomes == [
        ("110106", "0"), ("110106", "0"), ("110103", "4"), ("110106", "0"), ("110106", "0"),
        ("110103", "4"),
    ]  # fmt: skip
    assert all(e.action == "R" for e in events)
    [btg] = emergency
    assert btg.subtype[0].code == "110127"
    assert {c.code for p in btg.purposeOfEvent for c in p.coding} == {"ETREAT", "BTG"}
    assert btg.meta.security[0].code == "BTG"
    assert btg.entity[0].securityLabel[0].code == "BTG"
    assert btg.agent[0].who.identifier.value == world.people["medic"]
    assert all(e.meta is None for e in events if e is not btg)
    assert [(a.requestor, a.who.identifier.value) for a in events[0].agent] == [
        (True, world.people["doctor"]),
        (False, world.people["admin"]),
    ]
    assert events[0].entity[0].what.identifier.value == "0x" + world.study.hex()
    assert events[0].entity[1].what.identifier.value == world.people["patient"]
    assert len(batched) == 2
    details = {d.type: d.valueString for d in batched[0].entity[0].detail}
    assert details["batch-root"] == "0x" + (world.trail.accesses[-2].batch_root or b"").hex()
    assert details["batch-proof"].startswith("0x")
    for event, access in zip(events, world.trail.accesses, strict=True):
        details = {d.type: d.valueString for d in event.entity[0].detail}
        assert set(details) <= set(DETAILS)
        assert details["chain-event"].startswith(f"{access.tx_hash}:{access.log_index}")
        assert details["request-id"] == "0x" + access.request_id.hex()
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids)  # batched records share a tx and log: the request id splits
    recorded = [e.recorded for e in events]
    assert all(r is not None for r in recorded)


def test_no_patient_data_from_the_dicom_file_in_any_output(world: World) -> None:
    ds = pydicom.dcmread(sample(CT))
    secrets = {
        str(ds.get(name, "")).strip()
        for name in (
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "SOPInstanceUID",
            "AccessionNumber",
            "StudyID",
            "InstitutionName",
            "ReferringPhysicianName",
        )
    }
    secrets = {s for s in secrets if len(s) >= 4}
    outputs = [f(world.trail, None) for f in (audit_json, audit_csv, audit_html, audit_fhir)]

    assert str(ds.PatientName) in secrets and ds.StudyInstanceUID in secrets
    for text in outputs:
        for secret in secrets:
            assert secret.lower() not in text.lower(), secret


# --- HTML ---------------------------------------------------------------------------------------


def test_buckets_follow_the_span() -> None:
    assert buckets([0, 3600])[0] == "hour"
    assert buckets([0, 3 * DAY])[0] == "day"
    assert buckets([0, 400 * DAY])[0] == "week"
    assert buckets([0, 4000 * DAY])[0] == "30 days"


def test_html_escapes_every_value(world: World) -> None:
    hostile = dataclasses.replace(world.trail.accesses[-1], reason="<script>alert(1)</script>")
    text = audit_html(dataclasses.replace(world.trail, accesses=(hostile,)))

    assert "<script" not in text
    assert "&lt;script&gt;" in text


def _render(path: Path, shot: Path) -> dict[str, Any]:
    """Open ``path`` in headless Chromium, refusing any request that is not file: or data:."""
    from playwright.sync_api import sync_playwright

    attempted: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def guard(route: Any) -> None:
                url = route.request.url
                if url.startswith(("file:", "data:")):
                    route.continue_()
                else:
                    attempted.append(url)
                    route.abort()

            page.route("**/*", guard)
            page.goto(path.as_uri())
            page.screenshot(path=str(shot), full_page=True)
            facts = page.evaluate(
                """() => {
                  const img = document.querySelector('img#plot');
                  const rows = [...document.querySelectorAll('#events tbody tr')];
                  const shown = (el) => el.getBoundingClientRect().height > 0;
                  return {
                    plot: img ? [img.naturalWidth, img.naturalHeight, shown(img)] : null,
                    rows: rows.length,
                    visible: rows.filter(shown).length,
                    flagged: rows.map(r => r.classList.contains('break-glass')),
                    what: rows.map(r => r.cells[1].innerText),
                    text: document.body.innerText,
                  };
                }"""
            )
        finally:
            browser.close()
    facts["attempted"] = attempted
    return dict(facts)


def test_html_report_renders_in_chromium(world: World, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(audit_html(world.trail, 1_900_000_000), encoding="utf-8")

    facts = _render(page, tmp_path / "report.png")

    assert facts["attempted"] == []
    width, height, shown = facts["plot"]
    assert width > 0 and height > 0 and shown
    assert facts["rows"] == facts["visible"] == 10
    assert [("break-glass" in w) for w in facts["what"]] == facts["flagged"]
    assert facts["flagged"].count(True) == 1
    assert [("batched" in w) for w in facts["what"]].count(True) == 2
    text = facts["text"]
    assert (
        "6 requests for your images: 3 released with your consent, 2 refused, 1 emergency" in text
    )
    assert text.count(BREAK_GLASS_TEXT) >= 2  # the alert, the row (and the glossary)
    assert BATCHED_TEXT in text
    assert "3 block(s) behind" not in text and "2 block(s) behind" in text
    assert "(active)" in text and "(expired)" in text
    assert world.people["visitor"] not in text.split("Your consents now")[1].split("Requests")[0]
    (Path(os.environ.get("AUDIT_REPORT_SHOT", tmp_path)) / "report.png").write_bytes(
        (tmp_path / "report.png").read_bytes()
    )


def test_empty_trail_reads_sensibly(world: World, tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    page.write_text(audit_html(world.empty), encoding="utf-8")

    facts = _render(page, tmp_path / "empty.png")

    assert facts["attempted"] == [] and facts["plot"] is None and facts["rows"] == 0
    assert "Nobody has asked for your images" in facts["text"]
    assert "You have no consent in place" in facts["text"]
    assert audit_csv(world.empty).count("\r\n") == 1
    assert _resources(audit_bundle(world.empty), AuditEvent) == []
    (Path(os.environ.get("AUDIT_REPORT_SHOT", tmp_path)) / "empty.png").write_bytes(
        (tmp_path / "empty.png").read_bytes()
    )


# --- the command --------------------------------------------------------------------------------


def _run(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGING_CONSENT_")}
    env.update(
        PYTHONPATH=str(SRC) + os.pathsep + env.get("PYTHONPATH", ""),
        IMAGING_CONSENT_RPC_URL=world.chain.rpc_url,
        IMAGING_CONSENT_MANIFEST=str(world.manifest),
        COLUMNS="250",
    )
    return cli("audit", "--patient", world.people["patient"], *args, env=env,
               cwd=world.manifest.parent)  # fmt: skip


def test_command_prints_each_format_and_writes_private_files(world: World, tmp_path: Path) -> None:
    fhir_file = tmp_path / "trail.fhir.json"
    fhir_file.write_text("old, readable by all")
    fhir_file.chmod(0o644)
    html_file = tmp_path / "report.html"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "link.html").symlink_to(victim)
    runs: list[tuple[str, ...]] = [
        (),
        ("--format", "csv"),
        ("--json",),
        ("--format", "fhir", "--output", str(fhir_file)),
        ("--format", "html", "--output", str(html_file)),
        ("--json", "--format", "csv"),
        ("--format", "html", "--output", str(tmp_path / "link.html")),
    ]
    with ThreadPoolExecutor(len(runs)) as pool:  # each is a separate process
        results = list(pool.map(lambda args: _run(world, *args), runs))
    table, as_csv, as_json, written, html, clash, through_link = results

    for result in (table, as_csv, as_json, written, html):
        assert result.returncode == 0, result.stderr
    assert "Read straight from the chain's events" in table.stdout
    assert "BREAK-GLASS" in table.stdout
    assert len(_rows(as_csv.stdout)) == 8  # from the chain: no batched records
    assert json.loads(as_json.stdout)["source"] == "chain"
    assert written.stdout == "" and html.stdout == ""
    for path in (fhir_file, html_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    bundle = Bundle.model_validate_json(fhir_file.read_text())
    assert len(bundle.entry or []) == 3 + 4
    assert html_file.read_text().startswith("<!DOCTYPE html>")
    assert clash.returncode == 2 and "--json is --format json" in clash.stderr
    assert through_link.returncode == 1 and len(through_link.stderr.strip().splitlines()) == 1
    assert victim.read_text() == "keep me"


def test_table_marks_batched_records_and_lag(world: World) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, soft_wrap=True)
    for part in audit_view(world.trail):
        console.print(part)
    lines = buffer.getvalue().splitlines()

    assert sum("(batched)" in line for line in lines) == 2
    assert sum("BREAK-GLASS" in line for line in lines) == 1
    assert any("Read from the audit index, 2 block(s) behind" in line for line in lines)
    assert any("2 batched record(s)" in line for line in lines)
