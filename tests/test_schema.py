"""The schema comes from the migrations and matches the models exactly."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner, Result
from sqlalchemy import Connection, Engine, create_engine

from moderation import schema
from moderation.cli import main
from moderation.db import make_engine
from moderation.duplicates import sketch
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
        pytest.skip("SQLite's settings")
    with engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert (pragma("PRAGMA busy_timeout").scalar() or 0) >= 5000
        assert pragma("PRAGMA foreign_keys").scalar() == 1


def _cli(tmp_path: Path, *args: str, env: str = "development") -> Result:
    environment = {
        "MODERATION_ENV": env,
        "MODERATION_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "MODERATION_SECRET_KEY": "k" * 40,
    }
    return CliRunner().invoke(main, list(args), env=environment)


def test_one_migration_goes_down_and_up_again(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}")
    schema.upgrade(engine)
    head = schema.head_revision()
    # Two down: the latest (0023) changes data only, so the schema change undone is 0022's.
    schema.downgrade(engine, "-2")
    with engine.connect() as connection:
        below = schema.current_revision(connection)
        assert below is not None and below != head
        assert schema.model_differences(connection) != []  # the latest change is undone
    schema.upgrade(engine)
    with engine.connect() as connection:
        assert schema.current_revision(connection) == head
        assert schema.model_differences(connection) == []
    engine.dispose()


def test_db_check_says_whether_the_schema_is_at_head_and_matches_the_models(
    tmp_path: Path,
) -> None:
    assert _cli(tmp_path, "db", "upgrade", "--revision", "0010").exit_code == 0
    behind = _cli(tmp_path, "db", "check")
    assert behind.exit_code == 1
    assert f"not {schema.head_revision()}" in behind.output
    assert "moderation db upgrade" in behind.output
    assert _cli(tmp_path, "db", "upgrade").exit_code == 0
    in_step = _cli(tmp_path, "db", "check")
    assert in_step.exit_code == 0, in_step.output
    assert "matches the models" in in_step.output
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE stray (id INTEGER PRIMARY KEY)")
    engine.dispose()
    drifted = _cli(tmp_path, "db", "check")
    assert drifted.exit_code == 1
    assert "stray" in drifted.output and "differ from the migrations" in drifted.output


def test_db_revision_writes_a_migration_in_development_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = sorted(p.name for p in schema.MIGRATIONS.glob("versions/*.py"))
    migrations = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(schema, "MIGRATIONS", migrations)
    assert _cli(tmp_path, "db", "upgrade").exit_code == 0
    refused = _cli(tmp_path, "db", "revision", "-m", "nothing", env="testing")
    assert refused.exit_code == 1 and "for development" in refused.output
    head = schema.head_revision()
    assert head is not None
    written = _cli(tmp_path, "db", "revision", "-m", "add nothing")
    assert written.exit_code == 0, written.output
    # One more than the highest number in use, which need not be the head's.
    following = f"{max(int(name[:4]) for name in shipped) + 1:04d}"
    new = migrations / "versions" / f"{following}_add_nothing.py"
    text = new.read_text()
    assert f"revision = '{following}'" in text and f"down_revision = '{head}'" in text
    monkeypatch.undo()
    assert sorted(p.name for p in schema.MIGRATIONS.glob("versions/*.py")) == shipped


def _add_site_and_post(connection: Connection, now: dt.datetime) -> None:
    """Site 1 and its post 1, as the columns of an earlier migration have them."""
    connection.exec_driver_sql(
        "INSERT INTO sites (id, slug, name, origins, policy, link_limit, notify_emails,"
        " created_at) VALUES (1, 'luac', 'L', '[]', 'all', 2, '[]', ?)",
        (now,),
    )
    connection.exec_driver_sql(
        "INSERT INTO posts (id, site_id, key, title, url, closed, version, created_at)"
        " VALUES (1, 1, '/p/', 'P', 'https://example.org/p/', 0, 1, ?)",
        (now,),
    )


def test_migration_0012_fills_in_address_keys_and_recent_sketches(tmp_path: Path) -> None:
    """Existing comments get their casefolded address key, and those the duplicate check can
    still see (the last seven days) their sketch and index keys."""
    engine = create_engine(f"sqlite:///{tmp_path / 'upgrade.db'}")
    schema.upgrade(engine, "0011")
    now = dt.datetime.now(dt.UTC)
    text = "I completely agree with the council about the future of our town centres."
    with engine.begin() as connection:
        insert = connection.exec_driver_sql
        _add_site_and_post(connection, now)
        for n, (email, at) in enumerate(
            [("Ärger@Example.com", now), ("old@example.com", now - dt.timedelta(days=30))]
        ):
            insert(
                "INSERT INTO comments (id, public_id, post_id, author_name, author_email,"
                " body_text, body_html, status, signals, official, submitted_at)"
                " VALUES (?, ?, 1, 'A', ?, ?, '<p>x</p>', 'pending', '[]', 0, ?)",
                (n + 1, f"c{n}", email, text, at),
            )
    schema.upgrade(engine)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT id, email_key FROM comments").all()
        keys: dict[int, str] = {row[0]: row[1] for row in rows}
        assert keys == {1: "ärger@example.com", 2: "old@example.com"}
        sketched = connection.exec_driver_sql(
            "SELECT id FROM comments WHERE text_fingerprint = ?", (sketch(text).fingerprint,)
        ).all()
        assert [row[0] for row in sketched] == [1]
        indexed = connection.exec_driver_sql("SELECT comment_id, key FROM comment_sketch_keys")
        assert sorted(indexed.all()) == sorted((1, key) for key in sketch(text).keys)
    engine.dispose()


def test_migration_0023_sketches_again_what_the_duplicate_check_can_see(tmp_path: Path) -> None:
    """Sketches made by the old hash are made again for the duplicate check's window, with their
    index rows, and cleared (index rows too) for older comments: none is left to mislead it."""
    engine = create_engine(f"sqlite:///{tmp_path / 'sketches.db'}")
    schema.upgrade(engine, "0022")
    now = dt.datetime.now(dt.UTC)
    text = "Don't close the library: the town centre needs it more than another car park."
    with engine.begin() as connection:
        insert = connection.exec_driver_sql
        _add_site_and_post(connection, now)
        for n, at in enumerate([now, now - dt.timedelta(days=30)]):
            insert(
                "INSERT INTO comments (id, public_id, post_id, author_name, author_email,"
                " email_key, body_text, body_html, status, signals, official, submitted_at,"
                " text_fingerprint, text_sketch) VALUES (?, ?, 1, 'A', 'a@example.com',"
                " 'a@example.com', ?, '<p>x</p>', 'pending', '[]', 0, ?, 7, ?)",
                (n + 1, f"c{n}", text, at, bytes(8)),
            )
            insert(
                "INSERT INTO comment_sketch_keys (comment_id, key, post_id, submitted_at)"
                " VALUES (?, 0, 1, ?)",
                (n + 1, at),
            )
    schema.upgrade(engine)
    made = sketch(text)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT id, text_fingerprint, text_sketch FROM comments ORDER BY id"
        ).all()
        assert [tuple(row) for row in rows] == [
            (1, made.fingerprint, made.packed()),
            (2, None, None),
        ]
        indexed = connection.exec_driver_sql("SELECT comment_id, key FROM comment_sketch_keys")
        assert sorted(indexed.all()) == sorted((1, key) for key in made.keys)
    engine.dispose()
