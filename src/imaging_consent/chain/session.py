"""Connecting to a JSON-RPC endpoint, with the chain id checked up front.

The provider caches only answers that can never change for one endpoint (``eth_chainId``,
``net_version``, ``web3_clientVersion``), so web3.py's per-call chain-id checks cost nothing
and a contract ``.call()`` is one HTTP request. Nothing that can carry state (``eth_call``,
blocks, receipts) is ever cached: a cached consent answer could outlive its revocation.

Plain ``http://`` is accepted only on loopback (``127.0.0.0/8``, ``::1``, ``localhost``): a remote
node's answers decide releases, so anyone on the path could forge them. A remote node over
``http://`` needs ``allow_insecure_http=True`` (the CLI's ``--allow-insecure-rpc``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from web3 import Web3
from web3.exceptions import Web3Exception
from web3.providers.rpc.utils import REQUEST_RETRY_ALLOWLIST, ExceptionRetryConfiguration
from web3.types import RPCEndpoint

from imaging_consent.errors import (
    ChainUnavailableError,
    InsecureEndpointError,
    InvalidRpcUrlError,
    WrongChainError,
)
from imaging_consent.net import is_loopback_host, is_plain_http_to_remote, redact_url

__all__ = [
    "IMMUTABLE_RPC_METHODS",
    "ChainSession",
    "check_rpc_url",
    "connect",
    "is_loopback_host",
    "redact_url",
]

logger = logging.getLogger(__name__)

#: The only JSON-RPC methods whose answers are cached: they are fixed for an endpoint.
IMMUTABLE_RPC_METHODS: frozenset[RPCEndpoint] = frozenset(
    {RPCEndpoint("eth_chainId"), RPCEndpoint("net_version"), RPCEndpoint("web3_clientVersion")}
)

# Transport failures worth one more try for read-only methods.
_TRANSIENT_HTTP_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.HTTPError,
)


# web3.py's retry allow-list includes eth_sendRawTransaction (and node-side signing). A blind
# resend is not safe everywhere: Ganache 7.9.2 mines a replayed nonce-0 transaction twice.
# The transaction sender resends itself, after asking the node whether the first try arrived.
_RETRY_METHODS: tuple[str, ...] = tuple(
    method
    for method in REQUEST_RETRY_ALLOWLIST
    if method not in ("eth_sendRawTransaction", "eth_sign", "eth_signTypedData")
)


@dataclass(frozen=True, slots=True)
class ChainSession:
    """A connection to one chain through one JSON-RPC endpoint.

    Attributes:
        w3: The web3 instance (HTTP provider, immutable answers cached).
        rpc_url: The endpoint URL.
        chain_id: The chain id the endpoint reported when connecting.
    """

    w3: Web3
    rpc_url: str
    chain_id: int


def check_rpc_url(rpc_url: str, *, allow_insecure_http: bool = False) -> None:
    """Refuse a URL that is not HTTP(S), or plain HTTP to a node that is not on loopback.

    Raises:
        InvalidRpcUrlError: If the URL is not ``http://`` or ``https://``, or has no host or a
            bad port.
        InsecureEndpointError: If it is ``http://`` to a non-loopback host and
            ``allow_insecure_http`` is False.
    """
    parts = urlsplit(rpc_url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # not a number, or out of range
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        what = f"{parts.scheme}://{parts.hostname or ''}" if port_ok else "(its port is bad)"
        raise InvalidRpcUrlError(
            f"unsupported RPC URL {what}: expected http://HOST[:PORT] or https://HOST[:PORT]"
        )
    shown = redact_url(rpc_url)
    if not allow_insecure_http and is_plain_http_to_remote(rpc_url):
        raise InsecureEndpointError(
            f"refusing plain-HTTP RPC URL {shown}: a node that is not on this machine must be "
            "reached over https://, since its answers could be forged in transit; to accept it "
            "anyway, allow it explicitly (--allow-insecure-rpc, allow_insecure_rpc = true in the "
            "config, or allow_insecure_http=True)"
        )


def connect(
    rpc_url: str,
    expected_chain_id: int | None = None,
    *,
    timeout: float = 10.0,
    retries: int = 2,
    allow_insecure_http: bool = False,
) -> ChainSession:
    """Connect to a JSON-RPC endpoint over HTTP(S) and check its chain id.

    Args:
        rpc_url: ``http://`` or ``https://`` URL of the endpoint.
        expected_chain_id: If given, the chain id the endpoint must serve.
        timeout: Seconds to wait for any one HTTP request.
        retries: Attempts per read-only request on transport failures (1 means no retry).
            A read that fails them all raises; callers fail closed.
        allow_insecure_http: Accept plain ``http://`` to a node that is not on loopback.

    Returns:
        The session, with the chain id the endpoint reported.

    Raises:
        InvalidRpcUrlError: If the URL is malformed or not HTTP(S) (nothing is sent).
        ChainUnavailableError: If the endpoint cannot be reached or does not answer JSON-RPC.
        InsecureEndpointError: If the URL is plain HTTP to a non-loopback host and
            ``allow_insecure_http`` is False (nothing is sent).
        WrongChainError: If ``expected_chain_id`` is given and differs from the endpoint's.
    """
    check_rpc_url(rpc_url, allow_insecure_http=allow_insecure_http)
    shown = redact_url(rpc_url)
    provider = Web3.HTTPProvider(
        rpc_url,
        request_kwargs={"timeout": timeout},
        exception_retry_configuration=ExceptionRetryConfiguration(
            errors=_TRANSIENT_HTTP_ERRORS,
            retries=max(1, retries),
            backoff_factor=0.05,
            method_allowlist=_RETRY_METHODS,
        ),
        cache_allowed_requests=True,
        cacheable_requests=set(IMMUTABLE_RPC_METHODS),
    )
    w3 = Web3(provider)
    try:
        chain_id = int(w3.eth.chain_id)
    except (requests.RequestException, OSError, Web3Exception, ValueError) as exc:
        raise ChainUnavailableError(
            f"cannot reach JSON-RPC endpoint {shown}: {type(exc).__name__}"
        ) from exc
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise WrongChainError(
            f"endpoint {shown} serves chain id {chain_id}, expected chain id {expected_chain_id}"
        )
    logger.info("connected to %s (chain id %d)", shown, chain_id)
    return ChainSession(w3=w3, rpc_url=rpc_url, chain_id=chain_id)
