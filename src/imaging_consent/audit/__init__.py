"""Audit outputs: a patient's :class:`~imaging_consent.index.AuditTrail` as a document.

Each format is a pure function of a trail and an optional "generated at" time (unix seconds)
that returns text; none reads the chain, the index or the clock:

- :mod:`.document`: the JSON document (``audit --json``);
- :mod:`.tabular`: CSV, one row per event;
- :mod:`.report`: one self-contained HTML page a patient can read, with a plot;
- :mod:`.fhir`: a FHIR R4B ``Bundle`` of ``Consent`` and ``AuditEvent`` resources.

:mod:`.events` holds what they share (order, counts, words). The terminal table is drawn by
the command line (``cli/tables.py``) from the same trail.
"""

from __future__ import annotations

from collections.abc import Callable

from imaging_consent.audit.document import audit_document, audit_json
from imaging_consent.audit.fhir import audit_bundle, audit_fhir
from imaging_consent.audit.report import audit_html
from imaging_consent.audit.tabular import COLUMNS, audit_csv
from imaging_consent.index import AuditTrail

__all__ = [
    "COLUMNS",
    "EXPORTS",
    "audit_bundle",
    "audit_csv",
    "audit_document",
    "audit_fhir",
    "audit_html",
    "audit_json",
]

#: The file formats by name: each renders a trail (and a "generated at" time) as text.
EXPORTS: dict[str, Callable[[AuditTrail, int | None], str]] = {
    "json": audit_json,
    "csv": audit_csv,
    "html": audit_html,
    "fhir": audit_fhir,
}
