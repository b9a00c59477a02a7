"""The end-to-end story, told on a local chain with real DICOM studies.

A hospital registers three studies for one patient; the patient grants, signs and revokes
consent; a radiologist, a research app and an emergency clinician ask the release gate for
images; every release and refusal lands in the patient's audit trail. Each step narrates what
happens and checks the outcome (the demo fails if the system misbehaves), so it doubles as a
smoke test. ``imaging-consent demo`` runs it; this module knows nothing of the command line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pydicom
from eth_account.signers.local import LocalAccount
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from web3 import Web3

from imaging_consent.chain import ChainKind, LocalChain, TransactionSender, write_keystore
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.contracts.deployment import Suite, deploy, sender_for
from imaging_consent.contracts.manifest import RoleGrant, manifest_path
from imaging_consent.dicom import SitePepper
from imaging_consent.dicom.annex_e import Action, basic_profile_action
from imaging_consent.errors import ConsentDeniedError, ImagingConsentError
from imaging_consent.gateway import ImageGateway, Release
from imaging_consent.provenance import PROOF_FILE, register_study, verify_files, write_release
from imaging_consent.stores import FolderStore

__all__ = [
    "DEMO_KEYSTORE_PASSWORD",
    "ROLES",
    "SAMPLE_FILES",
    "DemoError",
    "DemoResult",
    "GasEntry",
    "run_demo",
]

#: The dev account index of each character in the story.
ROLES: dict[str, int] = {
    "admin/site": 0,
    "gateway": 1,
    "patient": 2,
    "radiologist": 3,
    "research app": 4,
    "relayer": 5,
    "emergency clinician": 6,
}
#: pydicom's bundled studies the hospital holds (three studies, distinct Study Instance UIDs).
SAMPLE_FILES: dict[str, str] = {"CT": "CT_small.dcm", "MR": "MR_small.dcm", "RT dose": "rtdose.dcm"}
#: Password of the keystores ``--keep`` writes (test accounts only).
DEMO_KEYSTORE_PASSWORD = "demo"


class DemoError(ImagingConsentError, RuntimeError):
    """The system did not behave as the story says it must (a failed check in the demo)."""


@dataclass(frozen=True, slots=True)
class GasEntry:
    """Gas one operation used, from its receipt."""

    operation: str
    actor: str
    gas_used: int
    tx_hash: str


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo did.

    Attributes:
        outcomes: One line per checked outcome, in order (``"released ..."``, ``"refused ..."``).
        gas: Gas per operation.
        seconds: Wall time of the story (chain start to audit).
        keep_dir: Where ``--keep`` wrote its files, if it did.
    """

    outcomes: tuple[str, ...]
    gas: tuple[GasEntry, ...]
    seconds: float
    keep_dir: Path | None = None


@dataclass
class _Story:
    console: Console
    chain: LocalChain
    work: Path
    pepper: SitePepper
    suite: Suite | None = None
    senders: dict[str, TransactionSender] = field(default_factory=dict)
    gas: list[GasEntry] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    study_uids: dict[str, str] = field(default_factory=dict)
    study_keys: dict[str, bytes] = field(default_factory=dict)

    # --- narration -----------------------------------------------------------------------------

    def step(self, number: int, title: str) -> None:
        self.console.rule(f"[bold]{number}. {title}")

    def say(self, text: str) -> None:
        self.console.print(text)

    def good(self, text: str) -> None:
        self.outcomes.append(text)
        self.console.print(f"  [bold green]✔[/] {text}")

    def bad(self, text: str) -> None:
        self.outcomes.append(text)
        self.console.print(f"  [bold red]✘[/] {text}")

    def check(self, condition: bool, failure: str) -> None:
        if not condition:
            raise DemoError(f"demo check failed: {failure}")

    # --- chain helpers -------------------------------------------------------------------------

    def account(self, role: str) -> LocalAccount:
        return self.chain.accounts[ROLES[role]]

    def addr(self, role: str) -> str:
        return self.account(role).address

    def sender(self, role: str) -> TransactionSender:
        if role not in self.senders:
            self.senders[role] = sender_for(self.chain.session, self.account(role))
        return self.senders[role]

    def record_gas(self, operation: str, actor: str, tx_hash: str | None) -> int:
        if tx_hash is None:
            return 0
        receipt = self.chain.session.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        used = int(receipt["gasUsed"])
        self.gas.append(GasEntry(operation, actor, used, tx_hash))
        return used

    @property
    def the_suite(self) -> Suite:
        if self.suite is None:
            raise DemoError("the suite is not deployed yet")
        return self.suite

    def gateway(self, store: FolderStore) -> ImageGateway:
        return ImageGateway(self.the_suite, self.sender("gateway"), store, self.pepper)

    def balance(self, role: str) -> int:
        return int(self.chain.session.w3.eth.get_balance(self.addr(role)))  # type: ignore[arg-type]

    def chain_now(self) -> int:
        return int(self.chain.session.w3.eth.get_block("latest")["timestamp"])


