"""How a de-identified caller names studies, series and instances without learning their UIDs.

When consent allows a caller de-identified data only, QIDO-RS answers with pseudonymous UIDs,
and WADO-RS paths take them back. A pseudonym is ``2.25.`` and 128 bits of
``HMAC-SHA256(HMAC-SHA256(server key, caller address), UID)`` (the same construction as the
release's own UID pseudonyms, :func:`~imaging_consent.dicom.pseudonymous_uid`): stable for one
caller, so an app can search and then retrieve, and unlinkable between callers or to the real
UID without the server key (derived from the site pepper, so it survives restarts).

Limits: the pseudonyms in paths are not the UIDs inside the released files, which are the
release's own pseudonyms (fresh for each release, so two retrievals cannot be linked through
them). Mapping a pseudonym back scans the store's studies (and the study's instances), keyed
per caller; nothing is stored.
"""

from __future__ import annotations

import hashlib
import hmac

from imaging_consent.dicom import SitePepper, pseudonymous_uid
from imaging_consent.stores.base import ImageStore, InstanceRecord

__all__ = ["Pseudonyms"]

_TAG = b"imaging-consent dicomweb uid pseudonyms\x00"


class Pseudonyms:
    """Per-caller pseudonymous UIDs over one store.

    Args:
        pepper: The site pepper (the server key is derived from it, never stored).
        store: The store whose UIDs are named.
    """

    def __init__(self, pepper: SitePepper, store: ImageStore) -> None:
        self._key = hmac.new(pepper.reveal(), _TAG, hashlib.sha256).digest()
        self._store = store

    def _caller_key(self, caller: str) -> bytes:
        return hmac.new(self._key, caller.lower().encode(), hashlib.sha256).digest()

    def of(self, caller: str, uid: str) -> str:
        """The caller's pseudonym for ``uid``."""
        return pseudonymous_uid(self._caller_key(caller), uid)

    def study(self, caller: str, uid: str) -> str | None:
        """The store's study whose pseudonym (for ``caller``) is ``uid``, or None."""
        key = self._caller_key(caller)
        for real in self._store.studies():
            if pseudonymous_uid(key, real) == uid:
                return real
        return None

    def within(self, caller: str, uid: str, records: list[InstanceRecord]) -> str | None:
        """The series or SOP Instance UID among ``records`` whose pseudonym is ``uid``, or None."""
        key = self._caller_key(caller)
        for record in records:
            for real in (record.series_instance_uid, record.sop_instance_uid):
                if pseudonymous_uid(key, real) == uid:
                    return real
        return None
