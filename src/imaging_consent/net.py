"""URL policy shared by everything that talks HTTP: which hosts are loopback, and redaction.

A node or server whose answers decide releases must not be reached over plain ``http://``
unless it is on this machine: anyone on the path could forge its answers. The chain layer
(JSON-RPC endpoints) and the image stores (an Orthanc server) apply the same rule, each with
its own typed error; this module holds the rule itself and imports nothing of the package.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "is_plain_http_to_remote", "redact_url"]


def redact_url(url: str) -> str:
    """Return ``url`` without credentials, query or fragment, for messages and logs.

    Hosted endpoints often carry an API key in the path or query; only scheme, host, port and
    the first path segment are kept.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    path = parts.path if parts.path.count("/") <= 1 and len(parts.path) <= 16 else "/..."
    return f"{parts.scheme}://{netloc}{path}"


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a URL's host name, without brackets) names this machine's loopback.

    True for ``localhost`` (any case, with or without the final dot), ``127.0.0.0/8``, ``::1``
    and IPv4-mapped loopback. Other names are not resolved: a name could resolve elsewhere.
    """
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def is_plain_http_to_remote(url: str) -> bool:
    """Whether ``url`` is plain ``http://`` to a host that is not this machine's loopback."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback_host(parts.hostname or "")
