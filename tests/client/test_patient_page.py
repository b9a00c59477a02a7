"""The patient's page in a real browser: Debian's Chromium driven by Playwright, a real Anvil
chain, the real server on a free loopback port, and a test wallet (EIP-1193, viem, the patient's
test key) injected before the page loads.

The tests run in order on one site and one patient: sign in; grant de-identified research on
all studies and find it on chain; grant TREAT on one study and revoke it, finding both on chain,
with DICOMweb fetches before and after; the history shows the release, the refusal and a
break-glass access, and downloads as the patient's own report; the history read from an audit
index beside a batched gateway shows a batched record and how far behind the chain it is; a
grant and a revocation sent by the wallet itself go from pending to mined; then the faults (a
rejected signature, the wrong chain, a gateway stopped under the page, an expired session, the
hourly relay limit) and a guardian appointed by a wallet transaction; and ``imaging-consent
serve``'s patient-page options. Each screen is saved under the module's temporary folder
(``screens``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
import uvicorn
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from release_samples import CT_STUDY, MR_STUDY, RLE_STUDY, Actors, actors, build_studies
from release_samples import deploy_suite as deploy_site
from starlette.testclient import TestClient
from test_serve_process import start_serve, stop
from test_server import Clock, Server, free_port, problem

from imaging_consent.access_log import AccessEvent
from imaging_consent.chain import LocalChain
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.consent.signing import sign_typed_data
from imaging_consent.contracts.consent_registry import ALL_STUDIES
from imaging_consent.contracts.deployment import Suite, sender_for
from imaging_consent.dicom import SitePepper, study_key
from imaging_consent.gateway import ImageGateway, LogMode
from imaging_consent.index import AuditTrail
from imaging_consent.index.sync import Indexer
from imaging_consent.provenance import register_study
from imaging_consent.server import ServerSettings, create_app
from imaging_consent.server.break_glass import HEADER, REASON_HEADER, header_value
from imaging_consent.server.patient import PAGE_DIR, PatientSettings, parse_label
from imaging_consent.server.patient_view import trail_json
from imaging_consent.stores import FolderStore

SRC = Path(__file__).resolve().parents[2] / "src"
CHECKSUMMED = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PEPPER = SitePepper(b"patient-page-tests-site-pepper!!")
CHROMIUM = Path("/usr/bin/chromium")
WALLET = Path(__file__).resolve().parents[2] / "build" / "test-wallet" / "wallet.js"
RELAYS_PER_HOUR = 3
CONFIRMED = "Confirmed on the chain"
WAIT = 30_000  # ms


@dataclass
class Site:
    chain: LocalChain
    suite: Suite
    people: Actors
    researcher: LocalAccount
    guardian: LocalAccount
    server: Server
    browser: Browser
    screens: Path
    root: Path
    store: FolderStore

    @property
    def base(self) -> str:
        return self.server.base

    def token(self, account: LocalAccount) -> str:
        return self.server.sign_in(account)

    def fetch(self, who: LocalAccount, study: str, purpose: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(who)}", "X-Purpose-Of-Use": purpose}
        return httpx.get(f"{self.base}/dicom-web/studies/{study}", headers=headers, timeout=60)

    def events(self, name: str, **match: Any) -> list[Any]:
        found = getattr(self.suite.consent.events, name)().get_logs(from_block=0)
        return [e for e in found if all(e["args"][k] == v for k, v in match.items())]

    def rpc(self, method: str, params: list[Any]) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        answer: dict[str, Any] = httpx.post(self.chain.rpc_url, json=body, timeout=30).json()
        return answer

    def context(self, width: int = 1100, scale: float = 1, **wallet: Any) -> BrowserContext:
        """A browser context with the patient's test wallet (``wallet`` changes its switches)."""
        settings = {"key": "0x" + bytes(self.people.patient.key).hex()}
        settings |= {"chainId": self.chain.chain_id, **wallet}
        context = self.browser.new_context(
            viewport={"width": width, "height": 900}, device_scale_factor=scale
        )
        context.expose_binding("__testWalletRpc", lambda _source, m, p: self.rpc(m, p))
        context.add_init_script(
            script=f"window.__TEST_WALLET__ = {json.dumps(settings)};\n{WALLET.read_text()}"
        )
        return context

    def shot(self, page: Page, name: str, full: bool = True) -> None:
        page.screenshot(path=str(self.screens / f"{name}.png"), full_page=full)

    def app(self, base: str, work: str, gateway: ImageGateway, **options: Any) -> FastAPI:
        """Another server of this site at ``base`` (its own work folder ``work``)."""
        return create_app(
            ServerSettings(public_url=base, work_dir=self.root / work, flush_interval=3600),
            gateway,
            clock=self.server.clock,
            patient=PatientSettings(
                network_name="Local test chain", labels=labels_of(self.people, self.researcher)
            ),
            **options,
        )


