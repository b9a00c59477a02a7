"""The patient's page in a real browser: Debian's Chromium driven by Playwright, a real Anvil
chain, the real server on a free loopback port, and a test wallet (EIP-1193, viem, the patient's
test key) injected before the page loads.

The tests run in order on one site and one patient: sign in; grant de-identified research on
all studies and find it on chain; grant TREAT on one study and revoke it, finding both on chain,
with DICOMweb fetches before and after; the history shows the release, the refusal and a
break-glass access; then the faults (a rejected signature, the wrong chain, an unreachable
gateway, an expired session, the hourly relay limit) and a guardian appointed by a wallet
transaction. Each screen is saved under the module's temporary folder (``screens``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
import uvicorn
from eth_account.signers.local import LocalAccount
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from release_samples import CT_STUDY, MR_STUDY, RLE_STUDY, Actors, actors, build_studies
from release_samples import deploy_suite as deploy_site
from starlette.testclient import TestClient
from test_server import Clock, Server, free_port, problem

from imaging_consent.access_log import AccessEvent
from imaging_consent.chain import LocalChain
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.consent.signing import sign_typed_data
from imaging_consent.contracts.consent_registry import ALL_STUDIES
from imaging_consent.contracts.deployment import Suite, sender_for
from imaging_consent.dicom import SitePepper, study_key
from imaging_consent.gateway import ImageGateway
from imaging_consent.index import AuditTrail
from imaging_consent.provenance import register_study
from imaging_consent.server import ServerSettings, create_app
from imaging_consent.server.break_glass import HEADER, REASON_HEADER, header_value
from imaging_consent.server.patient import PAGE_DIR, PatientSettings
from imaging_consent.server.patient_view import trail_json
from imaging_consent.stores import FolderStore

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
        labels = (
            (people.requester.address, "Dr Rivera, radiology"),
            (researcher.address, "Imaging research study"),
        )
        app = create_app(
            ServerSettings(public_url=base, work_dir=root / "work"),
            gateway,
            clock=clock,
            patient=PatientSettings(
                relay_per_hour=RELAYS_PER_HOUR, network_name="Local test chain", labels=labels
            ),
        )
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline, "no server"
                time.sleep(0.02)
            with sync_playwright() as pw:
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
                    )
                finally:
                    browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            gateway.close()
            print(f"\nscreenshots: {screens}")


@pytest.fixture
def page(site: Site) -> Iterator[Page]:
    context = site.context()
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(site: Site, page: Page) -> None:
    page.goto(f"{site.base}/patient")
    page.get_by_role("button", name="Connect your wallet").click()
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your studies at this site")).to_be_visible()


def fill_grant(
    page: Page, grantee: str, purpose: str, *, study: str | None = None, identified: bool = False
) -> None:
    page.get_by_label("Who should get access?").fill(grantee)
    if study is not None:
        page.get_by_label(f"Only: {study}").check()
    page.get_by_label(purpose).check()
    if identified:
        page.get_by_label("Identified images").check()
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
    site.shot(page, "07-history")


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
    sign_in(site, page)
    page.route("**/patient/api/**", lambda route: route.abort())
    fill_grant(page, site.people.stranger.address, "Public health (PUBHLTH)")
    page.get_by_role("button", name="Open my wallet to sign").click()
    expect(page.locator("#notice")).to_contain_text("The site cannot be reached")
    site.shot(page, "11-unreachable")


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
