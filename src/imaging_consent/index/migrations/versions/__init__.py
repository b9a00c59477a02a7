"""Alembic revisions of the audit index, oldest first."""
