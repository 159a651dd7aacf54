"""A real SMTP server on loopback (aiosmtpd) and helpers for the mail tests."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import functools
import random
import re
import socket
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from moderation.app import create_app
from moderation.config import Settings
from moderation.mail import MAIL_ENABLED
from moderation.models import Comment
from moderation.outbox.mail import send_due_mail
from moderation.publishing import ThreadHeads
from tests.helpers import TEST_SECRET, comment_json, settings_for_tests

PUBLIC = "https://comments.example.org"
FROM = "Comments <comments@example.org>"


class Inbox:
    """What the SMTP server received, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [
            m for m, rcpt in zip(self.messages, self.recipients, strict=True) if address in rcpt
        ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SMTPServer:
    def __init__(self, port: int):
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def mail_settings(port: int, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_timeout": 2.0,
        "mail_from": FROM,
        "public_url": PUBLIC,
        "time_trap": False,
    }
    values.update(overrides)
    return settings_for_tests(**values)


def mail_factory(connection: Connection) -> sessionmaker[Session]:
    return sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        info={MAIL_ENABLED: True},
    )


class MailTest:
    """What a mail test works with (the ``mail`` fixture): a real SMTP server on loopback and,
    built when first used, sessions as an app with mail on makes them, inside the test's
    transaction, and a client of such an app whose mail goes to the server.

    A test that needs only the server (a worker in its own process, on its own database) never
    opens the test's transaction."""

    def __init__(self, server: SMTPServer, request: pytest.FixtureRequest) -> None:
        self.server = server
        self._request = request

    @property
    def inbox(self) -> Inbox:
        return self.server.inbox

    @functools.cached_property
    def sessions(self) -> sessionmaker[Session]:
        return mail_factory(self._request.getfixturevalue("connection"))

    @functools.cached_property
    def session(self) -> Session:
        session = self.sessions()
        # Closed with the fixture, before the test's connection goes.
        self._request.addfinalizer(session.close)
        return session

    @functools.cached_property
    def client(self) -> FlaskClient:
        app = create_app(
            mail_settings(self.server.port), engine=self._request.getfixturevalue("engine")
        )
        app.extensions["moderation.sessionmaker"] = self.sessions
        app.extensions["moderation.heads"] = ThreadHeads(None)  # as in app_in_transaction
        app.extensions["moderation.probes"] = None
        app.config["SERVER_NAME"] = "comments.example.org"
        app.config["PREFERRED_URL_SCHEME"] = "https"
        return app.test_client()

    def send(self, now: dt.datetime | None = None) -> int:
        """Run the worker's mail step once, as a worker would (see :func:`send`)."""
        return send(self.sessions, self.server.port, now)


def send(factory: sessionmaker[Session], port: int, now: dt.datetime | None = None) -> int:
    return send_due_mail(
        factory,
        mail_settings(port),
        secret=TEST_SECRET,
        now=now or dt.datetime.now(dt.UTC),
        owner="test-worker",
        rng=random.Random(1),
    )


def submit(web: FlaskClient, **overrides: Any) -> dict[str, Any]:
    response = web.post("/api/v1/sites/luac/comments", json=comment_json(**overrides))
    assert response.status_code == 202, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def comment(db: Session, public_id: str) -> Comment:
    db.expire_all()
    return db.scalars(select(Comment).where(Comment.public_id == public_id)).one()


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts of a multipart/alternative message."""
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    @property
    def hrefs(self) -> list[str]:
        return [str(attrs.get("href")) for tag, attrs in self.tags if tag == "a"]


def anchors(html: str) -> Anchors:
    parser = Anchors()
    parser.feed(html)
    return parser


def link(message: EmailMessage, text: str) -> str:
    """The path of the link labelled ``text`` in the HTML part (checked against the text part)."""
    plain, html = parts(message)
    match = re.search(r'<a href="([^"]+)">' + re.escape(text) + "</a>", html)
    assert match, html
    url = match.group(1).replace("&amp;", "&")
    assert url in plain
    assert url.startswith(PUBLIC + "/")
    return urlsplit(url).path