# --- the studies -----------------------------------------------------------------------------


def prepare_studies(folder: Path) -> dict[str, str]:
    """Copy pydicom's bundled CT, MR and RT dose files into ``folder``.

    Returns:
        Study Instance UID by label (``"CT"``, ``"MR"``, ``"RT dose"``).

    Raises:
        DemoError: If a sample file is missing or two share a study.
    """
    folder.mkdir(parents=True, exist_ok=True)
    uids: dict[str, str] = {}
    for label, name in SAMPLE_FILES.items():
        source = get_testdata_file(name)
        if source is None:
            raise DemoError(f"pydicom's sample file {name} is missing")
        target = folder / name
        shutil.copyfile(source, target)
        ds = pydicom.dcmread(target, stop_before_pixels=True)
        uids[label] = str(ds.StudyInstanceUID)
    if len(set(uids.values())) != len(uids):
        raise DemoError("the sample files do not hold three distinct studies")
    return uids


def identifying_attributes(original: Dataset, released: Dataset) -> tuple[list[str], list[str]]:
    """Compare top-level attributes the Basic Profile does not keep.

    Returns:
        ``(identifying, survivors)``: keywords of the original's non-empty attributes that the
        profile removes, empties or replaces; and those among them the release still carries
        with the original value.
    """
    identifying: list[str] = []
    survivors: list[str] = []
    for element in original:
        if element.tag == 0x7FE00010 or element.VR == "SQ":
            continue
        action = basic_profile_action(int(element.tag))
        if action is None or action is Action.K or element.value in (None, "", b""):
            continue
        name = element.keyword or str(element.tag)
        identifying.append(name)
        kept = released.get(element.tag)
        if kept is not None and kept.value == element.value:
            survivors.append(name)
    return identifying, survivors


# --- the story -------------------------------------------------------------------------------


def _deploy_and_register(story: _Story, studies: Path) -> FolderStore:
    story.step(1, "A hospital deploys the consent suite and registers three studies")
    session = story.chain.session
    admin = story.sender("admin/site")
    story.say(
        "The hospital's admin deploys ConsentRegistry, StudyRegistry and AccessLog, then gives "
        "itself the SITE role, its gateway the GATEWAY role and the emergency department's "
        "clinician the EMERGENCY role."
    )
    suite = deploy(session, admin, out_dir=None)
    for name, contract in suite.manifest.contracts.items():
        story.record_gas(f"deploy {name}", "admin", contract.tx_hash)
    roles = []
    for contract_name, role, who in (
        ("StudyRegistry", "SITE_ROLE", "admin/site"),
        ("AccessLog", "GATEWAY_ROLE", "gateway"),
        ("AccessLog", "EMERGENCY_ROLE", "emergency clinician"),
    ):
        target = suite.studies if contract_name == "StudyRegistry" else suite.access_log
        receipt = admin.transact(target.grant_role(role, story.addr(who)))
        story.record_gas(f"grant {role}", "admin", receipt.tx_hash)
        roles.append(RoleGrant(contract_name, role, Web3.to_checksum_address(story.addr(who))))
    story.suite = replace(suite, manifest=replace(suite.manifest, roles=tuple(roles)))
    story.good(f"deployed the suite on {story.chain.kind.value} (chain id {session.chain_id})")

    story.say(
        "The site indexes its DICOM folder (pydicom's real CT, MR and RT dose files) and puts "
        "each study on chain: only an opaque key (keyed with the site's secret pepper), the "
        "patient's address and a Merkle root over the pixel hashes. No UID, no name, no date."
    )
    store = FolderStore(studies)
    table = Table(title="Registered studies (the Study UID stays at the site)")
    for column in ("study", "study key on chain", "content root", "instances", "action"):
        table.add_column(column)
    for label, uid in story.study_uids.items():
        result = register_study(
            story.the_suite, admin, store, story.pepper, uid, story.addr("patient")
        )
        story.study_keys[label] = result.study_key
        story.record_gas(f"registerStudy ({label})", "site", result.tx_hash)
        table.add_row(
            label,
            "0x" + result.study_key.hex()[:16] + "…",
            "0x" + result.content_root.hex()[:16] + "…",
            str(result.instance_count),
            result.action.value,
        )
    story.console.print(table)
    story.good(f"registered {len(story.study_uids)} studies for the patient")
    return store


