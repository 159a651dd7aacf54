"""Fixtures: a schema built by the migrations, one rolled-back transaction per test, builders.

The suite runs on SQLite; set MODERATION_TEST_DATABASE_URL to run it on PostgreSQL too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, delete
from sqlalchemy.orm import Session

from moderation.db import make_engine
from moderation.models import SpamModelChange, SpamModelVersion, SpamToken
from tests.helpers import app_in_transaction, database_url, reset_schema, session_factory


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(database_url(tmp_path_factory.mktemp("db")))
    reset_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test.

    The learned spam model starts empty: tests of real processes and browsers commit decisions,
    and what they taught must not leak into the verdicts of later tests (rolled back here too).
    """
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(delete(SpamToken))
        connection.execute(delete(SpamModelVersion))
        connection.execute(delete(SpamModelChange))
        yield connection
        transaction.rollback()


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    with session_factory(connection)() as session:
        yield session


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
def mail(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on a free loopback port, ``mail.inbox`` what came; with
    ``mail.client``, ``mail.session`` and ``mail.sessions`` (tests.mailserver.MailTest), an app
    with mail on in the test's transaction, built when first used."""
    from tests.mailserver import MailTest, SMTPServer, free_port

    server = SMTPServer(free_port())
    server.start()
    yield MailTest(server, request)
    server.stop()
