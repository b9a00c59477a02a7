"""Consent: purposes, grants, signed consents and their history."""

from imaging_consent.consent.purposes import Purpose, purposes_from_mask, purposes_mask

__all__ = ["Purpose", "purposes_from_mask", "purposes_mask"]
