"""``imaging-consent consent``: what a patient (or their delegate) does with consent.

Every time given as a duration (``--expires 7d``) counts from this machine's clock, checked
against the chain's latest block time first (:func:`_clock`). Every address a grant, a
revocation or a delegation is *given to* must carry its EIP-55 checksum unless
``--accept-unchecksummed`` is passed: a typo in an all-lowercase address cannot be caught.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_typing import ChecksumAddress
from rich.table import Table

from imaging_consent.cli.common import (
    UNCHECKED_FLAG,
    AcceptUncheckedOpt,
    JsonOpt,
    UsageProblem,
    Workspace,
    address,
    err_console,
    iso_utc,
    option_group,
    out_console,
    parse_study_key,
    parse_when,
    print_json,
    with_workspace,
)
from imaging_consent.cli.tables import (
    grant_status,
    grant_window,
    grants_table,
    record_blocks,
    scope_label,
)
from imaging_consent.consent import (
    ALL_STUDIES,
    ConsentClient,
    ConsentEvent,
    Grant,
    Purpose,
    SignedConsent,
)
from imaging_consent.consent.inputs import parse_grantee
from imaging_consent.consent.relay import save_signed_consent
from imaging_consent.errors import (
    ClockMismatchError,
    InvalidGrantError,
    InvalidSignatureError,
    NotDelegateError,
    UnknownPurposeError,
)

__all__ = ["CHAIN_AHEAD_LIMIT", "CHAIN_BEHIND_WARNING", "app"]

app = typer.Typer(
    name="consent",
    help="Grant, revoke, check, sign and list consent (patients and their delegates).",
    no_args_is_help=True,
)

#: Seconds the chain's latest block may be ahead of this machine's clock before a duration
#: (``--expires 7d``) is refused: one of the two clocks is wrong, and "7 days from now" would
#: mean different things to this command and to the chain.
CHAIN_AHEAD_LIMIT = 5 * 60
#: Seconds the latest block may lag this machine's clock before a warning: an idle local chain,
#: or a node that is not in sync (whose answers are old).
CHAIN_BEHIND_WARNING = 24 * 3600

_UNCHECKED = UNCHECKED_FLAG
_NARROW = 100  # below this many columns, tables print one block per record

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
    typer.Option("--expires", help="When it ends: a duration from now (30d, 12h) or an ISO date."),
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
ForOpt = Annotated[
    str | None,
    typer.Option(
        "--for", help="Act as the delegate (guardian) of this patient, with your own key."
    ),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Replace an existing grant without asking.")
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force", help="Grant on a study key under which no study of the patient is registered."
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


# --- times ------------------------------------------------------------------------------------


def _chain_now(ws: Workspace) -> int:
    return int(ws.session.w3.eth.get_block("latest")["timestamp"])


def _checked_wall_clock(ws: Workspace) -> int:
    """This machine's clock, once checked against the chain's latest block time.

    Raises:
        ClockMismatchError: If the chain's latest block is ahead of this clock by more than
            :data:`CHAIN_AHEAD_LIMIT` (one of the two clocks is wrong).
    """
    wall, chain = int(time.time()), _chain_now(ws)
    if chain - wall > CHAIN_AHEAD_LIMIT:
        raise ClockMismatchError(
            f"the chain's latest block time {iso_utc(chain)} is ahead of this machine's clock "
            f"{iso_utc(wall)}: a duration such as 7d would not mean the same to the chain; "
            "fix this machine's clock, or give ISO dates"
        )
    if wall - chain > CHAIN_BEHIND_WARNING:
        err_console.print(
            f"[yellow]warning:[/] the chain's latest block is from {iso_utc(chain)}, long before "
            f"this machine's clock ({iso_utc(wall)}): an idle chain, or a node that is not in "
            "sync; durations count from this machine's clock"
        )
    return wall


def _clock(ws: Workspace) -> Callable[[], int]:
    """Now, for durations: this machine's clock, checked against the chain once, when needed."""
    return functools.cache(functools.partial(_checked_wall_clock, ws))


def _window(ws: Workspace, not_before: str | None, expires: str | None) -> tuple[int, int]:
    """A grant's ``(not_before, expires_at)``; durations count from now, never from each other.

    Raises:
        UsageProblem: If a time is malformed, the end is in the past or not after the start.
    """
    now = _clock(ws)
    start = parse_when(not_before, now, "--not-before") if not_before else 0
    end = parse_when(expires, now, "--expires") if expires else 0
    if end and end <= time.time():
        raise UsageProblem(f"--expires {iso_utc(end)} is in the past")
    if end and end <= start:
        raise UsageProblem(
            f"--expires {iso_utc(end)} is not after --not-before {iso_utc(start)} (a duration "
            "such as 7d counts from now, not from --not-before)"
        )
    return start, end


