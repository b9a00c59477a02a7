"""The audit index: a patient's trail of consent and access events, from the chain or an index.

- :mod:`.trail`: :class:`AuditTrail`, what every reader shows, and :func:`trail_from_chain`.
"""

from imaging_consent.index.trail import AuditTrail, trail_from_chain

__all__ = ["AuditTrail", "trail_from_chain"]
