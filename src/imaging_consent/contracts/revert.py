"""Decode Solidity custom errors into the package's typed exceptions.

web3.py raises ``ContractCustomError`` carrying raw revert bytes. :func:`decode_revert` looks the
4-byte selector up among the custom errors of every contract in the suite (including the
OpenZeppelin errors they inherit), decodes the arguments and returns the matching exception with
a readable message. Callers never see raw revert bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_hash.auto import keccak
from web3 import Web3

from imaging_consent import errors
from imaging_consent.contracts.artifacts import SUITE, load_artifact

_Formatter = Callable[[dict[str, Any]], str]


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def _hex(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


#: The AccessControl roles of the suite, by id (``keccak256(name)``; zero for the admin role).
ROLE_NAMES: dict[bytes, str] = {bytes(32): "DEFAULT_ADMIN_ROLE"} | {
    keccak(name.encode()): name for name in ("SITE_ROLE",)
}


def role_name(role: bytes) -> str:
    """A role id's name (``SITE_ROLE``), or its 0x-hex if the suite has no such role."""
    return ROLE_NAMES.get(bytes(role), _hex(bytes(role)))


# Solidity error name -> (exception class, message). Unlisted errors become ContractRevertedError.
_KNOWN: dict[str, tuple[type[errors.ContractRevertedError], _Formatter]] = {
    "ConsentRegistryZeroGrantee": (
        errors.InvalidGrantError,
        lambda a: "the grantee must not be the zero address",
    ),
    "ConsentRegistryInvalidPurposes": (
        errors.InvalidGrantError,
        lambda a: (
            f"invalid purposes bitmask {a['purposes']:#x}: "
            "it must set at least one known PurposeOfUse bit (0-6) and no other"
        ),
    ),
    "ConsentRegistryInvalidWindow": (
        errors.InvalidGrantError,
        lambda a: (
            f"invalid validity window: expiresAt {a['expiresAt']} must be after notBefore "
            f"{a['notBefore']} and after the current block time"
        ),
    ),
    "ConsentRegistryNotDelegate": (
        errors.NotDelegateError,
        lambda a: f"{a['caller']} is not a delegate of patient {a['patient']}",
    ),
    "ConsentRegistryInvalidDelegate": (
        errors.InvalidDelegateError,
        lambda a: f"{a['delegate']} cannot be a delegate (zero address or the patient)",
    ),
    "ConsentRegistryExpiredSignature": (
        errors.SignatureExpiredError,
        lambda a: (
            f"signature expired: its deadline {a['deadline']} ({_when(a['deadline'])}) has passed"
        ),
    ),
    "ConsentRegistryInvalidSigner": (
        errors.InvalidSignatureError,
        lambda a: (
            f"signature is not valid for patient {a['patient']} "
            "(wrong signer, altered message, another chain or contract, or an already used nonce)"
        ),
    ),
    "ConsentRegistrySignatureFromFuture": (
        errors.InvalidSignatureError,
        lambda a: (
            f"the signature claims to be issued at {a['issuedAt']} ({_when(a['issuedAt'])}), "
            "after the current block time; wait for the chain to catch up or sign again"
        ),
    ),
    "ConsentRegistrySignatureLifetimeTooLong": (
        errors.InvalidSignatureError,
        lambda a: (
            f"the signature's deadline {a['deadline']} is more than 30 days after it was issued "
            f"({a['issuedAt']}); sign again with a shorter deadline"
        ),
    ),
    "ConsentRegistrySupersededSignature": (
        errors.SupersededSignatureError,
        lambda a: (
            f"the signature (issued {_when(a['issuedAt'])}) is superseded: the grant changed at "
            f"{_when(a['current'])} or later, or the signature was used or cancelled"
        ),
    ),
    "ConsentRegistrySelfGrant": (
        errors.InvalidGrantError,
        lambda a: f"delegate {a['delegate']} may not grant access to itself",
    ),
    "ConsentRegistryOutsideDelegation": (
        errors.NotDelegateError,
        lambda a: (
            f"the grant for scope {_hex(a['scope'])} ending {a['expiresAt']} is outside the "
            f"delegation (which ends {a['delegationExpiresAt']}); a delegate's grant must end "
            "no later than the delegation and stay within its scope"
        ),
    ),
    "ConsentRegistryInvalidStudyKey": (
        errors.InvalidGrantError,
        lambda a: "an exclusion needs a study key, not the all-studies scope",
    ),
    "StudyRegistryUnknownStudy": (
        errors.StudyNotRegisteredError,
        lambda a: f"site {a['site']} has no study registered under study key {_hex(a['studyKey'])}",
    ),
    "StudyRegistryStudyExists": (
        errors.StudyExistsError,
        lambda a: f"site {a['site']} already registered study key {_hex(a['studyKey'])}",
    ),
    "AccessLogNotSite": (
        errors.MissingRoleError,
        lambda a: f"{a['caller']} is not a site (it lacks StudyRegistry's SITE_ROLE)",
    ),
    "AccessLogNotGateway": (
        errors.NotGatewayError,
        lambda a: f"{a['caller']} is not a gateway appointed by any site",
    ),
    "AccessLogGatewayOfOtherSite": (
        errors.NotGatewayError,
        lambda a: (
            f"gateway {a['gateway']} belongs to site {a['site']}; only that site may change it"
        ),
    ),
    "AccessLogNotEmergency": (
        errors.NotEmergencyError,
        lambda a: f"{a['clinician']} is not an emergency clinician of site {a['site']}",
    ),
    "AccessLogExpiredSignature": (
        errors.SignatureExpiredError,
        lambda a: f"the break-glass signature expired at {a['deadline']} ({_when(a['deadline'])})",
    ),
    "AccessLogInvalidSigner": (
        errors.InvalidSignatureError,
        lambda a: f"the break-glass request is not signed by clinician {a['clinician']}",
    ),
    "AccessLogRequestUsed": (
        errors.InvalidSignatureError,
        lambda a: f"break-glass request {_hex(a['requestId'])} was already recorded (replay)",
    ),
    "AccessLogBreakGlassLimit": (
        errors.BreakGlassLimitError,
        lambda a: (
            f"{a['clinician']} reached the break-glass limit of this site until "
            f"{_when(a['windowEndsAt'])}"
        ),
    ),
    "AccessControlUnauthorizedAccount": (
        errors.MissingRoleError,
        lambda a: f"{a['account']} lacks {role_name(a['neededRole'])}",
    ),
}


