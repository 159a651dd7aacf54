"""Fixtures: a schema built by the migrations, one rolled-back transaction per test, builders.

The suite runs on SQLite; set MODERATION_TEST_DATABASE_URL to run it on PostgreSQL too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from moderation import create_app, schema
from moderation.config import Settings
from moderation.db import make_engine
from moderation.models import Moderator, Role, Site
from moderation.moderators import create_api_token, create_moderator, password_hasher
from moderation.publishing import ThreadHeads
from moderation.sites import create_site

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


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(database_url(tmp_path_factory.mktemp("db")))
    reset_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


def _session_factory(connection: Connection) -> sessionmaker[Session]:
    # Sessions join the test's transaction; their commits release SAVEPOINTs instead.
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    with _session_factory(connection)() as session:
        yield session


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
    app.extensions["moderation.sessionmaker"] = _session_factory(connection)
    app.extensions["moderation.heads"] = ThreadHeads(None)
    app.config["SERVER_NAME"] = "comments.example.org"
    app.config["PREFERRED_URL_SCHEME"] = "https"
    return app


@pytest.fixture
def app(engine: Engine, connection: Connection) -> Flask:
    return app_in_transaction(engine, connection)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright (never a downloaded browser)."""
    from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def smtp() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on a free loopback port; ``smtp.inbox`` holds what came."""
    from tests.mailserver import SMTPServer, free_port

    server = SMTPServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_sessions(connection: Connection) -> sessionmaker[Session]:
    """Sessions in the test's transaction, as an app with mail on makes them."""
    from tests.mailserver import mail_factory

    return mail_factory(connection)


@pytest.fixture
def mail_session(mail_sessions: sessionmaker[Session]) -> Iterator[Session]:
    with mail_sessions() as session:
        yield session


@pytest.fixture
def mail_client(engine: Engine, mail_sessions: sessionmaker[Session], smtp: Any) -> FlaskClient:
    """A client of an app whose mail goes to ``smtp``."""
    from tests.mailserver import mail_settings

    app = create_app(mail_settings(smtp.port), engine=engine)
    app.extensions["moderation.sessionmaker"] = mail_sessions
    app.extensions["moderation.heads"] = ThreadHeads(None)  # as in app_in_transaction
    app.config["SERVER_NAME"] = "comments.example.org"
    app.config["PREFERRED_URL_SCHEME"] = "https"
    return app.test_client()


# Builders -------------------------------------------------------------------------------------


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
