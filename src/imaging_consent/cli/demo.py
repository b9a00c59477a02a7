"""``imaging-consent demo``: the end-to-end story, told on a local chain with real DICOM studies.

A hospital registers three studies for one patient; the patient grants, signs and revokes
consent; a radiologist, a research app and an emergency clinician ask the release gate for
images; every release and refusal lands in the patient's audit trail. Each step narrates what
happens and checks the outcome (the demo fails if the system misbehaves), so it doubles as a
smoke test. The steps call the library directly, as an application would, and print the same
audit tables as ``imaging-consent audit``; :mod:`.demo_setup` holds the cast and the props.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

import pydicom
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from web3 import Web3

from imaging_consent.access_log import access_history
from imaging_consent.chain import ChainKind, LocalChain
from imaging_consent.cli.chain import KindOpt, wait_for_interrupt
from imaging_consent.cli.common import iso_utc, out_console
from imaging_consent.cli.demo_setup import (
    ROLES,
    DemoError,
    DemoResult,
    Story,
    continue_hints,
    identifying_attributes,
    prepare_studies,
    workdir,
    write_keep_files,
)
from imaging_consent.cli.layout import print_records
from imaging_consent.cli.tables import audit_tables
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.consent.relay import save_signed_consent
from imaging_consent.contracts.deployment import deploy
from imaging_consent.contracts.manifest import RoleGrant
from imaging_consent.dicom import SitePepper
from imaging_consent.errors import ConsentDeniedError
from imaging_consent.gateway import Release
from imaging_consent.provenance import PROOF_FILE, register_study, verify_release, write_release
from imaging_consent.stores import FolderStore

__all__ = ["DemoError", "DemoResult", "app", "run_demo"]

app = typer.Typer()


# --- the story -------------------------------------------------------------------------------


def _deploy_and_register(story: Story, studies: Path) -> FolderStore:
    story.step(1, "A hospital deploys the consent suite and registers three studies")
    session = story.chain.session
    admin = story.sender("admin/site")
    story.say(
        "The hospital's admin deploys ConsentRegistry, StudyRegistry and AccessLog and makes "
        "the hospital a site. The site then appoints its own gateway and the emergency "
        "department's clinician: no one else can act in its name."
    )
    suite = deploy(session, admin, out_dir=None)
    for name, contract in suite.manifest.contracts.items():
        story.record_gas(f"deploy {name}", "admin", contract.tx_hash)
    site = Web3.to_checksum_address(story.addr("admin/site"))
    receipt = admin.transact(suite.studies.grant_role("SITE_ROLE", site))
    story.record_gas("grant SITE_ROLE", "admin", receipt.tx_hash)
    roles = [RoleGrant("StudyRegistry", "SITE_ROLE", site, admin.address)]
    for role, who, change in (
        ("GATEWAY", "gateway", suite.access_log.set_gateway),
        ("EMERGENCY", "emergency clinician", suite.access_log.set_emergency_clinician),
    ):
        account = Web3.to_checksum_address(story.addr(who))
        receipt = admin.transact(change(account, True))
        story.record_gas(f"appoint {role.lower()}", "site", receipt.tx_hash)
        roles.append(RoleGrant("AccessLog", role, account, site))
    story.suite = replace(suite, manifest=replace(suite.manifest, roles=tuple(roles)))
    story.good(f"deployed the suite on {story.chain.kind.value} (chain id {session.chain_id})")

    story.say(
        "The site indexes its DICOM folder (pydicom's real CT, MR and RT dose files) and puts "
        "each study on chain: only an opaque key (keyed with the site's secret pepper), the "
        "patient's address and a Merkle root over the pixel hashes. No UID, no name, no date."
    )
    store = FolderStore(studies)
    rows = []
    for label, uid in story.study_uids.items():
        result = register_study(
            story.the_suite, admin, store, story.pepper, uid, story.addr("patient")
        )
        story.study_keys[label] = result.study_key
        story.record_gas(f"registerStudy ({label})", "site", result.tx_hash)
        rows.append(
            [
                label,
                "0x" + result.study_key.hex(),
                "0x" + result.content_root.hex(),
                str(result.instance_count),
                result.action.value,
            ]
        )
    print_records(
        story.console,
        "Registered studies (the Study UID stays at the site)",
        ("study", "study key on chain", "content root", "instances", "action"),
        rows,
        right=("instances",),
    )
    story.good(f"registered {len(story.study_uids)} studies for the patient")
    return store


def _fetch(story: Story, store: FolderStore, label: str, who: str, purpose: Purpose) -> Release:
    with story.gateway(store) as gate:
        return gate.release(story.study_uids[label], story.addr(who), purpose)


def _save_and_verify(story: Story, release: Release, name: str) -> list[Path]:
    folder = story.work / "received" / name
    written = write_release(release, folder)
    files = [p for p in written if p.name != PROOF_FILE]
    check = verify_release(story.the_suite, folder / PROOF_FILE)
    story.check(check.ok, f"released files of {name} failed verification")
    return files


def _radiologist(story: Story, store: FolderStore) -> None:
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


def _research(story: Story, store: FolderStore) -> None:
    story.step(3, "A research app asks for the MR; the patient signs a consent, gas-free")
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
    save_signed_consent(signed, story.work / "research-consent.json")
    domain = signed.typed_data["domain"]
    story.say(
        f"  signed typed data: {signed.typed_data['primaryType']} in domain "
        f"{domain.get('name')} v{domain.get('version')} (chain {domain.get('chainId')}), "
        f"issued at {iso_utc(signed.issued_at)}"
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


def _denial_tx(story: Story, request_id: bytes | None) -> str | None:
    if request_id is None:
        return None
    for event in access_history(story.the_suite, story.addr("patient"), newest_first=True):
        if event.request_id == request_id:
            return event.tx_hash
    return None


def _revocation(story: Story, store: FolderStore) -> None:
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


def _break_glass(story: Story, store: FolderStore) -> None:
    story.step(5, "An emergency clinician breaks the glass")
    story.say(
        "An unconscious patient arrives in the emergency department. The site's emergency "
        "clinician signs a break-glass request for the RT dose study with their own key, giving "
        "a reason. The reason stays at the hospital; only a commitment keyed with the site's "
        "secret goes on chain, and the gateway can only relay the clinician's signature."
    )
    with story.gateway(store) as gate:
        uid = story.study_uids["RT dose"]
        reason = "Unconscious patient in the ED; prior radiotherapy plan needed"
        signed = gate.break_glass_request(story.account("emergency clinician"), uid, reason)
        release = gate.release(
            uid, story.addr("emergency clinician"), Purpose.ETREAT, break_glass=signed
        )
    story.record_gas("recordBreakGlass", "gateway", release.log_tx)
    story.check(release.break_glass, "the release is not marked break-glass")
    _save_and_verify(story, release, "emergency")
    story.good(
        f"break-glass: released {len(release.instances)} instance(s) to the emergency "
        "clinician; recorded and flagged for the patient"
    )


def _audit(story: Story) -> None:
    story.step(6, "The patient reads their audit trail")
    grants, events = audit_tables(story.the_suite, story.addr("patient"))
    story.console.print(grants)
    story.console.print(events)
    story.good("every grant, release, refusal and break-glass is in the audit trail")


def _gas_table(story: Story) -> None:
    story.step(7, "What it cost: gas per operation, from the receipts")
    table = Table(title="Gas per operation")
    table.add_column("operation")
    table.add_column("paid by")
    table.add_column("gas used", justify="right")
    for entry in story.gas:
        table.add_row(entry.operation, entry.actor, f"{entry.gas_used:,}")
    story.console.print(table)


def _cast(story: Story) -> None:
    print_records(
        story.console,
        "Who is who (local dev accounts)",
        ("role", "address"),
        [(role, story.addr(role)) for role in ROLES],
    )


def run_demo(
    console: Console,
    *,
    kind: ChainKind | Literal["ganache", "anvil"] = "ganache",
    keep_dir: Path | None = None,
    wait: Callable[[], int] | None = None,
) -> DemoResult:
    """Run the whole story on a local chain it starts (and stops, unless keeping it).

    Args:
        console: Where to narrate.
        kind: ``"ganache"`` (default) or ``"anvil"``.
        keep_dir: If given, write the studies, manifest, keys, config and env snippet there
            (emptying it first if an earlier run wrote it), print how to continue, call
            ``wait`` and only then stop the chain.
        wait: Blocks while the chain is kept (e.g. until Ctrl-C); returns the exit code.

    Returns:
        The outcomes and gas figures, and the exit code ``wait`` returned (else 0).

    Raises:
        DemoError: If a step's outcome is not what the system guarantees, or ``keep_dir`` is a
            non-empty folder no demo wrote.
        LocalChainError: If the chain cannot be started.
        ImagingConsentError: If any step fails.
    """
    started = time.monotonic()
    exit_code = 0
    with workdir(keep_dir) as work:
        studies = work / "studies"
        uids = prepare_studies(studies)
        chain = LocalChain(kind)
        try:
            with console.status(f"starting a local {kind} chain..."):
                chain.start()
            story = Story(console, chain, work, SitePepper(os.urandom(32)), study_uids=uids)
            console.print(
                f"[bold]imaging-consent demo[/] on {kind} at {escape(chain.rpc_url)}, "
                "with pydicom's real DICOM files",
                soft_wrap=False,
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
                write_keep_files(story, work)
                continue_hints(story, work)
                if wait is not None:
                    exit_code = wait()
        finally:
            chain.stop()
    return DemoResult(tuple(story.outcomes), tuple(story.gas), seconds, keep_dir, exit_code)


@app.command("demo")
def demo(
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Leave the chain running afterwards (with keys, config and studies written to "
            "--dir) and wait for Ctrl-C.",
        ),
    ] = False,
    directory: Annotated[
        str, typer.Option("--dir", help="Where --keep writes its files.")
    ] = "imaging-consent-demo",
    kind: KindOpt = ChainKind.GANACHE,
) -> None:
    """Tell the whole story on a local chain: consent, release, refusal, break-glass, audit.

    With --keep, exits 130 once Ctrl-C has stopped the chain (143 after SIGTERM).
    """
    result = run_demo(
        out_console,
        kind=kind.value,
        keep_dir=Path(directory) if keep else None,
        wait=lambda: wait_for_interrupt("Press Ctrl-C to stop the chain."),
    )
    if result.exit_code:
        out_console.print(f"{kind.value} stopped.")
        raise typer.Exit(result.exit_code)