def _purposes(values: list[str] | None) -> list[Purpose]:
    if not values:
        raise UsageProblem("give at least one --purpose (e.g. --purpose TREAT)")
    try:
        return [Purpose.parse(v) for v in values]
    except UnknownPurposeError as exc:
        raise UnknownPurposeError(f"--purpose: {exc}") from None


# --- addresses --------------------------------------------------------------------------------


def _target(value: str, what: str, accept_unchecksummed: bool, patient: str | None = None) -> str:
    """The account a grant, revocation or delegation is given to, checked for typos.

    Raises:
        UsageProblem: If malformed, or without a checksum and not accepted (exit 2).
        InvalidGrantError: If it is the zero address or ``patient`` itself.
    """
    target = address(value, what)
    parse_grantee(target, patient)  # zero or oneself: wrong whatever its case
    return address(value, what, checksum_flag=None if accept_unchecksummed else _UNCHECKED)


def _acting(ws: Workspace, for_patient: str | None) -> tuple[ChecksumAddress, bool]:
    """Whose consent the sender changes, and whether as their delegate."""
    if for_patient is None:
        return ws.signer().address, False
    return address(for_patient, "--for"), True


# --- JSON documents ---------------------------------------------------------------------------


def _time_or_none(timestamp: int) -> str | None:
    return iso_utc(timestamp) if timestamp else None


def _terms_doc(
    purposes: frozenset[Purpose], identified: bool, start: int, end: int
) -> dict[str, Any]:
    return {
        "purposes": [p.name for p in sorted(purposes, key=lambda p: p.value)],
        "identified": identified,
        "not_before": _time_or_none(start),
        "expires_at": _time_or_none(end),
    }


def _grant_doc(grant: Grant, now: int) -> dict[str, Any]:
    return {
        "patient": grant.patient,
        "grantee": grant.grantee,
        "scope": "0x" + grant.scope.hex(),
        "all_studies": grant.all_studies,
        **_terms_doc(grant.purposes, grant.identified, grant.not_before, grant.expires_at),
        "status": grant_status(grant, now).replace(" ", "_"),
    }


def _event_doc(event: ConsentEvent) -> dict[str, Any]:
    return {
        "event": event.label.replace(" ", "_"),
        "timestamp": iso_utc(event.timestamp),
        "patient": event.patient,
        "grantee": event.grantee,
        "scope": "0x" + event.scope.hex(),
        **_terms_doc(event.purposes, event.identified, event.not_before, event.expires_at),
        "via": event.via,
        "actor": event.actor,
        "block_number": event.block_number,
        "tx_hash": event.tx_hash,
    }


def _terms_text(purposes: frozenset[Purpose], identified: bool, start: int, end: int) -> str:
    names = ", ".join(p.name for p in sorted(purposes, key=lambda p: p.value))
    data = "identified" if identified else "de-identified"
    return f"{names} ({data}), {grant_window(start, end)}"


# --- grant ------------------------------------------------------------------------------------


def _ask_to_replace(old: Grant, new_text: str, yes: bool) -> None:
    """Say what a grant replaces; go on if ``--yes`` or the user agrees on a terminal.

    Raises:
        InvalidGrantError: Off a terminal without ``--yes``.
        typer.Abort: If the user declines.
    """
    old_text = _terms_text(old.purposes, old.identified, old.not_before, old.expires_at)
    if yes:
        err_console.print(f"replacing the grant {old_text} with {new_text}")
        return
    if not sys.stdin.isatty():
        raise InvalidGrantError(
            f"this grant would replace the existing one ({old_text}) with {new_text}; "
            "pass --yes to replace it"
        )
    err_console.print(f"This replaces the existing grant\n  {old_text}\nwith\n  {new_text}")
    if not typer.confirm("Replace it?", default=False, err=True):
        raise typer.Abort()


