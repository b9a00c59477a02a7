"""The DICOMweb service's settings: who it is (for Sign-In with Ethereum), and its limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["MAX_TOKEN_LIFETIME", "ServerSettings"]

#: The longest an access token may live (seconds).
MAX_TOKEN_LIFETIME = 900


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """What a running service needs besides the gateway.

    Attributes:
        public_url: The service's origin as apps reach it (``https://pacs-gw.example.org``).
            A sign-in message must name its host (and port) as ``domain`` and a URI on it.
        work_dir: Where releases stream to (private, removed once sent) and where each
            request's proofs are kept for its requester.
        allowed_origins: Browser origins allowed by CORS (never ``*``).
        token_lifetime: Seconds an access token lives (at most 15 minutes).
        nonce_lifetime: Seconds a sign-in nonce stays usable (once).
        flush_interval: Seconds between anchors of the batched outbox.
        max_pending_nonces: Nonces handed out and not yet used, at most.

    Raises:
        ValueError: On a URL without scheme or host, a wildcard origin or a limit out of range.
    """

    public_url: str
    work_dir: Path
    allowed_origins: tuple[str, ...] = ()
    token_lifetime: int = MAX_TOKEN_LIFETIME
    nonce_lifetime: int = 300
    flush_interval: float = 5.0
    max_pending_nonces: int = 10_000

    def __post_init__(self) -> None:
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"public URL must be http(s)://host[:port], got {self.public_url!r}")
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError("public URL must be an origin (no path, query or fragment)")
        if not 0 < self.token_lifetime <= MAX_TOKEN_LIFETIME:
            raise ValueError(f"token lifetime must be 1 to {MAX_TOKEN_LIFETIME} seconds")
        if self.nonce_lifetime <= 0 or self.max_pending_nonces <= 0:
            raise ValueError("nonce lifetime and the pending-nonce limit must be positive")
        if self.flush_interval <= 0:
            raise ValueError("flush interval must be positive")
        for origin in self.allowed_origins:
            if "*" in origin or not urlsplit(origin).hostname:
                raise ValueError(f"allowed origins are exact origins, never wildcards: {origin!r}")

    @property
    def domain(self) -> str:
        """The authority a sign-in message must name (``host`` or ``host:port``)."""
        return urlsplit(self.public_url).netloc

    @property
    def origin(self) -> str:
        """``scheme://authority`` of the public URL."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"
