"""moderation db: the schema (migrations)."""

from __future__ import annotations

import click

from moderation import schema
from moderation.cli.common import load_app


@click.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the migrations (creates the database on first run)."""
    app = load_app()
    schema.upgrade(app.extensions["moderation.engine"], revision)
    click.echo(
        f"Database is at revision {schema.head_revision() if revision == 'head' else revision}."
    )


@db.command("check")
def db_check() -> None:
    """Say whether the schema is at the latest migration and matches the models; exit 1 if not."""
    app = load_app()
    with app.extensions["moderation.engine"].connect() as connection:
        current, head = schema.current_revision(connection), schema.head_revision()
        if current != head:
            raise click.ClickException(
                f"the schema is at {current}, not {head}: run 'moderation db upgrade'"
            )
        differences = schema.model_differences(connection)
    if differences:
        for difference in differences:
            click.echo(f"differs: {difference}", err=True)
        raise click.ClickException(
            "the models differ from the migrations: add one with 'moderation db revision'"
        )
    click.echo(f"ok: the schema is at {head} and matches the models")


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does, in a few words.")
@click.option("--id", "revision_id", help="The revision id (default: one more than the head).")
def db_revision(message: str, revision_id: str | None) -> None:
    """Development only: write a migration from the models' changes (upgrade the database first)."""
    app = load_app()
    if not app.extensions["moderation.settings"].development:
        raise click.ClickException("db revision is for development (MODERATION_ENV=development)")
    engine = app.extensions["moderation.engine"]
    with engine.connect() as connection:
        if schema.current_revision(connection) != schema.head_revision():
            raise click.ClickException("upgrade the database first: 'moderation db upgrade'")
    path = schema.new_revision(engine, message, revision_id)
    click.echo(f"Wrote {path}: review it and run make format before committing.")
