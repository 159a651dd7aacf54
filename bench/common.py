"""What the benchmarks share: an app on a database built fresh through the migrations."""

from __future__ import annotations

from flask import Flask

from moderation import create_app, schema
from moderation.config import Settings


def migrated_app(settings: Settings) -> Flask:
    """The app on an empty database (PostgreSQL's public schema is dropped first), migrated."""
    app = create_app(settings)
    engine = app.extensions["moderation.engine"]
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    schema.upgrade(engine)
    return app
