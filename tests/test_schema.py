"""The schema comes from the migrations and matches the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from moderation import schema
from moderation.models import Base


def test_migrations_leave_no_difference_from_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_the_database_is_at_the_latest_migration(engine: Engine) -> None:
    with engine.connect() as connection:
        assert schema.current_revision(connection) == schema.head_revision()


def test_sqlite_connections_are_safe_for_concurrent_writers(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert (pragma("PRAGMA busy_timeout").scalar() or 0) >= 5000
        assert pragma("PRAGMA foreign_keys").scalar() == 1
