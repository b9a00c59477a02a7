"""Alembic migrations of the audit index (run by :func:`imaging_consent.index.store.migrate`)."""
