"""Site registration: put a study's key, patient and content root on chain.

:func:`register_study` reads every instance of a study from the store, checks it is sound
DICOM, hashes it under content protocol v2 (see docs/ARCHITECTURE.md, "Content protocol"), builds
the content tree and
calls ``StudyRegistry.registerStudy``. Run again, it does nothing if the content is unchanged, and
calls ``updateContent`` if the store's content changed (instances added, removed or altered), or
if the study was registered under content protocol v1 (which moves it to v2).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from eth_utils.address import to_checksum_address

from imaging_consent.chain import TransactionSender
from imaging_consent.contracts.deployment import Suite
from imaging_consent.dicom import SitePepper
from imaging_consent.errors import StudyNotRegisteredError, StudyPatientMismatchError
from imaging_consent.provenance.content import build_study_content
from imaging_consent.provenance.instances import instance_digest
from imaging_consent.stores.base import ImageStore

logger = logging.getLogger(__name__)

__all__ = ["RegistrationAction", "RegistrationResult", "register_study"]


class RegistrationAction(str, enum.Enum):
    """What :func:`register_study` did. Compares equal to its value (``"registered"``...)."""

    REGISTERED = "registered"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    """The outcome of registering one study.

    Attributes:
        study_uid: The study's Study Instance UID (kept off chain; only its key is sent).
        study_key: The opaque on-chain key.
        content_root: The content root now on chain.
        instance_count: Instances under that root.
        action: Registered, updated or unchanged.
        tx_hash: The transaction sent, or None if nothing was sent.
    """

    study_uid: str
    study_key: bytes
    content_root: bytes
    instance_count: int
    action: RegistrationAction
    tx_hash: str | None


def register_study(
    suite: Suite,
    site_sender: TransactionSender,
    store: ImageStore,
    pepper: SitePepper,
    study_uid: str,
    patient: str,
) -> RegistrationResult:
    """Register (or update) a study held in ``store`` for ``patient``.

    Args:
        suite: The deployed contracts.
        site_sender: Sends as an account holding StudyRegistry's SITE_ROLE; the study goes
            into that site's namespace.
        store: Where the study's instances are.
        pepper: The site pepper (keys the study and instance keys).
        study_uid: The study's Study Instance UID.
        patient: The patient's wallet address.

    Returns:
        What was done, with the key, root and transaction.

    Raises:
        ValueError: If ``patient`` is not an address.
        UnknownStudyError: If the store has no such study.
        DicomReadError: If an instance file cannot be read (nothing is sent).
        StudyPatientMismatchError: If the study is registered for another patient (nothing
            is sent).
        MissingRoleError: If the sender lacks SITE_ROLE (nothing sent).
        ChainUnavailableError: If the chain cannot be reached.
        TransactionError: If the transaction fails.
    """
    patient_address = to_checksum_address(patient)
    stored = store.instances(study_uid)
    digests = [
        (inst.sop_instance_uid, instance_digest(store, inst, f"instance {n} of {len(stored)}"))
        for n, inst in enumerate(stored, start=1)
    ]
    content = build_study_content(pepper, study_uid, digests)
    key = content.study_key
    studies = suite.studies
    count = content.instance_count
    try:
        record = studies.study(site_sender.address, key)
    except StudyNotRegisteredError:
        action = RegistrationAction.REGISTERED
        function = studies.register_study(key, patient_address, content.root, count)
    else:
        if record.patient != patient_address:
            raise StudyPatientMismatchError(
                f"study 0x{key.hex()} is already registered for another patient; nothing sent"
            ) from None
        if record.content_root == content.root and record.instance_count == count:
            return RegistrationResult(
                study_uid, key, content.root, count, RegistrationAction.UNCHANGED, None
            )
        action = RegistrationAction.UPDATED
        function = studies.update_content(key, content.root, count)
    receipt = site_sender.transact(function)
    logger.info("%s a study (%d instances) in tx %s", action.value, count, receipt.tx_hash)
    return RegistrationResult(study_uid, key, content.root, count, action, receipt.tx_hash)
