"""Custom-error decoding into typed exceptions."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak
from web3 import Web3

from imaging_consent import errors
from imaging_consent.contracts import decode_revert


def _revert(signature: str, types: list[str], values: list[object]) -> bytes:
    return keccak(text=signature)[:4] + encode(types, values)


def test_decode_revert_expired_signature_is_typed() -> None:
    data = _revert("ConsentRegistryExpiredSignature(uint256)", ["uint256"], [1_700_000_000])

    exc = decode_revert(data)

    assert isinstance(exc, errors.SignatureExpiredError)
    assert isinstance(exc, errors.ConsentError)
    assert isinstance(exc, ValueError)
    assert exc.error_args == {"deadline": 1_700_000_000}
    assert "2023-11-14T22:13:20+00:00" in str(exc)


def test_decode_revert_hex_string_and_missing_role() -> None:
    account = "0x" + "ab" * 20
    role = keccak(text="SITE_ROLE")
    data = _revert(
        "AccessControlUnauthorizedAccount(address,bytes32)", ["address", "bytes32"], [account, role]
    )

    exc = decode_revert("0x" + data.hex())

    assert isinstance(exc, errors.MissingRoleError)
    assert isinstance(exc, PermissionError)
    assert exc.error_name == "AccessControlUnauthorizedAccount"
    assert str(exc) == f"{Web3.to_checksum_address(account)} lacks SITE_ROLE"
    assert exc.error_args["account"] == Web3.to_checksum_address(account)
    signature, types = "AccessControlUnauthorizedAccount(address,bytes32)", ["address", "bytes32"]
    admin = decode_revert(_revert(signature, types, [account, bytes(32)]))
    assert str(admin).endswith("lacks DEFAULT_ADMIN_ROLE")
    # A role the suite does not define is still shown, as its id.
    other = keccak(text="OTHER_ROLE")
    unknown = decode_revert(_revert(signature, types, [account, other]))
    assert str(unknown).endswith(f"lacks 0x{other.hex()}")


def test_decode_revert_unknown_selector_is_generic() -> None:
    exc = decode_revert(b"\xde\xad\xbe\xef")

    assert type(exc) is errors.ContractRevertedError
    assert "0xdeadbeef" in str(exc)
