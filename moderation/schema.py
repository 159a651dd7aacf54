"""Schema management through the Alembic migrations shipped in the package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (the latest by default)."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Undo migrations down to ``revision`` (``-1``: the latest one)."""
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def model_differences(connection: Connection) -> list[Any]:
    """What autogenerate would change to make the database match the models (none: in step)."""
    from moderation.models import Base

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    differences: list[Any] = compare_metadata(context, Base.metadata)
    return differences


def next_revision_id() -> str:
    """Revisions are numbered 0001, 0002, ...: one more than the highest number in use, which
    need not be the head's (branches merged side by side are chained in the order they land)."""
    script = ScriptDirectory.from_config(alembic_config())
    numbers = [int(r.revision) for r in script.walk_revisions() if r.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(engine: Engine, message: str, revision_id: str | None = None) -> Path:
    """Write a migration that takes a database at head to the models (autogenerate); returns
    its file. For contributors: review it, and keep ``render_as_batch`` in mind for SQLite."""
    with engine.begin() as connection:
        config = alembic_config(connection)
        script = command.revision(
            config, message, autogenerate=True, rev_id=revision_id or next_revision_id()
        )
    assert script is not None and not isinstance(script, list)
    return Path(script.path)
