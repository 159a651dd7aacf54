"""What the tests share: constants, settings, builders of models, request helpers and the
command line (in-process, or as a real process where the process is what is tested).

Fixtures live in conftest.py; test modules import helpers from here and from no other module.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, delete, or_, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from moderation import schema
from moderation.app import create_app
from moderation.config import Settings
from moderation.models import (
    AuditEvent,
    Comment,
    CommentStatus,
    Event,
    Moderator,
    Post,
    Role,
    Site,
    utcnow,
)
from moderation.moderators import create_api_token, create_moderator, password_hasher
from moderation.publishing import ThreadHeads
from moderation.sites import create_site
from moderation.spam import issue_form_token

TEST_SECRET = "test-secret-key-that-is-long-enough-for-the-check"
PASSWORD = "correct horse battery staple"
ORIGIN = "https://levellingupadvisorycouncil.blog.gov.uk"
POST_KEY = "/2024/03/28/from-industrial-decline/"


def database_url(tmp: Path) -> str:
    return os.environ.get("MODERATION_TEST_DATABASE_URL") or f"sqlite:///{tmp / 'test.db'}"


def reset_schema(engine: Engine) -> None:
    """Drop everything, then build the schema through the migrations."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    schema.upgrade(engine)


def session_factory(connection: Connection) -> sessionmaker[Session]:
    # Sessions join the test's transaction; their commits release SAVEPOINTs instead.
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


def settings_for_tests(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "testing",
        "secret_key": TEST_SECRET,
        "fast_password_hashing": True,
        "session_cookie_secure": False,
        "database_url": "sqlite://",
        "demo": True,
        # No DNS from the suite, except the deliverability tests against their own server.
        "check_deliverability": False,
        # Tests submit many comments from one address; the rate-limit tests turn it back on.
        "ratelimit_enabled": False,
        # Password logins as before; the second-factor tests turn it on.
        "mfa_required": "off",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def app_in_transaction(engine: Engine, connection: Connection, **overrides: Any) -> Flask:
    """The app with test settings (and ``overrides``), its sessions inside the test's transaction.

    Nothing it does is ever committed, so no commit counter can see its changes: its thread
    heads are read from the database every time (tests/test_embed_http.py covers the cache).
    """
    app = create_app(settings_for_tests(**overrides), engine=engine)
    app.extensions["moderation.sessionmaker"] = session_factory(connection)
    app.extensions["moderation.heads"] = ThreadHeads(None)
    # Nor replays on PostgreSQL: their probes' own connections would not see the test's data.
    app.extensions["moderation.probes"] = None
    app.config["SERVER_NAME"] = "comments.example.org"
    app.config["PREFERRED_URL_SCHEME"] = "https"
    return app


def make_app(engine: Engine, connection: Connection, **overrides: Any) -> Flask:
    """The test app with different settings (the `app` fixture's, otherwise)."""
    return app_in_transaction(engine, connection, **overrides)


def webhook_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "webhook_allow_http": True,
        "webhook_allowed_networks": "127.0.0.0/8",
        "webhook_timeout": 1.0,
        "webhook_connect_timeout": 1.0,
    }
    values.update(overrides)
    return settings_for_tests(**values)


# Builders and requests ------------------------------------------------------------------------


def make_site(session: Session, slug: str = "luac", origin: str = ORIGIN) -> Site:
    site = create_site(session, slug=slug, name=f"Blog {slug}", origins=[origin])
    session.commit()
    return site


def make_moderator(
    session: Session,
    login: str = "editor",
    *,
    role: Role = Role.ADMIN,
    sites: tuple[str, ...] = (),
) -> Moderator:
    moderator = create_moderator(
        session,
        password_hasher(fast=True),
        login=login,
        email=f"{login}@example.gov.uk",
        password=PASSWORD,
        role=role,
        site_slugs=sites,
    )
    session.commit()
    return moderator


def make_token(session: Session, moderator: Moderator) -> str:
    from moderation.models import utcnow

    _, plain = create_api_token(session, moderator, "integration", now=utcnow())
    session.commit()
    return plain


def comment_json(**overrides: str) -> dict[str, str]:
    data = {
        "post": POST_KEY,
        "post_title": "From industrial decline to growth",
        "author_name": "Ada Lovelace",
        "author_email": "ada@example.com",
        "body": "Thank you for this post.\n\nIt was useful.",
    }
    data.update(overrides)
    return data


