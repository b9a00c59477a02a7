"""The consent gateway as a DICOMweb service: ``imaging-consent serve``.

The top layer beside :mod:`imaging_consent.cli` (the CLI imports it, never the reverse): a
fastapi app (:func:`create_app`) whose requesters sign in with Ethereum (:mod:`.auth`), search
only what consent lets them see and retrieve only through the release gate
(:mod:`.dicomweb`), with each request recorded and its proofs kept for the requester.
"""

from imaging_consent.server.app import create_app
from imaging_consent.server.auth import AccessToken, Principal, SiweAuth
from imaging_consent.server.settings import MAX_TOKEN_LIFETIME, ServerSettings

__all__ = [
    "MAX_TOKEN_LIFETIME",
    "AccessToken",
    "Principal",
    "ServerSettings",
    "SiweAuth",
    "create_app",
]