def _fetch(story: _Story, store: FolderStore, label: str, who: str, purpose: Purpose) -> Release:
    with story.gateway(store) as gate:
        return gate.release(story.study_uids[label], story.addr(who), purpose)


def _save_and_verify(story: _Story, release: Release, name: str) -> list[Path]:
    folder = story.work / "received" / name
    written = write_release(release, folder)
    files = [p for p in written if p.name != PROOF_FILE]
    results = verify_files(story.the_suite, files, folder / PROOF_FILE)
    story.check(all(results.values()), f"released files of {name} failed verification")
    return files


def _radiologist(story: _Story, store: FolderStore) -> None:
    story.step(2, "The patient lets a radiologist see the CT, for treatment")
    client = ConsentClient(story.the_suite, story.sender("patient"))
    receipt = client.grant(
        story.addr("radiologist"), story.study_keys["CT"], [Purpose.TREAT], identified=True
    )
    story.record_gas("grant (patient pays)", "patient", receipt.tx_hash)
    story.good("the patient granted the radiologist TREAT, identified, on the CT study")
    story.say("The radiologist's viewer asks the hospital's gateway for the CT.")
    release = _fetch(story, store, "CT", "radiologist", Purpose.TREAT)
    story.record_gas("recordAccess (release)", "gateway", release.log_tx)
    story.check(release.identified, "the radiologist's release should be identified")
    files = _save_and_verify(story, release, "radiologist")
    story.good(
        f"released {len(release.instances)} instance(s) to the radiologist, identified; "
        f"the access is recorded on chain"
    )
    story.good(
        f"verified {len(files)}/{len(files)} file(s) against the content root on chain "
        "(pixel hash + Merkle proof)"
    )


def _research(story: _Story, store: FolderStore) -> None:
    story.step(3, "A research app asks for the MR; the patient consents by signature, gas-free")
    story.say("The research app asks for the MR study for healthcare research (HRESCH).")
    try:
        _fetch(story, store, "MR", "research app", Purpose.HRESCH)
    except ConsentDeniedError as exc:
        denial = _denial_tx(story, exc.request_id)
        story.record_gas("recordAccess (refusal)", "gateway", denial)
        story.bad("refused: no consent for HRESCH; the refusal is recorded on chain")
    else:
        raise DemoError("the research app was released images without consent")

    story.say(
        "The patient signs an EIP-712 consent in their wallet: research, de-identified only, "
        "all studies, for 30 days. They send no transaction and pay nothing: a relayer submits it."
    )
    patient_before = story.balance("patient")
    reader = ConsentClient(story.the_suite)
    signed = reader.sign_grant(
        story.addr("patient"),
        story.addr("research app"),
        None,
        [Purpose.HRESCH],
        identified=False,
        expires_at=story.chain_now() + 30 * 86400,
        key=story.account("patient"),
    )
    (story.work / "research-consent.json").write_text(signed.to_json() + "\n")
    domain = signed.typed_data["domain"]
    story.say(
        f"  signed typed data: {signed.typed_data['primaryType']} in domain "
        f"{domain.get('name')} v{domain.get('version')} (chain {domain.get('chainId')}), "
        f"nonce {signed.nonce}"
    )
    receipt = ConsentClient(story.the_suite, story.sender("relayer")).relay_grant(signed)
    story.record_gas("grantBySig (relayer pays)", "relayer", receipt.tx_hash)
    patient_after = story.balance("patient")
    story.check(patient_after == patient_before, "the patient's balance changed")
    eth = story.chain.session.w3.from_wei(patient_after, "ether")
    story.good(
        f"the relayer submitted the signed consent; the patient's balance is unchanged "
        f"({eth:,.4f} ETH)"
    )

    story.say("The research app asks again.")
    release = _fetch(story, store, "MR", "research app", Purpose.HRESCH)
    story.record_gas("recordAccess (release)", "gateway", release.log_tx)
    story.check(not release.identified, "the research release should be de-identified")
    files = _save_and_verify(story, release, "research")
    story.good(f"released {len(release.instances)} instance(s) to the research app, de-identified")
    original = pydicom.dcmread(
        store.path(store.instances(story.study_uids["MR"])[0].sop_instance_uid)
    )
    received = pydicom.dcmread(files[0])
    identifying, survivors = identifying_attributes(original, received)
    story.check(not survivors, f"identifying attributes survived: {', '.join(survivors)}")
    identifying.sort(key=lambda name: (not name.startswith("Patient"), name))
    story.check(
        str(received.get("PatientIdentityRemoved", "")) == "YES",
        "PatientIdentityRemoved is not YES",
    )
    story.good(
        f"no identifying attribute left: {len(identifying)} of them in the original "
        f"(e.g. {', '.join(identifying[:5])}) are removed or replaced, and the UIDs are "
        "pseudonyms"
    )
    story.good(f"the de-identified pixels still verified against the chain ({len(files)} file(s))")


