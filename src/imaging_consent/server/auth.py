"""Sign-In with Ethereum (EIP-4361) and the short-lived bearer tokens it earns.

``POST /auth/nonce`` hands out a single-use nonce that expires; ``POST /auth/login`` takes the
signed EIP-4361 message and checks, in order: the nonce (known, unused, unexpired; it is used up
by the attempt whatever its outcome), the domain, the URI's origin and the chain id against this
server, the message's times (issued not in the future nor before its nonce, not expired, already
valid), then the signature: an account key's (EIP-191), else a contract wallet's (EIP-1271,
``isValidSignature`` asked on this server's chain). Any failure is an
:class:`~imaging_consent.errors.AuthenticationError` (401).

The token is a JWT (PyJWT, HS256) with a random per-server secret: subject the address, bound to
the chain id and the server's domain (audience) and origin (issuer), living at most 15 minutes
and never past the message's own expiration. A restart invalidates every token.
"""

from __future__ import annotations

import secrets
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import jwt
from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address, to_checksum_address

from imaging_consent.chain import ChainSession
from imaging_consent.contracts.calls import fail_closed
from imaging_consent.errors import AuthenticationError
from imaging_consent.server.settings import ServerSettings

with warnings.catch_warnings():  # its grammar restates RFC 5234's core rules, identically
    warnings.simplefilter("ignore", UserWarning)
    from siwe import siwe

__all__ = ["AccessToken", "NonceStore", "Principal", "SiweAuth"]

_ALGORITHM = "HS256"
#: Seconds a message's Issued At may lie ahead of the server's clock.
_CLOCK_SKEW = 60


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for."""

    address: ChecksumAddress
    chain_id: int


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token and its lifetime in seconds."""

    token: str
    expires_in: int


class NonceStore:
    """Single-use sign-in nonces that expire; at most ``limit`` pending (the oldest go first).

    Thread-safe.
    """

    def __init__(self, lifetime: int, limit: int, clock: Callable[[], float]) -> None:
        self._lifetime = lifetime
        self._limit = limit
        self._clock = clock
        self._issued: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, float]:
        """A fresh nonce (alphanumeric, 22 characters) and when it was issued."""
        nonce, now = secrets.token_hex(11), self._clock()
        with self._lock:
            while self._issued and (
                len(self._issued) >= self._limit
                or next(iter(self._issued.values())) + self._lifetime < now
            ):
                self._issued.popitem(last=False)
            self._issued[nonce] = now
        return nonce, now

    def consume(self, nonce: str) -> float | None:
        """Use a nonce up; return when it was issued, or None if unknown, used or expired."""
        with self._lock:
            issued = self._issued.pop(nonce, None)
        if issued is None or issued + self._lifetime < self._clock():
            return None
        return issued


def _utc(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, tz=timezone.utc)


class SiweAuth:
    """Checks sign-in messages and issues and checks the tokens they earn.

    Args:
        settings: The server's identity (domain, origin) and lifetimes.
        session: The chain: its id binds messages and tokens; contract wallets are asked there.
        clock: Unix time (default ``time.time``).
    """

    def __init__(
        self,
        settings: ServerSettings,
        session: ChainSession,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._session = session
        self._clock = clock
        self._secret = secrets.token_bytes(32)
        self.nonces = NonceStore(settings.nonce_lifetime, settings.max_pending_nonces, clock)

    def login(self, message: str, signature: str) -> AccessToken:
        """Check a signed EIP-4361 message and issue a token for its address.

        Raises:
            AuthenticationError: If the message is malformed, its nonce unknown, used or
                expired, it names another domain, URI or chain, is expired or not yet valid,
                or the signature is not the address's (nor its contract wallet's).
            ChainUnavailableError: If a contract wallet must be asked and the chain cannot.
        """
        parsed = self._parse(message)
        issued = self.nonces.consume(parsed.nonce)
        if issued is None:
            raise AuthenticationError("the sign-in nonce is unknown, used or expired: ask anew")
        self._check_binding(parsed)
        now = self._clock()
        issued_at = parsed.issued_at._datetime.timestamp()
        if issued_at > now + _CLOCK_SKEW or issued_at < issued - _CLOCK_SKEW:
            raise AuthenticationError("the message's Issued At is not when its nonce was given")
        self._verify(parsed, signature, now)
        expiry = now + self._settings.token_lifetime
        if parsed.expiration_time is not None:
            expiry = min(expiry, parsed.expiration_time._datetime.timestamp())
        claims = {
            "sub": parsed.address,
            "chain_id": self._session.chain_id,
            "aud": self._settings.domain,
            "iss": self._settings.origin,
            "iat": int(now),
            "exp": int(expiry),
            "jti": secrets.token_hex(8),
        }
        token = jwt.encode(claims, self._secret, algorithm=_ALGORITHM)
        return AccessToken(token, max(int(expiry) - int(now), 0))

    def principal(self, token: str) -> Principal:
        """The address and chain a bearer token speaks for.

        Raises:
            AuthenticationError: If the token is expired, forged, malformed or for another
                server or chain.
        """
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=self._settings.domain,
                issuer=self._settings.origin,
                options={
                    "require": ["sub", "aud", "iss", "iat", "exp", "chain_id"],
                    "verify_exp": False,  # checked below, on this server's clock
                },
            )
        except jwt.InvalidTokenError:
            raise AuthenticationError("the access token is not valid for this server") from None
        if not isinstance(claims["exp"], int) or claims["exp"] <= self._clock():
            raise AuthenticationError("the access token has expired: sign in again")
        subject = claims["sub"]
        if claims["chain_id"] != self._session.chain_id or not (
            isinstance(subject, str) and is_checksum_address(subject)
        ):
            raise AuthenticationError("the access token is not valid for this server")
        return Principal(to_checksum_address(subject), self._session.chain_id)

    # --- steps ---------------------------------------------------------------------------------

    @staticmethod
    def _parse(message: str) -> siwe.SiweMessage:
        try:
            return siwe.SiweMessage.from_message(message)
        except (ValueError, TypeError, siwe.VerificationError):
            raise AuthenticationError("not an EIP-4361 sign-in message") from None

    def _check_binding(self, parsed: siwe.SiweMessage) -> None:
        settings = self._settings
        scheme = urlsplit(settings.public_url).scheme
        if parsed.domain != settings.domain or parsed.scheme not in (None, scheme):
            raise AuthenticationError(f"the message is for another domain, not {settings.domain}")
        uri = urlsplit(str(parsed.uri))
        if f"{uri.scheme}://{uri.netloc}" != settings.origin:
            raise AuthenticationError(f"the message's URI is not on {settings.origin}")
        if parsed.chain_id != self._session.chain_id:
            raise AuthenticationError(
                f"the message is for chain {parsed.chain_id}, not {self._session.chain_id}"
            )

    def _verify(self, parsed: siwe.SiweMessage, signature: str, now: float) -> None:
        sig = signature.strip().removeprefix("0x")
        try:
            bytes.fromhex(sig)
        except ValueError:
            raise AuthenticationError("the signature is not hex") from None
        sig = f"0x{sig}"
        try:
            with fail_closed(self._session):
                parsed.verify(sig, timestamp=_utc(now), provider=self._session.w3.provider)
        except siwe.ExpiredMessage:
            raise AuthenticationError("the sign-in message has expired") from None
        except siwe.NotYetValidMessage:
            raise AuthenticationError("the sign-in message is not valid yet") from None
        except (siwe.VerificationError, ValueError, TypeError):
            raise AuthenticationError(
                "the signature is not the address's, nor its contract wallet's"
            ) from None
