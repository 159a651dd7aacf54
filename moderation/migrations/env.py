"""Alembic environment: runs on the connection handed over by ``moderation.schema``."""

from __future__ import annotations

from alembic import context

from moderation.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with 'moderation db upgrade', which supplies the database")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