def _denial_tx(story: _Story, request_id: bytes | None) -> str | None:
    if request_id is None:
        return None
    from imaging_consent.access_log.history import access_history

    for event in access_history(story.the_suite, story.addr("patient"), newest_first=True):
        if event.request_id == request_id:
            return event.tx_hash
    return None


def _revocation(story: _Story, store: FolderStore) -> None:
    story.step(4, "The patient revokes the radiologist's access")
    client = ConsentClient(story.the_suite, story.sender("patient"))
    receipt = client.revoke(story.addr("radiologist"), story.study_keys["CT"])
    story.record_gas("revoke", "patient", receipt.tx_hash)
    story.good("the patient revoked the radiologist's grant on the CT")
    story.say("The radiologist's viewer asks for the CT again.")
    try:
        _fetch(story, store, "CT", "radiologist", Purpose.TREAT)
    except ConsentDeniedError as exc:
        story.record_gas("recordAccess (refusal)", "gateway", _denial_tx(story, exc.request_id))
        story.bad("refused: the grant is revoked; the refusal is recorded on chain")
    else:
        raise DemoError("the radiologist was released images after revocation")


def _break_glass(story: _Story, store: FolderStore) -> None:
    story.step(5, "An emergency clinician breaks the glass")
    story.say(
        "An unconscious patient arrives in the emergency department. A clinician with the "
        "EMERGENCY role opens the RT dose study without consent, giving a reason. The reason "
        "stays at the hospital; only its hash goes on chain."
    )
    with story.gateway(store) as gate:
        release = gate.release(
            story.study_uids["RT dose"],
            story.addr("emergency clinician"),
            Purpose.ETREAT,
            break_glass_reason="Unconscious patient in the ED; prior radiotherapy plan needed",
        )
    story.record_gas("recordBreakGlass", "gateway", release.log_tx)
    story.check(release.break_glass, "the release is not marked break-glass")
    _save_and_verify(story, release, "emergency")
    story.good(
        f"break-glass: released {len(release.instances)} instance(s) to the emergency "
        "clinician; recorded and flagged for the patient"
    )


def _audit(story: _Story) -> None:
    story.step(6, "The patient reads their audit trail")
    from imaging_consent.cli.access import audit_tables

    grants, events = audit_tables(story.the_suite, story.addr("patient"))
    story.console.print(grants)
    story.console.print(events)
    story.good("every grant, release, refusal and break-glass is in the audit trail")


def _gas_table(story: _Story) -> None:
    story.step(7, "What it cost: gas per operation, from the receipts")
    table = Table(title="Gas per operation")
    table.add_column("operation")
    table.add_column("paid by")
    table.add_column("gas used", justify="right")
    for entry in story.gas:
        table.add_row(entry.operation, entry.actor, f"{entry.gas_used:,}")
    story.console.print(table)


def _cast(story: _Story) -> None:
    table = Table(title="Who is who (local dev accounts)")
    table.add_column("role")
    table.add_column("address")
    for role in ROLES:
        table.add_row(role, story.addr(role))
    story.console.print(table)


@contextmanager
def _workdir(keep_dir: Path | None) -> Iterator[Path]:
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        yield keep_dir.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="imaging-consent-demo-") as folder:
        yield Path(folder)