def _check_registered(client: ConsentClient, patient: str, scope: bytes, force: bool) -> None:
    """Refuse a study key under which no site has registered a study of ``patient``.

    Raises:
        InvalidGrantError: If none has, and not ``force``.
    """
    if force or scope == ALL_STUDIES or client.registered_sites(patient, scope):
        return
    raise InvalidGrantError(
        "no site has registered a study of this patient under the --study-key given (a "
        "mistyped key, or one not registered yet: `site register` prints the keys); pass "
        "--force to grant on it anyway"
    )


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
    for_patient: ForOpt = None,
    yes: YesOpt = False,
    force: ForceOpt = False,
    accept_unchecksummed: AcceptUncheckedOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Grant (or replace) access to your studies, or as a delegate with --for PATIENT.

    A grant that would replace an existing one says what it replaces and asks first (--yes
    replaces without asking; off a terminal --yes is required). An identical grant sends
    nothing. A --study-key under which no study of the patient is registered is refused
    unless --force.
    """
    purposes = _purposes(purpose)
    patient, delegated = _acting(ws, for_patient)
    target = _target(grantee, "--grantee", accept_unchecksummed, patient)
    start, end = _window(ws, not_before, expires)
    sender = ws.sender()
    client = ConsentClient(ws.suite, sender)
    if delegated and end == 0:  # a delegate's grant ends with the delegation
        delegation = ws.suite.consent.delegation(patient, sender.address)
        if delegation is None:
            raise NotDelegateError("you are not a delegate of this patient (or it has ended)")
        end = delegation.expires_at
    _check_registered(client, patient, scope, force)
    wanted = frozenset(purposes)
    new_text = _terms_text(wanted, identified, start, end)
    old = client.get_grant(patient, target, scope)
    document: dict[str, Any] = {
        "patient": patient,
        "grantee": target,
        "scope": "0x" + scope.hex(),
        "all_studies": scope == ALL_STUDIES,
        **_terms_doc(wanted, identified, start, end),
        "as_delegate": delegated,
        "replaced": None,
        "tx_hash": None,
        "gas_used": None,
    }
    if old is not None and (old.purposes, old.identified, old.not_before, old.expires_at) == (
        wanted,
        identified,
        start,
        end,
    ):
        if json_out:
            print_json({**document, "result": "unchanged"})
        else:
            out_console.print(
                f"unchanged: the same grant is already in place ({new_text}); nothing sent"
            )
        return
    if old is not None:
        _ask_to_replace(old, new_text, yes)
        document["replaced"] = _terms_doc(
            old.purposes, old.identified, old.not_before, old.expires_at
        )
    if delegated:
        receipt = client.grant_for(
            patient,
            target,
            scope,
            purposes,
            identified=identified,
            not_before=start,
            expires_at=end,
        )
    else:
        receipt = client.grant(
            target, scope, purposes, identified=identified, not_before=start, expires_at=end
        )
    if json_out:
        print_json(
            {
                **document,
                "result": "replaced" if old else "granted",
                "tx_hash": receipt.tx_hash,
                "gas_used": receipt.gas_used,
            }
        )
        return
    out_console.print(
        f"[green]granted[/] {', '.join(p.name for p in purposes)} "
        f"({'identified' if identified else 'de-identified'}) on {scope_label(scope)} "
        f"to {target}{f' until {iso_utc(end)}' if end else ''}"
        f"{' for the patient, as their delegate' if delegated else ''}"
        f"{' (replacing the previous grant)' if old else ''} "
        f"in tx {receipt.tx_hash} (gas {receipt.gas_used:,})"
    )


@app.command("revoke")
@with_workspace()
@with_scope
def revoke(
    ws: Workspace,
    scope: bytes,
    grantee: GranteeOpt,
    for_patient: ForOpt = None,
    accept_unchecksummed: AcceptUncheckedOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Revoke a grant (yours, or as a delegate with --for PATIENT); it stops counting in the
    very next block."""
    patient, delegated = _acting(ws, for_patient)
    target = _target(grantee, "--grantee", accept_unchecksummed)
    client = ConsentClient(ws.suite, ws.sender())
    had = client.get_grant(patient, target, scope) is not None
    if delegated:
        receipt = client.revoke_for(patient, target, scope)
    else:
        receipt = client.revoke(target, scope)
    if json_out:
        print_json(
            {
                "result": "revoked" if had else "no_grant",
                "patient": patient,
                "grantee": target,
                "scope": "0x" + scope.hex(),
                "all_studies": scope == ALL_STUDIES,
                "as_delegate": delegated,
                "tx_hash": receipt.tx_hash,
                "gas_used": receipt.gas_used,
            }
        )
        return
    what = "the grant" if had else "no grant was in place; outstanding signatures for the grant"
    out_console.print(
        f"[yellow]revoked[/] {what} on {scope_label(scope)} to {target}"
        f"{' for the patient, as their delegate' if delegated else ''} "
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
            help="When the delegation ends (a duration from now such as 90d, or an ISO date); "
            "required to appoint. Every grant the delegate makes ends with it.",
        ),
    ] = None,
    study_key: Annotated[
        str | None,
        typer.Option("--study-key", help="Limit the delegation to one study (default: all)."),
    ] = None,
    accept_unchecksummed: AcceptUncheckedOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Appoint (or remove) a delegate who may grant and revoke for you, until a date."""
    target = _target(account, "delegate", accept_unchecksummed)
    client = ConsentClient(ws.suite, ws.sender())
    if remove:
        receipt = client.remove_delegate(target)
        if json_out:
            print_json(
                {
                    "result": "delegate_removed",
                    "delegate": target,
                    "tx_hash": receipt.tx_hash,
                    "gas_used": receipt.gas_used,
                }
            )
            return
        out_console.print(
            f"removed delegate {target}; every grant it made has stopped (tx {receipt.tx_hash})"
        )
        return
    if expires is None:
        raise UsageProblem("appointing a delegate needs --expires (a delegation always ends)")
    scope = None if study_key is None else parse_study_key(study_key)
    end = parse_when(expires, _clock(ws), "--expires")
    if end <= time.time():
        raise UsageProblem(f"--expires {iso_utc(end)} is in the past")
    receipt = client.set_delegate(target, expires_at=end, scope=scope)
    if json_out:
        print_json(
            {
                "result": "delegate_appointed",
                "delegate": target,
                "scope": "0x" + (scope or ALL_STUDIES).hex(),
                "expires_at": iso_utc(end),
                "tx_hash": receipt.tx_hash,
                "gas_used": receipt.gas_used,
            }
        )
        return
    out_console.print(
        f"appointed delegate {target} for {scope_label(scope or ALL_STUDIES)} until "
        f"{iso_utc(end)} in tx {receipt.tx_hash}"
    )


# --- reading ----------------------------------------------------------------------------------


def _events_table(events: tuple[ConsentEvent, ...], narrow: bool) -> Table:
    records = [
        [
            ("when", iso_utc(e.timestamp)),
            ("event", e.label),
            ("by", e.acted_by),
            ("patient", e.patient),
            ("delegate" if e.kind == "delegate_set" else "grantee", e.grantee),
            ("scope", scope_label(e.scope)),
            ("tx", e.tx_hash),
        ]
        for e in events
    ]
    title = "Consent events, oldest first"
    if narrow:
        return record_blocks(title, records)
    table = Table(title=title)
    for column in ("when", "event", "by", "patient", "grantee / delegate", "scope", "tx"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(*(value for _, value in record))
    return table


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
    json_out: JsonOpt = False,
) -> None:
    """List current grants (from the chain's events), by patient and/or grantee."""
    if patient is None and grantee is None:
        raise UsageProblem("give --patient ADDRESS and/or --grantee ADDRESS")
    client = ConsentClient(ws.suite)
    now = _chain_now(ws)
    target = None if grantee is None else address(grantee, "--grantee")
    if patient is not None:
        found = client.grants_of(address(patient, "--patient"))
        grants = tuple(g for g in found.current if target is None or g.grantee == target)
    else:
        found = client.grants_to(str(target))
        grants = found.current
    if json_out:
        document: dict[str, Any] = {
            "at": iso_utc(now),
            "grants": [_grant_doc(g, now) for g in grants],
        }
        if history:
            document["events"] = [_event_doc(e) for e in found.events]
        print_json(document)
        return
    narrow = out_console.width < _NARROW
    out_console.print(grants_table(grants, now, f"Grants ({len(grants)})", narrow=narrow))
    if history:
        out_console.print(_events_table(found.events, narrow))


@app.command("check")
@with_workspace(signs=False)
@with_scope
def check(
    ws: Workspace,
    scope: bytes,
    patient: Annotated[str, typer.Option("--patient", help="The patient whose study it is.")],
    grantee: Annotated[str, typer.Option("--grantee", help="The account asking for access.")],
    purpose: Annotated[str, typer.Option("--purpose", help="The purpose of use (TREAT, ...).")],
    identified: Annotated[
        bool,
        typer.Option("--identified/--deidentified", help="Ask for identified data (default: no)."),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Say whether the chain permits access now, and why (exit 0 if it does, 1 if not)."""
    owner, target = address(patient, "--patient"), address(grantee, "--grantee")
    wanted = _purposes([purpose])[0]
    decision = ConsentClient(ws.suite).explain(
        owner, target, None if scope == ALL_STUDIES else scope, wanted, identified=identified
    )
    if json_out:
        print_json(
            {
                "permitted": decision.permitted,
                "identified": decision.identified,
                "reason": decision.reason,
                "explanation": decision.explanation,
                "patient": owner,
                "grantee": target,
                "study_key": "0x" + scope.hex(),
                "purpose": wanted.name,
                "decided_by": None if decision.scope is None else "0x" + decision.scope.hex(),
                **_terms_doc(
                    decision.purposes, decision.identified, decision.not_before, decision.expires_at
                ),
                "changed_at": _time_or_none(decision.changed_at),
                "at": iso_utc(decision.at),
            }
        )
    else:
        verdict = "[green]permitted[/]" if decision.permitted else "[red]not permitted[/]"
        out_console.print(
            f"{verdict} ({wanted.name}{', identified' if identified else ''}) at "
            f"{iso_utc(decision.at)}: {decision.explanation}"
        )
    if not decision.permitted:
        raise typer.Exit(1)


# --- signed consents --------------------------------------------------------------------------


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
            "--deadline",
            help="Last time a relayer may submit it (a duration from now, or an ISO date).",
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
    force: ForceOpt = False,
    accept_unchecksummed: AcceptUncheckedOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Write an EIP-712 consent for a wallet to sign (or signed with your keystore) to relay.

    The file is a bearer credential until its deadline: it is written readable by you only
    (mode 0600). Several may be signed before any is relayed; see `consent relay`.
    """
    if unsigned and patient is None:
        raise UsageProblem("--unsigned needs --patient ADDRESS (whose consent it is)")
    key = None if unsigned or patient is not None else ws.signer()
    owner = key.address if key is not None else address(str(patient), "--patient")
    target = _target(grantee, "--grantee", accept_unchecksummed, None if revoke_kind else owner)
    due = parse_when(deadline, _clock(ws), "--deadline")
    client = ConsentClient(ws.suite)
    if revoke_kind:
        signed = client.sign_revoke(owner, target, scope, deadline=due, key=key)
    else:
        purposes = _purposes(purpose)
        start, end = _window(ws, not_before, expires)
        _check_registered(client, owner, scope, force)
        signed = client.sign_grant(
            owner,
            target,
            scope,
            purposes,
            identified=identified,
            not_before=start,
            expires_at=end,
            deadline=due,
            key=key,
        )
    save_signed_consent(signed, out)
    if json_out:
        print_json(
            {
                "kind": signed.kind,
                "patient": owner,
                "grantee": target,
                "scope": "0x" + scope.hex(),
                "signed": signed.signature is not None,
                "issued_at": iso_utc(signed.issued_at),
                "deadline": iso_utc(signed.deadline),
                "file": str(out),
            }
        )
        return
    state = "signed" if signed.signature else "unsigned (sign it with eth_signTypedData_v4)"
    out_console.print(
        f"wrote {state} {signed.kind} for patient {owner} (issued {iso_utc(signed.issued_at)}, "
        f"relay before {iso_utc(signed.deadline)}) to [bold]{out}[/]"
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
    json_out: JsonOpt = False,
) -> None:
    """Submit a signed consent; the relayer (your key) pays the gas, the patient pays nothing.

    Signed consents may be relayed in any order: for one grant (grantee and scope) the newest
    signature wins (ties go to a revocation), so an older one arriving late changes nothing.
    """
    signed = SignedConsent.from_json(file.read_text(encoding="utf-8"))
    if signature is not None:
        signed = signed.with_signature(signature)
    if signed.signature is None:
        raise InvalidSignatureError(f"{file} is not signed: pass --signature 0x... from the wallet")
    client = ConsentClient(ws.suite, ws.sender())
    if signed.kind == "grant":
        receipt = client.relay_grant(signed)
    elif signed.kind == "revoke":
        receipt = client.relay_revoke(signed)
    else:
        receipt = client.relay_cancel(signed)
    slot = ws.suite.consent.get_grant(
        signed.patient,
        address(signed.message["grantee"], "grantee"),
        parse_study_key(signed.message["scope"]),
    )
    applied = slot.issued_at == signed.issued_at
    if json_out:
        print_json(
            {
                "kind": signed.kind,
                "patient": signed.patient,
                "applied": applied,
                "issued_at": iso_utc(signed.issued_at),
                "tx_hash": receipt.tx_hash,
                "gas_used": receipt.gas_used,
                "sent_by": receipt.sender,
            }
        )
        return
    if not applied:
        out_console.print(
            f"[yellow]superseded[/]: the grant changed after this {signed.kind} was signed "
            f"(issued {iso_utc(signed.issued_at)}), so it changed nothing (tx {receipt.tx_hash})"
        )
        return
    out_console.print(
        f"[green]relayed[/] {signed.kind} of patient {signed.patient} in tx {receipt.tx_hash} "
        f"(gas {receipt.gas_used:,}, paid by {receipt.sender})"
    )
