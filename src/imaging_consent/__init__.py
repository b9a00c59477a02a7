"""imaging-consent: patient-controlled consent for medical imaging on Ethereum."""

from imaging_consent.errors import ImagingConsentError

__all__ = ["ImagingConsentError"]
__version__ = "0.1.0"
