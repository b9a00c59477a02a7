"""Consent: purposes, grants, signed consents and their history."""

from imaging_consent.consent.client import (
    DEFAULT_SIGNATURE_LIFETIME,
    ConsentClient,
    Permission,
    Timestamp,
)
from imaging_consent.consent.explain import Decision, explain
from imaging_consent.consent.history import (
    ALL_STUDIES,
    ConsentEvent,
    Grant,
    GrantHistory,
    grant_history,
)
from imaging_consent.consent.purposes import Purpose, purposes_from_mask, purposes_mask
from imaging_consent.consent.signing import SignedConsent, recover_signer

__all__ = [
    "ALL_STUDIES",
    "DEFAULT_SIGNATURE_LIFETIME",
    "ConsentClient",
    "ConsentEvent",
    "Decision",
    "Grant",
    "GrantHistory",
    "Permission",
    "Purpose",
    "SignedConsent",
    "Timestamp",
    "explain",
    "grant_history",
    "purposes_from_mask",
    "purposes_mask",
    "recover_signer",
]
