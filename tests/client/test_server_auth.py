"""Sign-In with Ethereum and the service's tokens, without a server (on a real Anvil chain)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from imaging_consent.chain import LocalChain
from imaging_consent.errors import AuthenticationError
from imaging_consent.server import ServerSettings, SiweAuth
from imaging_consent.server.auth import NonceStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from siwe.siwe import ISO8601Datetime, SiweMessage

URL = "https://gw.example.org"


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalChain]:
    with LocalChain("anvil", accounts=2) as local:
        yield local


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(tz=timezone.utc).timestamp()

    def __call__(self) -> float:
        return self.now


def _auth(chain: LocalChain, tmp_path: Path, clock: Clock, **kwargs: int) -> SiweAuth:
    settings = ServerSettings(public_url=URL, work_dir=tmp_path, **kwargs)
    return SiweAuth(settings, chain.session, clock=clock)


def _signed(auth: SiweAuth, who: LocalAccount, clock: Clock, **fields: object) -> tuple[str, str]:
    nonce, _ = auth.nonces.issue()
    values: dict[str, object] = {
        "domain": "gw.example.org",
        "address": who.address,
        "uri": f"{URL}/login",
        "version": "1",
        "chain_id": 31337,
        "issued_at": ISO8601Datetime.from_datetime(datetime.fromtimestamp(clock.now, timezone.utc)),
        "nonce": nonce,
    } | fields
    text = SiweMessage(**values).prepare_message()
    signature = who.sign_message(encode_defunct(text=text)).signature
    return text, "0x" + bytes(signature).hex()


def test_nonces_are_single_use_expire_and_are_bounded() -> None:
    clock = Clock()
    store = NonceStore(lifetime=60, limit=2, clock=clock)
    first, _ = store.issue()
    assert store.consume(first) is not None and store.consume(first) is None
    old, _ = store.issue()
    clock.now += 61
    assert store.consume(old) is None
    a, _ = store.issue()
    b, _ = store.issue()
    c, _ = store.issue()  # the oldest pending one goes
    assert store.consume(a) is None and store.consume(b) and store.consume(c)


def test_token_bound_to_address_chain_and_domain(chain: LocalChain, tmp_path: Path) -> None:
    clock, who = Clock(), chain.accounts[0]
    auth = _auth(chain, tmp_path, clock, token_lifetime=600)
    token = auth.login(*_signed(auth, who, clock))
    claims = jwt.decode(token.token, options={"verify_signature": False})

    assert auth.principal(token.token).address == who.address
    assert claims["aud"] == "gw.example.org" and claims["iss"] == URL
    assert claims["chain_id"] == 31337 and token.expires_in == 600
    other = _auth(chain, tmp_path, clock)  # another server (its own secret)
    with pytest.raises(AuthenticationError):
        other.principal(token.token)
    clock.now += 600
    with pytest.raises(AuthenticationError, match="expired"):
        auth.principal(token.token)


def test_token_never_outlives_the_message(chain: LocalChain, tmp_path: Path) -> None:
    clock, who = Clock(), chain.accounts[0]
    auth = _auth(chain, tmp_path, clock)
    until = datetime.fromtimestamp(clock.now + 120, timezone.utc)
    token = auth.login(
        *_signed(auth, who, clock, expiration_time=ISO8601Datetime.from_datetime(until))
    )
    assert token.expires_in == 120


@pytest.mark.parametrize(
    ("fields", "shift", "match"),
    [
        ({"not_before": "future"}, 0, "not valid yet"),
        ({"issued_at": "future"}, 0, "Issued At"),
        ({"expiration_time": "past"}, 0, "expired"),
        ({}, 301, "nonce"),  # the nonce expired before it was used
        ({"scheme": "http"}, 0, "another domain"),
        ({"uri": "https://gw.example.org.evil.example/"}, 0, "URI"),
    ],
)
def test_login_refusals(
    chain: LocalChain, tmp_path: Path, fields: dict[str, str], shift: int, match: str
) -> None:
    clock, who = Clock(), chain.accounts[0]
    auth = _auth(chain, tmp_path, clock)
    times = {
        "future": ISO8601Datetime.from_datetime(
            datetime.fromtimestamp(clock.now, timezone.utc) + timedelta(hours=1)
        ),
        "past": ISO8601Datetime.from_datetime(
            datetime.fromtimestamp(clock.now, timezone.utc) - timedelta(seconds=1)
        ),
    }
    values = {k: times.get(v, v) for k, v in fields.items()}
    text, signature = _signed(auth, who, clock, **values)
    clock.now += shift
    with pytest.raises(AuthenticationError, match=match):
        auth.login(text, signature)


def test_malformed_signature_is_401_not_503(chain: LocalChain, tmp_path: Path) -> None:
    clock, who = Clock(), chain.accounts[0]
    auth = _auth(chain, tmp_path, clock)
    text, _ = _signed(auth, who, clock)
    with pytest.raises(AuthenticationError, match="hex"):
        auth.login(text, "0xnothex")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token_lifetime": 901},
        {"token_lifetime": 0},
        {"allowed_origins": ("*",)},
        {"public_url": "ftp://x"},
        {"public_url": "https://x/path"},
        {"flush_interval": 0},
    ],
)
def test_settings_refuse_unsafe_values(tmp_path: Path, kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {"public_url": URL, "work_dir": tmp_path} | kwargs
    with pytest.raises(ValueError):
        ServerSettings(**values)  # type: ignore[arg-type]