@dataclass(frozen=True, slots=True)
class _ErrorAbi:
    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]


@cache
def _error_table() -> dict[bytes, _ErrorAbi]:
    table: dict[bytes, _ErrorAbi] = {}
    for contract in SUITE:
        try:
            abi = load_artifact(contract).abi
        except errors.ContractError:
            continue
        for entry in abi:
            if entry.get("type") != "error":
                continue
            types = tuple(i["type"] for i in entry["inputs"])
            selector = keccak(f"{entry['name']}({','.join(types)})".encode())[:4]
            table[selector] = _ErrorAbi(
                entry["name"], tuple(i["name"] for i in entry["inputs"]), types
            )
    return table


def decode_revert(data: bytes | str) -> errors.ContractRevertedError:
    """Turn raw revert data into the matching typed exception (not raised).

    Args:
        data: The revert bytes, or their 0x-prefixed hex.

    Returns:
        An instance of the mapped exception class, or a plain ``ContractRevertedError``
        naming the error when it is not mapped, or saying the data are unknown.
    """
    raw = (
        bytes.fromhex(data[2:] if data.startswith("0x") else data)
        if isinstance(data, str)
        else data
    )
    spec = _error_table().get(raw[:4])
    if spec is None:
        return errors.ContractRevertedError(f"contract reverted with unknown data 0x{raw.hex()}")
    values = [
        Web3.to_checksum_address(v) if t == "address" else v
        for t, v in zip(spec.arg_types, abi_decode(list(spec.arg_types), raw[4:]), strict=True)
    ]
    args = dict(zip(spec.arg_names, values, strict=True))
    cls, message = _KNOWN.get(spec.name, (errors.ContractRevertedError, None))
    if message is None:
        shown = ", ".join(f"{k}={_hex(v)}" for k, v in args.items())
        text = f"{spec.name}({shown})"
    else:
        text = message(args)
    return cls(text, error_name=spec.name, error_args=args)