def labels_of(people: Actors, researcher: LocalAccount) -> tuple[tuple[str, str], ...]:
    """The names the site knows accounts by."""
    return (
        (people.requester.address, "Dr Rivera, radiology"),
        (researcher.address, "Imaging research study"),
    )


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[uvicorn.Server]:
    """Run ``app`` on ``port`` (loopback) in a thread until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "no server"
            time.sleep(0.02)
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _describe(folder: Path) -> None:
    """Give the sample studies the descriptions a site would have (before registration)."""
    for pattern, text in (("ct/*.dcm", "CT chest, low dose"), ("mr.dcm", "MRI head")):
        for path in folder.glob(pattern):
            ds = pydicom.dcmread(path)
            ds.StudyDescription = text
            ds.save_as(path)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium`")
    if not WALLET.is_file() or not (PAGE_DIR / "app.js").is_file():
        pytest.fail("the patient page or the test wallet is not built: run `make patient-page`")
    root = tmp_path_factory.mktemp("patient-page")
    screens = root / "screens"
    screens.mkdir()
    folder = build_studies(root / "studies")
    _describe(folder)
    store = FolderStore(folder)
    with LocalChain("anvil", accounts=12) as chain:
        people = actors(chain)
        suite = deploy_site(chain, people)
        site_sender = sender_for(chain.session, people.site)
        for uid, owner in ((CT_STUDY, people.patient), (MR_STUDY, people.patient)):
            register_study(suite, site_sender, store, PEPPER, uid, owner.address)
        register_study(suite, site_sender, store, PEPPER, RLE_STUDY, people.stranger.address)
        researcher, guardian = chain.accounts[7], chain.accounts[8]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        clock = Clock()
        gateway = ImageGateway(
            suite,
            sender_for(chain.session, people.gateway),
            store,
            PEPPER,
            outbox_path=root / "outbox.sqlite3",
        )
        app = create_app(
            ServerSettings(public_url=base, work_dir=root / "work"),
            gateway,
            clock=clock,
            patient=PatientSettings(
                relay_per_hour=RELAYS_PER_HOUR,
                network_name="Local test chain",
                labels=labels_of(people, researcher),
            ),
        )
        try:
            with serving(app, port), sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
                try:
                    yield Site(
                        chain,
                        suite,
                        people,
                        researcher,
                        guardian,
                        Server(base, gateway, chain.chain_id, clock),
                        browser,
                        screens,
                        root,
                        store,
                    )
                finally:
                    browser.close()
        finally:
            gateway.close()
            print(f"\nscreenshots: {screens}")


@pytest.fixture
def page(site: Site) -> Iterator[Page]:
    context = site.context()
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(site: Site, page: Page, base: str | None = None) -> None:
    page.goto(f"{base or site.base}/patient")
    page.get_by_role("button", name="Connect your wallet").click()
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your studies at this site")).to_be_visible()


def fill_grant(
    page: Page,
    grantee: str,
    purpose: str,
    *,
    study: str | None = None,
    identified: bool = False,
    by_wallet: bool = False,
) -> None:
    page.get_by_label("Who should get access?").fill(grantee)
    if study is not None:
        page.get_by_label(f"Only: {study}").check()
    page.get_by_label(purpose).check()
    if identified:
        page.get_by_label("Identified images").check()
    if by_wallet:
        page.get_by_label("My wallet sends it itself").check()
    page.get_by_role("button", name="1 month").click()
    page.get_by_role("button", name="Review").click()


# --- the page and its API, before any browser --------------------------------------------------


def test_unbuilt_page_is_a_clear_503(site: Site, tmp_path: Path) -> None:
    gateway = ImageGateway(
        site.suite,
        sender_for(site.chain.session, site.people.gateway),
        FolderStore(tmp_path),
        PEPPER,
        outbox_path=tmp_path / "outbox.sqlite3",
    )
    with gateway:
        app = create_app(
            ServerSettings(public_url="http://127.0.0.1:9", work_dir=tmp_path / "w"),
            gateway,
            patient=PatientSettings(page_dir=tmp_path / "nothing"),
        )
        answer = TestClient(app).get("/patient")
    assert "make patient-page" in problem(answer, 503)["detail"]  # type: ignore[arg-type]


def test_api_needs_sign_in_and_serves_only_the_callers_studies(site: Site) -> None:
    assert httpx.get(f"{site.base}/patient/api/studies").status_code == 401
    token = site.token(site.people.patient)
    mine = httpx.get(
        f"{site.base}/patient/api/studies", headers={"Authorization": f"Bearer {token}"}
    ).json()
    theirs = httpx.get(
        f"{site.base}/patient/api/studies",
        headers={"Authorization": f"Bearer {site.token(site.people.stranger)}"},
    ).json()

    assert {s["description"] for s in mine["studies"]} == {"CT chest, low dose", "MRI head"}
    assert {s["key"] for s in theirs["studies"]} == {"0x" + study_key(PEPPER, RLE_STUDY).hex()}


def test_relayer_refuses_what_the_chain_would_refuse(site: Site) -> None:
    patient, stranger = site.people.patient, site.people.stranger
    token = site.token(patient)
    auth = {"Authorization": f"Bearer {token}"}
    body = {
        "kind": "grant",
        "grantee": site.researcher.address,
        "purposes": ["PUBHLTH"],
        "expiresAt": int(time.time()) + 86400,
    }
    typed = httpx.post(f"{site.base}/patient/api/typed-data", json=body, headers=auth).json()
    before = len(site.events("ConsentGranted"))

    def relay(signer: LocalAccount, headers: dict[str, str]) -> httpx.Response:
        signature = "0x" + sign_typed_data(typed["typedData"], signer).hex()
        sent = {"kind": "grant", "typedData": typed["typedData"], "signature": signature}
        return httpx.post(f"{site.base}/patient/api/relay", json=sent, headers=headers)

    forged = relay(stranger, auth)  # not the patient's signature
    not_theirs = relay(patient, {"Authorization": f"Bearer {site.token(stranger)}"})
    no_end = httpx.post(
        f"{site.base}/patient/api/typed-data", json=body | {"expiresAt": 0}, headers=auth
    )

    assert "not your account's signature" in problem(forged, 422)["detail"]
    problem(not_theirs, 403)
    problem(no_end, 422)
    assert len(site.events("ConsentGranted")) == before


# --- the patient's page ------------------------------------------------------------------------


def test_sign_in_shows_the_patients_studies_only(site: Site, page: Page) -> None:
    page.goto(f"{site.base}/patient")
    site.shot(page, "01-connect")
    sign_in(site, page)

    table = page.locator("#studies-body table")
    expect(table).to_contain_text("CT chest, low dose")
    expect(table).to_contain_text("MRI head")
    expect(table).to_contain_text("2004-08-26")
    expect(page.locator("#studies-body tbody tr")).to_have_count(2)
    expect(page.locator("#access-body")).to_contain_text("Nobody has access")
    site.shot(page, "02-signed-in")


def test_grant_deidentified_research_on_all_studies(site: Site, page: Page) -> None:
    researcher = site.researcher
    refused = site.fetch(researcher, MR_STUDY, "HRESCH")
    sign_in(site, page)

    fill_grant(page, researcher.address, "Research (HRESCH)")
    review = page.locator("#review-box")
    expect(review).to_contain_text("Imaging research study")
    expect(review).to_contain_text("name and details removed (de-identified)")
    expect(review).to_contain_text("all your studies at this site")
    expect(review).to_contain_text("research (HRESCH)")
    site.shot(page, "03-review")
    page.get_by_role("button", name="Open my wallet to sign").click()
    expect(page.locator("#notice")).to_contain_text(CONFIRMED, timeout=WAIT)
    site.shot(page, "04-confirmed")

    grant = ConsentClient(site.suite).get_grant(
        site.people.patient.address, researcher.address, None
    )
    assert grant is not None and grant.purposes == {Purpose.HRESCH} and not grant.identified
    assert grant.expires_at > time.time() + 27 * 86400
    expect(page.locator("#access-body")).to_contain_text("Imaging research study")
    problem(refused, 403)
    allowed = site.fetch(researcher, MR_STUDY, "HRESCH")
    assert allowed.status_code == 200 and allowed.headers["X-Release"] == "de-identified"


def test_grant_treat_on_one_study_then_revoke_it(site: Site, page: Page) -> None:
    doctor, patient = site.people.requester, site.people.patient
    mr_key = study_key(PEPPER, MR_STUDY)
    before = site.fetch(doctor, MR_STUDY, "TREAT")
    sign_in(site, page)

    fill_grant(page, doctor.address, "Treatment (TREAT)", study="MRI head", identified=True)
    expect(page.locator("#review-box")).to_contain_text("your study “MRI head”")
    page.get_by_role("button", name="Open my wallet to sign").click()
    expect(page.locator("#notice")).to_contain_text(CONFIRMED, timeout=WAIT)
    granted = ConsentClient(site.suite).get_grant(patient.address, doctor.address, mr_key)
    during = site.fetch(doctor, MR_STUDY, "TREAT")

    card = page.locator(".card", has_text="Dr Rivera, radiology")
    card.get_by_role("button", name="Stop this access").click()
    expect(card).to_contain_text("they can no longer open these images")
    site.shot(page, "05-revoke-confirm")
    card.get_by_role("button", name="Yes, stop this access").click()
    expect(page.locator("#notice")).to_contain_text(CONFIRMED, timeout=WAIT)
    expect(page.locator("#notice")).to_contain_text("access stopped")
    site.shot(page, "06-revoked")
    after = site.fetch(doctor, MR_STUDY, "TREAT")

    problem(before, 403)
    assert granted is not None and granted.purposes == {Purpose.TREAT} and granted.identified
    assert during.status_code == 200 and during.headers["X-Release"] == "identified"
    assert ConsentClient(site.suite).get_grant(patient.address, doctor.address, mr_key) is None
    assert site.events("ConsentRevoked", patient=patient.address, scope=mr_key)
    problem(after, 403)


def test_history_shows_releases_refusals_and_break_glass(site: Site, page: Page) -> None:
    doctor, reason = site.people.doctor, "unconscious patient in resus"
    token = site.token(doctor)
    typed = httpx.post(
        f"{site.base}/break-glass",
        json={"study": MR_STUDY, "reason": reason},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["typedData"]
    headers = {HEADER: header_value(typed, sign_typed_data(typed, doctor)), REASON_HEADER: reason}
    opened = httpx.get(
        f"{site.base}/dicom-web/studies/{MR_STUDY}",
        headers={"Authorization": f"Bearer {token}", **headers},
        timeout=60,
    )
    assert opened.status_code == 200
    sign_in(site, page)

    history = page.locator("#history-body")
    expect(history.locator("tr.refused").first).to_contain_text("Dr Rivera, radiology")
    expect(history).to_contain_text("released with your name")
    expect(history).to_contain_text("released without your name")
    expect(history.locator("tr.break-glass")).to_contain_text("Emergency access")
    expect(history.locator("tr.break-glass")).to_contain_text("because you could not be asked")
    changes = page.locator("#changes-body")
    expect(changes).to_contain_text("consent revoked")
    expect(changes).to_contain_text("patient (signature, relayed)")
    expect(page.locator("#history-source")).to_contain_text("Read straight from the chain")
    site.shot(page, "07-history")
    with page.expect_download() as saving:
        page.get_by_role("link", name="as a page to read (HTML)").click()
    saved = Path(saving.value.path()).read_text()
    assert saving.value.suggested_filename == "imaging-audit-report.html"
    assert "Who saw my images" in saved and site.people.patient.address in saved


def test_reports_are_the_patients_own_and_inert(site: Site) -> None:
    patient, stranger = site.people.patient, site.people.stranger
    refused = problem(site.fetch(site.researcher, RLE_STUDY, "HRESCH"), 403)  # stranger's study
    theirs_key = "0x" + study_key(PEPPER, RLE_STUDY).hex()
    mine_key = "0x" + study_key(PEPPER, MR_STUDY).hex()
    routes = ("/patient/api/report.html", "/patient/api/report.fhir.json")

    def get(route: str, who: LocalAccount | None) -> httpx.Response:
        auth = {"Authorization": f"Bearer {site.token(who)}"} if who is not None else {}
        return httpx.get(f"{site.base}{route}", headers=auth, timeout=60)

    for route in routes:
        problem(get(route, None), 401)
        mine, other = get(route, patient), get(route, stranger)
        assert mine.status_code == other.status_code == 200
        assert mine.headers["Content-Disposition"].startswith("attachment; filename=")
        assert "default-src 'none'" in mine.headers["Content-Security-Policy"]
        assert "sandbox" in mine.headers["Content-Security-Policy"]
        assert mine.headers["X-Content-Type-Options"] == "nosniff"
        assert patient.address in mine.text and mine_key in mine.text
        assert stranger.address not in mine.text and theirs_key not in mine.text
        assert stranger.address in other.text and theirs_key in other.text
        assert patient.address not in other.text and mine_key not in other.text
    html = get(routes[0], patient)
    fhir = get(routes[1], stranger)
    assert html.headers["Content-Type"].startswith("text/html") and "<script" not in html.text
    assert fhir.headers["Content-Type"] == "application/fhir+json"
    assert json.loads(fhir.text)["resourceType"] == "Bundle"
    assert refused["requestId"][2:] not in get(routes[1], patient).text


@dataclass
class Indexed:
    """A second server of the site: batched logging, and the history read from an audit index."""

    server: Server
    indexer: Indexer


@pytest.fixture(scope="module")
def indexed(site: Site) -> Iterator[Indexed]:
    gateway = ImageGateway(
        site.suite,
        site.server.gateway.sender,  # one nonce queue for the gateway's account
        site.store,
        PEPPER,
        log_mode=LogMode.BATCHED,
        confirmations=0,
        outbox_path=site.root / "batched-outbox.sqlite3",
    )
    url = f"sqlite:///{site.root / 'index.sqlite3'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        gateway,
        Indexer.open(site.suite, url, confirmations=0, outboxes=[gateway.outbox]) as indexer,
    ):
        latest = site.suite.session.w3.eth.block_number
        with serving(site.app(base, "work-indexed", gateway, index=indexer), port):
            deadline = time.monotonic() + 30  # the server's own first sync, then an hour's wait
            while indexer.index.deployment().cursor < latest:
                assert time.monotonic() < deadline, "the index did not sync"
                time.sleep(0.05)
            yield Indexed(Server(base, gateway, site.chain.chain_id, site.server.clock), indexer)


def test_history_from_the_index_shows_batched_records_and_the_lag(
    site: Site, indexed: Indexed, page: Page
) -> None:
    server = indexed.server
    token = server.sign_in(site.researcher)
    fetched = httpx.get(
        f"{server.base}/dicom-web/studies/{MR_STUDY}",
        headers={"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "HRESCH"},
        timeout=60,
    )
    assert fetched.status_code == 200 and "outbox=batched" in fetched.headers["X-Access-Log"]
    (batch,) = server.gateway.flush()
    synced = indexed.indexer.sync()
    site.chain.mine(2)  # the index is now two blocks behind the chain
    sign_in(site, page, server.base)

    batched = page.locator("#history-body tr", has_text="recorded in a batch")
    expect(batched).to_have_count(1)
    expect(batched).to_contain_text("Imaging research study")
    expect(batched).to_contain_text("released without your name")
    expect(batched).to_contain_text("fingerprint is on the chain")
    source = page.locator("#history-source")
    expect(source).to_contain_text("site's audit index")
    expect(source).to_contain_text("2 blocks behind the chain")
    expect(page.locator("footer")).to_contain_text("Recorded in a batch")
    site.shot(page, "15-history-from-index")
    history = httpx.get(
        f"{server.base}/patient/api/history",
        headers={"Authorization": f"Bearer {server.sign_in(site.people.patient)}"},
    ).json()

    assert batch.final and synced.batched == 1
    assert history["source"] == "index" and history["behind"] == 2
    assert [a["batched"] for a in history["accesses"]].count(True) == 1


def wallet_sends_and_mines(site: Site, page: Page, button: str, name: str) -> str:
    """Click ``button`` with the chain not mining: pending, then mined once a block is made."""
    site.rpc("evm_setAutomine", [False])
    try:
        page.get_by_role("button", name=button).click()
        notice = page.locator("#notice")
        expect(notice).to_contain_text("Waiting for the chain to confirm", timeout=WAIT)
        expect(notice).to_contain_text("Nothing has changed until the chain confirms it")
        site.shot(page, f"{name}-pending")
        tx_hash = notice.locator("code.address").inner_text()
        assert site.rpc("eth_getTransactionReceipt", [tx_hash])["result"] is None
    finally:
        site.rpc("evm_setAutomine", [True])
    site.rpc("evm_mine", [])
    expect(notice).to_contain_text(CONFIRMED, timeout=WAIT)
    site.shot(page, f"{name}-mined")
    return tx_hash


def test_grant_and_revoke_sent_by_the_wallet(site: Site, page: Page) -> None:
    patient, friend = site.people.patient, site.chain.accounts[9]
    sign_in(site, page)
    fill_grant(page, friend.address, "Your own request (PATRQT)", by_wallet=True)
    expect(page.locator("#review-box")).to_contain_text("pay a small fee in ETH")

    granted_tx = wallet_sends_and_mines(site, page, "Open my wallet to send it", "16-wallet-grant")
    expect(page.locator("#notice")).to_contain_text("access given")
    grant = ConsentClient(site.suite).get_grant(patient.address, friend.address, None)
    card = page.locator(".card", has_text=friend.address)
    card.get_by_role("button", name="Stop this access").click()
    revoked_tx = wallet_sends_and_mines(
        site, page, "Stop it from my wallet (needs ETH)", "17-wallet-revoke"
    )
    expect(page.locator("#notice")).to_contain_text("access stopped")

    assert grant is not None and grant.purposes == {Purpose.PATRQT} and not grant.identified
    assert ConsentClient(site.suite).get_grant(patient.address, friend.address, None) is None
    for tx_hash in (granted_tx, revoked_tx):  # sent and paid by the patient's wallet itself
        assert site.rpc("eth_getTransactionByHash", [tx_hash])["result"]["from"] == (
            patient.address.lower()
        )
    calls = page.evaluate("window.__TEST_WALLET__.calls")
    assert calls.count("eth_sendTransaction") == 2 and "eth_signTypedData_v4" not in calls


def test_batched_records_and_break_glass_are_explained() -> None:
    zero = "0x" + "00" * 20
    event = AccessEvent(
        "granted", bytes(32), zero, zero, Purpose.TREAT, 0, bytes(32), zero, 1, "0x", 0, 0,
        batched=True,
    )  # fmt: skip
    trail = AuditTrail(zero, (), (), (event,), 0)  # type: ignore[arg-type]
    (shown,) = trail_json(trail, [], {})["accesses"]
    assert shown["batched"] and "Recorded in a batch" in shown["explanation"]


def test_rejected_signature_changes_nothing(site: Site, page: Page) -> None:
    sign_in(site, page)
    before = len(site.events("ConsentGranted"))
    page.evaluate("window.__TEST_WALLET__.rejectSignatures = true")

    fill_grant(page, site.people.stranger.address, "Public health (PUBHLTH)")
    page.get_by_role("button", name="Open my wallet to sign").click()

    expect(page.locator("#notice")).to_contain_text("You declined in your wallet")
    expect(page.locator("#notice")).to_contain_text("nothing was sent")
    site.shot(page, "08-rejected")
    assert len(site.events("ConsentGranted")) == before


def test_wrong_chain_is_switched_or_explained(site: Site) -> None:
    context = site.context(startChainId=1)
    page = context.new_page()
    page.goto(f"{site.base}/patient")
    page.get_by_role("button", name="Connect your wallet").click()
    expect(page.locator("#notice")).to_contain_text("Your wallet is on another network")
    site.shot(page, "09-wrong-chain")
    page.get_by_role("button", name="Switch my wallet to Local test chain").click()
    expect(page.locator("#notice")).to_contain_text("now on the right network")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your studies at this site")).to_be_visible()
    context.close()

    context = site.context(startChainId=1, unknownChain=True)
    page = context.new_page()
    page.goto(f"{site.base}/patient")
    page.get_by_role("button", name="Connect your wallet").click()
    page.get_by_role("button", name="Switch my wallet to Local test chain").click()
    expect(page.locator("#notice")).to_contain_text("cannot switch by itself")
    expect(page.get_by_role("button", name="Sign in")).to_have_count(0)
    site.shot(page, "10-cannot-switch")
    context.close()


def test_unreachable_gateway_is_said(site: Site, page: Page) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving(site.app(base, "work-stopped", site.server.gateway), port):
        sign_in(site, page, base)
        fill_grant(page, site.people.stranger.address, "Public health (PUBHLTH)")
    before = len(site.events("ConsentGranted"))  # the server has stopped: nothing answers
    page.get_by_role("button", name="Open my wallet to sign").click()
    expect(page.locator("#notice")).to_contain_text("The site cannot be reached")
    expect(page.locator("#notice")).to_contain_text("Nothing was changed")
    site.shot(page, "11-unreachable")
    assert len(site.events("ConsentGranted")) == before


def test_expired_session_asks_to_sign_in_again(site: Site, page: Page) -> None:
    sign_in(site, page)
    site.server.clock.offset = 1000  # past the 15-minute token
    try:
        fill_grant(page, site.people.stranger.address, "Public health (PUBHLTH)")
        page.get_by_role("button", name="Open my wallet to sign").click()
        expect(page.locator("#notice")).to_contain_text("Your session has ended")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        site.shot(page, "12-session-ended")
    finally:
        site.server.clock.offset = 0
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your studies at this site")).to_be_visible()


def test_relays_are_limited_per_patient_per_hour(site: Site, page: Page) -> None:
    # Three relays so far (two grants, one revocation): the limit.
    sign_in(site, page)
    before = len(site.events("ConsentGranted"))
    fill_grant(page, site.people.stranger.address, "Public health (PUBHLTH)")
    page.get_by_role("button", name="Open my wallet to sign").click()

    expect(page.locator("#notice")).to_contain_text("Too many changes this hour")
    expect(page.locator("#notice")).to_contain_text(f"at most {RELAYS_PER_HOUR} changes")
    site.shot(page, "13-rate-limited")
    assert len(site.events("ConsentGranted")) == before


def test_guardian_is_appointed_by_a_wallet_transaction(site: Site, page: Page) -> None:
    sign_in(site, page)
    page.get_by_label("Guardian's account address").fill(site.guardian.address)
    page.get_by_label("Guardian until").fill(
        time.strftime("%Y-%m-%d", time.gmtime(time.time() + 90 * 86400))
    )
    page.get_by_role("button", name="Appoint from my wallet (needs ETH)").click()
    expect(page.locator("#notice")).to_contain_text(CONFIRMED, timeout=WAIT)

    delegation = site.suite.consent.delegation(site.people.patient.address, site.guardian.address)
    assert delegation is not None
    expect(page.locator("#guardian-body")).to_contain_text(site.guardian.address)
    assert delegation.scope == ALL_STUDIES


def test_readable_at_200_percent_zoom(site: Site) -> None:
    # 200% zoom of a 1280-pixel-wide window: 640 CSS pixels at twice the pixel density.
    context = site.context(width=640, scale=2)
    page = context.new_page()
    try:
        sign_in(site, page)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        site.shot(page, "14-zoom-200")
    finally:
        context.close()
    assert overflow <= 0


# --- `imaging-consent serve`'s options for the page --------------------------------------------


def serve_env(site: Site) -> dict[str, str]:
    """The environment of ``imaging-consent serve`` for this site (the gateway key in it)."""
    manifest, pepper = site.root / "manifest.json", site.root / "site-pepper"
    if not manifest.exists():
        site.suite.manifest.write(manifest)
        pepper.write_text(PEPPER.reveal().hex())
        pepper.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGING_CONSENT_")}
    return env | {
        "PYTHONPATH": str(SRC),
        "COLUMNS": "200",
        "HOME": str(site.root),
        "IMAGING_CONSENT_RPC_URL": site.chain.rpc_url,
        "IMAGING_CONSENT_MANIFEST": str(manifest),
        "IMAGING_CONSENT_SITE_PEPPER_FILE": str(pepper),
        "IMAGING_CONSENT_STORE": str(site.store.root),
        "IMAGING_CONSENT_PRIVATE_KEY": "0x" + bytes(site.people.gateway.key).hex(),
    }


def test_serve_options_reach_the_page(site: Site) -> None:
    doctor, researcher = site.people.requester.address, site.researcher.address
    env = serve_env(site) | {
        "IMAGING_CONSENT_SERVE_TX_LINK": "https://sepolia.etherscan.io/tx/{tx}",
        "IMAGING_CONSENT_SERVE_LABELS": f"{doctor}=Dr Rivera, radiology; {researcher}=Study",
    }
    running = start_serve(
        site,  # type: ignore[arg-type]  # only its root folder is used
        env,
        "--network-name",
        "Sepolia test network",
        "--relay-per-hour",
        "4",
        "--work-dir",
        str(site.root / "work-process"),
    )
    try:
        html = httpx.get(f"{running.base}/patient", timeout=30).text
    finally:
        code = stop(running.process, signal.SIGTERM)
    start = html.index('type="application/json">') + len('type="application/json">')
    config = json.loads(html[start : html.index("</script>", start)])

    assert code == 0
    assert config["networkName"] == "Sepolia test network" and config["relayPerHour"] == 4
    assert config["txLink"] == "https://sepolia.etherscan.io/tx/{tx}"
    assert config["labels"] == [
        {"address": doctor, "label": "Dr Rivera, radiology"},
        {"address": researcher, "label": "Study"},
    ]


def test_page_settings_refuse_unsafe_links_and_bad_labels() -> None:
    good = "https://sepolia.etherscan.io/tx/{tx}"
    links = (
        "http://sepolia.etherscan.io/tx/{tx}",  # not https
        "https://sepolia.etherscan.io/tx/{tx}/{tx}",  # twice
        "https://sepolia.etherscan.io/tx/",  # no {tx}
        "https://{tx}.example.org/",  # the hash as the host
        "https:///tx/{tx}",  # no host
        "https://sepolia.etherscan.io/tx/{tx}?q={other}",  # another placeholder
        "https://sepolia.etherscan.io/tx/ {tx}",
        "javascript:alert(1)//{tx}",
    )
    labels = ("Dr Rivera", "0x1234=Dr Rivera", f"{CHECKSUMMED}=", f"{CHECKSUMMED}=a\x07b")

    assert PatientSettings(tx_link=good).tx_link == good
    assert parse_label(f"{CHECKSUMMED.lower()}= Dr Lee, radiology ") == (
        CHECKSUMMED,
        "Dr Lee, radiology",
    )
    for link in links:
        with pytest.raises(ValueError, match="exactly once"):
            PatientSettings(tx_link=link)
    for text in labels:
        with pytest.raises(ValueError):
            parse_label(text)
    for bad in ({"relay_per_hour": 0}, {"network_name": " "}, {"labels": (("0x12", "x"),)}):
        with pytest.raises(ValueError):
            PatientSettings(**bad)  # type: ignore[arg-type]


def test_serve_refuses_bad_page_options_in_one_line(site: Site) -> None:
    env = serve_env(site)
    cases = {
        ("--tx-link", "http://sepolia.etherscan.io/tx/{tx}"): "https://",
        ("--relay-per-hour", "0"): "at least 1",
        ("--label", "0x1234=Dr Rivera"): "not an address",
        ("--network-name", " "): "network name",
    }
    runs = {
        args: subprocess.Popen(
            [sys.executable, "-m", "imaging_consent", "serve", *args],
            env=env,
            cwd=site.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in cases
    }
    for args, fragment in cases.items():
        out, err = runs[args].communicate(timeout=120)
        lines = [line for line in err.splitlines() if line.strip()]

        assert runs[args].returncode == 2, (args, out, err)
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, lines)
        assert fragment in lines[0], (args, lines)
