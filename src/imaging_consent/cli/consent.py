"""``imaging-consent consent``: what a patient does with their own key (or a relayer's)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from imaging_consent.cli.common import (
    UsageProblem,
    Workspace,
    address,
    option_group,
    out_console,
    parse_study_key,
    parse_when,
    with_workspace,
)
from imaging_consent.cli.tables import grants_table, scope_label, short, when
from imaging_consent.consent import ALL_STUDIES, ConsentClient, Purpose, SignedConsent
from imaging_consent.consent.relay import save_signed_consent
from imaging_consent.errors import InvalidSignatureError

__all__ = ["app"]

app = typer.Typer(
    name="consent",
    help="Grant, revoke, sign and list consent (patients).",
    no_args_is_help=True,
)

StudyKeyOpt = Annotated[
    str | None,
    typer.Option("--study-key", help="One study, by its 0x study key (from `site register`)."),
]
AllStudiesOpt = Annotated[bool, typer.Option("--all-studies", help="All of the patient's studies.")]
GranteeOpt = Annotated[str, typer.Option("--grantee", help="The account given (or losing) access.")]
PurposesOpt = Annotated[
    list[str] | None,
    typer.Option("--purpose", help="Purpose of use (TREAT, ETREAT, HRESCH, ...). Repeatable."),
]
ExpiresOpt = Annotated[
    str | None,
    typer.Option("--expires", help="When it ends: a duration (30d, 12h) or an ISO date."),
]
NotBeforeOpt = Annotated[
    str | None,
    typer.Option("--not-before", help="When it starts: a duration from now or an ISO date."),
]
IdentifiedOpt = Annotated[
    bool,
    typer.Option(
        "--identified/--deidentified",
        help="Allow identified data, or de-identified only (the default).",
    ),
]


def _scope(study_key: str | None, all_studies: bool) -> bytes:
    if (study_key is None) == (not all_studies):
        raise UsageProblem("give exactly one of --study-key KEY or --all-studies")
    return ALL_STUDIES if study_key is None else parse_study_key(study_key)


#: Gives a command ``--study-key`` and ``--all-studies``, as a ``scope`` parameter.
with_scope = option_group(
    "scope", _scope, {"study_key": (StudyKeyOpt, None), "all_studies": (AllStudiesOpt, False)}
)


def _chain_now(ws: Workspace) -> int:
    return int(ws.session.w3.eth.get_block("latest")["timestamp"])


def _window(ws: Workspace, not_before: str | None, expires: str | None) -> tuple[int, int]:
    now = _chain_now(ws) if (not_before or expires) else 0
    start = parse_when(not_before, now, "--not-before") if not_before else 0
    end = parse_when(expires, max(start, now), "--expires") if expires else 0
    return start, end


def _purposes(values: list[str] | None) -> list[Purpose]:
    if not values:
        raise UsageProblem("give at least one --purpose (e.g. --purpose TREAT)")
    return [Purpose.parse(v) for v in values]


@app.command("grant")
@with_workspace()
@with_scope
def grant(
    ws: Workspace,
    scope: bytes,
    grantee: GranteeOpt,
    purpose: PurposesOpt = None,
    identified: IdentifiedOpt = False,
    expires: ExpiresOpt = None,
    not_before: NotBeforeOpt = None,
) -> None:
    """Grant (or replace) access to your studies; you sign and pay the gas."""
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
@with_workspace()
@with_scope
def revoke(
    ws: Workspace,
    scope: bytes,
    grantee: GranteeOpt,
) -> None:
    """Revoke a grant; it stops counting in the very next block."""
    target = address(grantee, "--grantee")
    receipt = ConsentClient(ws.suite, ws.sender()).revoke(target, scope)
    out_console.print(
        f"[yellow]revoked[/] the grant on {scope_label(scope)} to {target} "
        f"in tx {receipt.tx_hash} (gas {receipt.gas_used:,})"
    )


@app.command("delegate")
@with_workspace()
def delegate(
    ws: Workspace,
    account: Annotated[str, typer.Argument(help="The guardian / delegate's address.")],
    remove: Annotated[bool, typer.Option("--remove", help="Remove the delegate instead.")] = False,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="When the delegation ends (e.g. 90d, or an ISO date); required to appoint. "
            "Every grant the delegate makes ends with it.",
        ),
    ] = None,
    study_key: Annotated[
        str | None,
        typer.Option("--study-key", help="Limit the delegation to one study (default: all)."),
    ] = None,
) -> None:
    """Appoint (or remove) a delegate who may grant and revoke for you, until a date."""
    target = address(account)
    client = ConsentClient(ws.suite, ws.sender())
    if remove:
        receipt = client.remove_delegate(target)
        out_console.print(
            f"removed delegate {target}; every grant it made has stopped (tx {receipt.tx_hash})"
        )
        return
    if expires is None:
        raise UsageProblem("appointing a delegate needs --expires (a delegation always ends)")
    scope = None if study_key is None else parse_study_key(study_key)
    end = parse_when(expires, _chain_now(ws), "--expires")
    receipt = client.set_delegate(target, expires_at=end, scope=scope)
    out_console.print(
        f"appointed delegate {target} for {scope_label(scope or ALL_STUDIES)} until "
        f"{when(end)} in tx {receipt.tx_hash}"
    )


@app.command("list")
@with_workspace(signs=False)
def list_grants(
    ws: Workspace,
    patient: Annotated[
        str | None, typer.Option("--patient", help="Grants made by this patient.")
    ] = None,
    grantee: Annotated[
        str | None, typer.Option("--grantee", help="Grants made to this account.")
    ] = None,
    history: Annotated[
        bool, typer.Option("--history", help="Also list every consent event.")
    ] = False,
) -> None:
    """List current grants (from the chain's events), by patient and/or grantee."""
    if patient is None and grantee is None:
        raise UsageProblem("give --patient ADDRESS and/or --grantee ADDRESS")
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
@with_workspace()
@with_scope
def sign(
    ws: Workspace,
    scope: bytes,
    grantee: GranteeOpt,
    out: Annotated[Path, typer.Option("--out", help="Where to write the EIP-712 JSON.")],
    purpose: PurposesOpt = None,
    identified: IdentifiedOpt = False,
    expires: ExpiresOpt = None,
    not_before: NotBeforeOpt = None,
    revoke_kind: Annotated[
        bool, typer.Option("--revoke", help="Sign a revocation instead (without --purpose).")
    ] = False,
    deadline: Annotated[
        str,
        typer.Option(
            "--deadline", help="Last time a relayer may submit it (duration or ISO date)."
        ),
    ] = "1h",
    patient: Annotated[
        str | None,
        typer.Option(
            "--patient",
            help="The patient, when no key is given (writes unsigned typed data for a wallet).",
        ),
    ] = None,
    unsigned: Annotated[
        bool, typer.Option("--unsigned", help="Do not sign even if a key is configured.")
    ] = False,
) -> None:
    """Write an EIP-712 consent for a wallet to sign (or signed with your keystore) to relay.

    The file is a bearer credential until its deadline: it is written readable by you only
    (mode 0600).
    """
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
    save_signed_consent(signed, out)
    state = "signed" if signed.signature else "unsigned (sign it with eth_signTypedData_v4)"
    out_console.print(
        f"wrote {state} {signed.kind} for patient {owner} (issued {signed.issued_at}, "
        f"relay before {when(signed.deadline)}) to [bold]{out}[/]"
    )


@app.command("relay")
@with_workspace()
def relay(
    ws: Workspace,
    file: Annotated[Path, typer.Argument(help="A signed consent JSON from `consent sign`.")],
    signature: Annotated[
        str | None,
        typer.Option("--signature", help="Attach a wallet's 0x signature to an unsigned file."),
    ] = None,
) -> None:
    """Submit a signed consent; the relayer (your key) pays the gas, the patient pays nothing."""
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
