"""Alembic environment: run with the connection `bastion.store.db.upgrade` hands over, or offline with a URL."""

from __future__ import annotations

from alembic import context

from bastion.store.db import metadata

config = context.config

# render_as_batch: later ALTERs become copy-and-move on SQLite (which cannot ALTER most things) and plain
# ALTER TABLE on PostgreSQL, so one migration serves both.
if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through bastion.store.db.upgrade(), which passes a live connection")
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
