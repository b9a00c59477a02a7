"""``imaging-consent consent``: what a patient does with their own key (or a relayer's)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from imaging_consent.cli.common import (
    ConfigOpt,
    KeystoreOpt,
    ManifestOpt,
    RpcUrlOpt,
    UsageProblem,
    Workspace,
    address,
    out_console,
    parse_study_key,
    parse_when,
    short,
    when,
)
from imaging_consent.consent import ALL_STUDIES, ConsentClient, Grant, Purpose, SignedConsent
from imaging_consent.errors import InvalidSignatureError

__all__ = ["app", "grants_table"]

app = typer.Typer(no_args_is_help=True)

_StudyKeyOpt = typer.Option(
    None, "--study-key", help="One study, by its 0x study key (from `site register`)."
)
_AllOpt = typer.Option(False, "--all-studies", help="All of the patient's studies.")
_GranteeOpt = typer.Option(..., "--grantee", help="The account given (or losing) access.")


def _scope(study_key: str | None, all_studies: bool) -> bytes:
    if (study_key is None) == (not all_studies):
        raise UsageProblem("give exactly one of --study-key KEY or --all-studies")
    return ALL_STUDIES if study_key is None else parse_study_key(study_key)


def _chain_now(ws: Workspace) -> int:
    return int(ws.session.w3.eth.get_block("latest")["timestamp"])


def _window(ws: Workspace, not_before: str | None, expires: str | None) -> tuple[int, int]:
    now = _chain_now(ws) if (not_before or expires) else 0
    start = parse_when(not_before, now, "--not-before") if not_before else 0
    end = parse_when(expires, max(start, now), "--expires") if expires else 0
    return start, end


def scope_label(scope: bytes) -> str:
    """``all studies`` or the study key."""
    return "all studies" if scope == ALL_STUDIES else "0x" + scope.hex()


def grants_table(grants: tuple[Grant, ...], now: int, title: str) -> Table:
    """A table of grants, marking expired and not-yet-valid ones."""
    table = Table(title=title)
    for column in ("patient", "grantee", "scope", "purposes", "data", "valid", "status"):
        table.add_column(column)
    for grant in grants:
        start = when(grant.not_before) if grant.not_before else "now"
        end = when(grant.expires_at) if grant.expires_at else "no expiry"
        status = (
            "[green]active[/]"
            if grant.is_active(now)
            else ("[yellow]not yet valid[/]" if now < grant.not_before else "[red]expired[/]")
        )
        table.add_row(
            grant.patient,
            grant.grantee,
            scope_label(grant.scope) if grant.all_studies else short(grant.scope, 16),
            ", ".join(p.name for p in sorted(grant.purposes, key=lambda p: p.value)),
            "identified" if grant.identified else "de-identified",
            f"{start} → {end}",
            status,
        )
    return table


def _purposes(values: list[str]) -> list[Purpose]:
    if not values:
        raise UsageProblem("give at least one --purpose (e.g. --purpose TREAT)")
    return [Purpose.parse(v) for v in values]


@app.command("grant")
def grant(
    grantee: str = _GranteeOpt,
    purpose: list[str] = typer.Option(
        [], "--purpose", help="Purpose of use (TREAT, ETREAT, HRESCH, ...). Repeatable."
    ),
    study_key: str | None = _StudyKeyOpt,
    all_studies: bool = _AllOpt,
    identified: bool = typer.Option(
        False,
        "--identified/--deidentified",
        help="Allow identified data, or de-identified only (the default).",
    ),
    expires: str | None = typer.Option(
        None, "--expires", help="When it ends: a duration (30d, 12h) or an ISO date."
    ),
    not_before: str | None = typer.Option(
        None, "--not-before", help="When it starts: a duration from now or an ISO date."
    ),
    rpc_url: RpcUrlOpt = None,
    manifest: ManifestOpt = None,
    keystore: KeystoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Grant (or replace) access to your studies; you sign and pay the gas."""
    ws = Workspace(rpc_url=rpc_url, manifest=manifest, keystore=keystore, config=config)
    scope = _scope(study_key, all_studies)
    purposes = _purposes(purpose)
    target = address(grantee, "--grantee")
    start, end = _window(ws, not_before, expires)
    sender = ws.sender()
    receipt = ConsentClient(ws.suite, sender).grant(
        target, scope, purposes, identified=identified, not_before=start, expires_at=end
    )
    out_console.print(
        f"[green]granted[/] {', '.join(p.name for p in purposes)} "
        f"({'identified' if identified else 'de-identified'}) on {scope_label(scope)} "
        f"to {target}{f' until {when(end)}' if end else ''} "
        f"in tx {receipt.tx_hash} (gas {receipt.gas_used:,})"
    )


