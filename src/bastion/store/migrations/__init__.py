"""Alembic migrations of the state store, run programmatically by `bastion.store.db.upgrade` (no alembic.ini)."""