def login(client: FlaskClient, login_name: str = "editor", password: str = PASSWORD) -> None:
    page = client.get("/moderate/login").get_data(as_text=True)
    response = client.post(
        "/moderate/login",
        data={"login": login_name, "password": password, "csrf_token": csrf_from(page)},
    )
    assert response.status_code == 303, response.get_data(as_text=True)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)


def json_of(response: TestResponse) -> Any:
    data = response.get_json()
    assert data is not None, response.get_data(as_text=True)
    return data


SUBMIT = "/api/v1/sites/luac/comments"


def good_token(seconds_ago: int = 30, site: str = "luac") -> str:
    """A form token old enough to pass the submission time-trap."""
    return issue_form_token(TEST_SECRET, site, now=utcnow() - dt.timedelta(seconds=seconds_ago))


def stored(app: Flask, public_id: str) -> Comment:
    with app.app_context():
        from moderation.web.sessions import get_session

        comment = get_session().scalars(select(Comment).where(Comment.public_id == public_id)).one()
        comment.signals  # noqa: B018 (load before the session closes)
        return comment


def add_comment(
    session: Session,
    site: Site,
    submitted_at: dt.datetime | None = None,
    *,
    status: CommentStatus = CommentStatus.PENDING,
    **values: object,
) -> Comment:
    """A comment on the site's first post (made if need be), added directly: for tests of what is
    read back (the queue's orders, reports) that need set times, scores or statuses."""
    post = session.scalar(select(Post).where(Post.site_id == site.id).order_by(Post.id))
    if post is None:
        post = Post(site_id=site.id, key="/2026/a-post/", title="A post", url=site.origins[0] + "/")
        session.add(post)
    defaults: dict[str, object] = {
        "author_name": "Ada Lovelace",
        "author_email": "ada@example.com",
        "body_text": "A comment.",
        "body_html": "<p>A comment.</p>",
    }
    comment = Comment(
        post=post,
        status=status,
        submitted_at=submitted_at or utcnow(),
        **(defaults | values),
    )
    session.add(comment)
    session.flush()
    return comment


# The command line ------------------------------------------------------------------------------

MODERATION = str(Path(sys.executable).with_name("moderation"))


def _command_environment(tmp_path: Path, env: dict[str, str] | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MODERATION_")}
    base.update(
        MODERATION_ENV="testing",
        MODERATION_SECRET_KEY=TEST_SECRET,
        MODERATION_FAST_PASSWORD_HASHING="true",
        MODERATION_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        # As in settings_for_tests: DNS only in its own tests (the machine's resolver is no
        # part of the test); they turn it on.
        MODERATION_CHECK_DELIVERABILITY="false",
    )
    base.update(env or {})
    return base


def run_process(
    tmp_path: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``moderation ARGS`` as an operator would: a real process (the subprocess tier)."""
    return subprocess.run(
        [MODERATION, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_command_environment(tmp_path, env),
        timeout=60,
    )


def run_command(
    tmp_path: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``moderation ARGS`` in this process (click's CliRunner), with the environment
    :func:`run_process` gives, and its kind of result; an unexpected error's traceback is in
    ``stderr``."""
    environment = _command_environment(tmp_path, env)
    unset: dict[str, str | None] = {k: None for k in os.environ if k not in environment}
    from moderation.cli import main

    result = CliRunner().invoke(main, list(args), input=stdin, env={**unset, **environment})
    stderr = result.stderr
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return subprocess.CompletedProcess([MODERATION, *args], result.exit_code, result.stdout, stderr)


def remove_site(session: Session, slug: str) -> None:
    """Delete a site that a test really committed, with its posts, comments, their events and
    audit rows (tests of real processes and races cannot roll back); the caller commits."""
    sites = select(Site.id).where(Site.slug == slug)
    posts = select(Post.id).where(Post.site_id.in_(sites))
    comments = select(Comment.id).where(Comment.post_id.in_(posts))
    session.execute(
        delete(AuditEvent).where(
            or_(AuditEvent.comment_id.in_(comments), AuditEvent.site_id.in_(sites))
        )
    )
    session.execute(
        delete(Event).where(or_(Event.comment_id.in_(comments), Event.site_id.in_(sites)))
    )
    session.execute(delete(Comment).where(Comment.post_id.in_(posts)))
    session.execute(delete(Post).where(Post.site_id.in_(sites)))
    session.execute(delete(Site).where(Site.slug == slug))