@app.command("revoke")
def revoke(
    grantee: str = _GranteeOpt,
    study_key: str | None = _StudyKeyOpt,
    all_studies: bool = _AllOpt,
    rpc_url: RpcUrlOpt = None,
    manifest: ManifestOpt = None,
    keystore: KeystoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a grant; it stops counting in the very next block."""
    ws = Workspace(rpc_url=rpc_url, manifest=manifest, keystore=keystore, config=config)
    scope = _scope(study_key, all_studies)
    target = address(grantee, "--grantee")
    receipt = ConsentClient(ws.suite, ws.sender()).revoke(target, scope)
    out_console.print(
        f"[yellow]revoked[/] the grant on {scope_label(scope)} to {target} "
        f"in tx {receipt.tx_hash} (gas {receipt.gas_used:,})"
    )


@app.command("delegate")
def delegate(
    account: str = typer.Argument(..., help="The guardian / delegate's address."),
    remove: bool = typer.Option(False, "--remove", help="Remove the delegate instead."),
    rpc_url: RpcUrlOpt = None,
    manifest: ManifestOpt = None,
    keystore: KeystoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Appoint (or remove) a delegate who may grant and revoke for you."""
    ws = Workspace(rpc_url=rpc_url, manifest=manifest, keystore=keystore, config=config)
    target = address(account)
    receipt = ConsentClient(ws.suite, ws.sender()).set_delegate(target, not remove)
    out_console.print(
        f"{'removed' if remove else 'appointed'} delegate {target} in tx {receipt.tx_hash}"
    )


@app.command("list")
def list_grants(
    patient: str | None = typer.Option(None, "--patient", help="Grants made by this patient."),
    grantee: str | None = typer.Option(None, "--grantee", help="Grants made to this account."),
    history: bool = typer.Option(False, "--history", help="Also list every consent event."),
    rpc_url: RpcUrlOpt = None,
    manifest: ManifestOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List current grants (from the chain's events), by patient and/or grantee."""
    if patient is None and grantee is None:
        raise UsageProblem("give --patient ADDRESS and/or --grantee ADDRESS")
    ws = Workspace(rpc_url=rpc_url, manifest=manifest, config=config)
    client = ConsentClient(ws.suite)
    now = _chain_now(ws)
    if patient is not None:
        found = client.grants_of(address(patient, "--patient"))
        grants = found.current
        if grantee is not None:
            grants = tuple(g for g in grants if g.grantee == address(grantee, "--grantee"))
    else:
        found = client.grants_to(address(str(grantee), "--grantee"))
        grants = found.current
    out_console.print(grants_table(grants, now, f"Grants ({len(grants)})"))
    if history:
        table = Table(title="Consent events, oldest first")
        for column in ("when", "event", "patient", "grantee", "scope", "tx"):
            table.add_column(column)
        for event in found.events:
            table.add_row(
                when(event.timestamp),
                event.kind,
                event.patient,
                event.grantee,
                scope_label(event.scope),
                short(event.tx_hash, 12),
            )
        out_console.print(table)


@app.command("sign")
def sign(
    grantee: str = _GranteeOpt,
    out: Path = typer.Option(..., "--out", help="Where to write the EIP-712 JSON."),
    purpose: list[str] = typer.Option(
        [], "--purpose", help="Purpose of use. Repeatable. (Not for --revoke.)"
    ),
    study_key: str | None = _StudyKeyOpt,
    all_studies: bool = _AllOpt,
    identified: bool = typer.Option(False, "--identified/--deidentified"),
    expires: str | None = typer.Option(None, "--expires", help="Grant end (30d or ISO date)."),
    not_before: str | None = typer.Option(None, "--not-before", help="Grant start."),
    revoke_kind: bool = typer.Option(False, "--revoke", help="Sign a revocation instead."),
    deadline: str = typer.Option(
        "1h", "--deadline", help="Last time a relayer may submit it (duration or ISO date)."
    ),
    patient: str | None = typer.Option(
        None,
        "--patient",
        help="The patient, when no key is given (writes unsigned typed data for a wallet).",
    ),
    unsigned: bool = typer.Option(
        False, "--unsigned", help="Do not sign even if a key is configured."
    ),
    rpc_url: RpcUrlOpt = None,
    manifest: ManifestOpt = None,
    keystore: KeystoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write an EIP-712 consent for a wallet to sign (or signed with your keystore) to relay."""
    ws = Workspace(rpc_url=rpc_url, manifest=manifest, keystore=keystore, config=config)
    scope = _scope(study_key, all_studies)
    target = address(grantee, "--grantee")
    if unsigned and patient is None:
        raise UsageProblem("--unsigned needs --patient ADDRESS (whose consent it is)")
    key = None if unsigned or patient is not None else ws.signer()
    owner = key.address if key is not None else address(str(patient), "--patient")
    now = _chain_now(ws)
    due = parse_when(deadline, now, "--deadline")
    client = ConsentClient(ws.suite)
    if revoke_kind:
        signed = client.sign_revoke(owner, target, scope, deadline=due, key=key)
    else:
        start, end = _window(ws, not_before, expires)
        signed = client.sign_grant(
            owner,
            target,
            scope,
            _purposes(purpose),
            identified=identified,
            not_before=start,
            expires_at=end,
            deadline=due,
            key=key,
        )
    out.write_text(signed.to_json() + "\n", encoding="utf-8")
    state = "signed" if signed.signature else "unsigned (sign it with eth_signTypedData_v4)"
    out_console.print(
        f"wrote {state} {signed.kind} for patient {owner} (nonce {signed.nonce}, "
        f"relay before {when(signed.deadline)}) to [bold]{out}[/]"
    )


@app.command("relay")
def relay(
    file: Path = typer.Argument(..., help="A signed consent JSON from `consent sign`."),
    signature: str | None = typer.Option(
        None, "--signature", help="Attach a wallet's 0x signature to an unsigned file."
    ),
    rpc_url: RpcUrlOpt = None,
    manifest: ManifestOpt = None,
    keystore: KeystoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Submit a signed consent; the relayer (your key) pays the gas, the patient pays nothing."""
    ws = Workspace(rpc_url=rpc_url, manifest=manifest, keystore=keystore, config=config)
    signed = SignedConsent.from_json(file.read_text(encoding="utf-8"))
    if signature is not None:
        signed = signed.with_signature(signature)
    if signed.signature is None:
        raise InvalidSignatureError(f"{file} is not signed: pass --signature 0x... from the wallet")
    client = ConsentClient(ws.suite, ws.sender())
    receipt = client.relay_grant(signed) if signed.kind == "grant" else client.relay_revoke(signed)
    out_console.print(
        f"[green]relayed[/] {signed.kind} of patient {signed.patient} in tx {receipt.tx_hash} "
        f"(gas {receipt.gas_used:,}, paid by {receipt.sender})"
    )