def _write_keep_files(story: _Story, folder: Path) -> None:
    """Manifest, keys, pepper file, config and an env snippet, to continue by hand."""
    suite = story.the_suite
    manifest = manifest_path(folder / "deployments", suite.manifest.chain_id)
    suite.manifest.write(manifest)
    pepper_file = folder / "site-pepper"
    fd = os.open(pepper_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(story.pepper.reveal().hex() + "\n")
    os.chmod(pepper_file, 0o600)
    keys = folder / "keys"
    keys.mkdir(exist_ok=True)
    for role in ROLES:
        name = role.replace("/", "-").replace(" ", "-")
        write_keystore(
            story.account(role), keys / f"{name}.json", DEMO_KEYSTORE_PASSWORD, iterations=2**12
        )
    (folder / "imaging-consent.toml").write_text(
        f'rpc_url = "{story.chain.rpc_url}"\n'
        f'manifest = "{manifest.relative_to(folder)}"\n'
        'store = "studies"\n'
        'site_pepper_file = "site-pepper"\n'
    )
    (folder / "env.sh").write_text(
        "# Test accounts on a local chain only. Source it: . ./env.sh\n"
        f"export IMAGING_CONSENT_RPC_URL={story.chain.rpc_url}\n"
        f"export IMAGING_CONSENT_MANIFEST={manifest}\n"
        f"export IMAGING_CONSENT_STORE={folder / 'studies'}\n"
        f"export IMAGING_CONSENT_SITE_PEPPER_FILE={pepper_file}\n"
        f"export IMAGING_CONSENT_KEYSTORE_PASSWORD={DEMO_KEYSTORE_PASSWORD}\n"
    )


def _continue_hints(story: _Story, folder: Path) -> None:
    p = story.addr
    ct_key = "0x" + story.study_keys["CT"].hex()
    story.console.rule("[bold]Continue by hand")
    story.console.print(
        f"The chain keeps running at {story.chain.rpc_url}. Files are in {folder}:\n"
        "deployments/ (manifest), keys/ (keystores, password "
        f"'{DEMO_KEYSTORE_PASSWORD}', TEST KEYS ONLY), studies/, site-pepper, "
        "imaging-consent.toml, env.sh.\n"
        "In another shell:\n"
        f"  cd {folder} && . ./env.sh\n"
        "  imaging-consent consent grant --keystore keys/patient.json "
        f"--grantee {p('radiologist')} --study-key {ct_key} \\\n"
        "      --purpose TREAT --identified --expires 7d\n"
        f"  imaging-consent fetch {story.study_uids['CT']} --purpose TREAT "
        f"--as {p('radiologist')} --keystore keys/gateway.json --out received/ct-again\n"
        "  imaging-consent verify received/ct-again\n"
        f"  imaging-consent consent revoke --keystore keys/patient.json --grantee "
        f"{p('radiologist')} --study-key {ct_key}\n"
        f"  imaging-consent audit --patient {p('patient')}"
    )


def run_demo(
    console: Console,
    *,
    kind: ChainKind | Literal["ganache", "anvil"] = "ganache",
    keep_dir: Path | None = None,
    wait: Callable[[], None] | None = None,
) -> DemoResult:
    """Run the whole story on a local chain it starts (and stops, unless keeping it).

    Args:
        console: Where to narrate.
        kind: ``"ganache"`` (default) or ``"anvil"``.
        keep_dir: If given, write the studies, manifest, keys, config and env snippet there,
            print how to continue, call ``wait`` and only then stop the chain.
        wait: Blocks while the chain is kept (e.g. until Ctrl-C).

    Returns:
        The outcomes and gas figures.

    Raises:
        DemoError: If a step's outcome is not what the system guarantees.
        LocalChainError: If the chain cannot be started.
        ImagingConsentError: If any step fails.
    """
    started = time.monotonic()
    with _workdir(keep_dir) as work:
        studies = work / "studies"
        uids = prepare_studies(studies)
        chain = LocalChain(kind)
        with console.status(f"starting a local {kind} chain..."):
            chain.start()
        try:
            story = _Story(console, chain, work, SitePepper(os.urandom(32)), study_uids=uids)
            console.print(
                f"[bold]imaging-consent demo[/] on {kind} at {escape(chain.rpc_url)}, "
                "with pydicom's real DICOM files"
            )
            _cast(story)
            store = _deploy_and_register(story, studies)
            _radiologist(story, store)
            _research(story, store)
            _revocation(story, store)
            _break_glass(story, store)
            _audit(story)
            _gas_table(story)
            seconds = time.monotonic() - started
            console.rule()
            console.print(f"[bold green]demo complete[/] in {seconds:.1f} s")
            if keep_dir is not None:
                _write_keep_files(story, work)
                _continue_hints(story, work)
                if wait is not None:
                    wait()
        finally:
            chain.stop()
    return DemoResult(tuple(story.outcomes), tuple(story.gas), seconds, keep_dir)
