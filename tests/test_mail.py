"""Mail against a real SMTP server on loopback (aiosmtpd): the worker sends from the outbox.

Moderator notifications (each and digest) with moderation links, commenters' approval, rejection
and reply notices with one-click unsubscribe, hostile comments, and an SMTP server that is down.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import random
import re
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session, sessionmaker

from moderation import create_app
from moderation.actions import moderate_comment
from moderation.config import Settings
from moderation.events import Actor
from moderation.mail import MAIL_ENABLED, link_actions
from moderation.mail.links import BadLink
from moderation.mail.messages import defang, header_text
from moderation.mail.sending import claim_due, send_due_mail
from moderation.models import (
    AuditEvent,
    Comment,
    CommentStatus,
    MailPreference,
    MailStatus,
    Moderator,
    OutgoingMail,
    Role,
)
from moderation.moderators import update_moderator
from tests.conftest import (
    ORIGIN,
    TEST_SECRET,
    comment_json,
    make_moderator,
    make_site,
    settings_for_tests,
)

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
        return [m for m, rcpt in zip(self.messages, self.recipients, strict=True) if address in rcpt]


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


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    server = SMTPServer(free_port())
    server.start()
    yield server
    server.stop()


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


@pytest.fixture
def factory(connection: Connection) -> sessionmaker[Session]:
    return mail_factory(connection)


@pytest.fixture
def db(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session


@pytest.fixture
def mail_app(engine: Engine, connection: Connection, smtp: SMTPServer) -> Flask:
    app = create_app(mail_settings(smtp.port), engine=engine)
    app.extensions["moderation.sessionmaker"] = mail_factory(connection)
    app.config["SERVER_NAME"] = "comments.example.org"
    app.config["PREFERRED_URL_SCHEME"] = "https"
    return app


@pytest.fixture
def web(mail_app: Flask) -> FlaskClient:
    return mail_app.test_client()


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


def moderators_for(db: Session) -> tuple[Moderator, Moderator]:
    each = make_moderator(db, "mod1", role=Role.MODERATOR, sites=("luac",))
    digest = make_moderator(db, "mod2", role=Role.MODERATOR, sites=("luac",))
    digest.mail_preference = MailPreference.DIGEST
    db.commit()
    return each, digest


def test_moderators_hear_of_held_comments_each_or_as_a_digest(
    web: FlaskClient, db: Session, factory: sessionmaker[Session], smtp: SMTPServer
) -> None:
    site = make_site(db)
    site.notify_emails = ["team@example.gov.uk"]
    db.commit()
    moderators_for(db)
    first = submit(web, author_name="Ada")
    now = dt.datetime.now(dt.UTC)

    assert send(factory, smtp.port, now) == 2  # mod1 and the team; mod2's digest waits
    [to_mod1] = smtp.inbox.to("mod1@example.gov.uk")
    [to_team] = smtp.inbox.to("team@example.gov.uk")
    assert to_mod1["From"] == FROM and to_mod1["To"] == "mod1@example.gov.uk"
    assert to_mod1["Subject"] == (
        "Comment waiting for moderation on From industrial decline to growth"
    )
    assert to_mod1["Date"] and to_mod1["Message-ID"].endswith("@comments.example.org>")
    text, html = parts(to_mod1)
    assert "Thank you for this post." in text and "Thank you for this post." in html
    assert {"Approve", "Reject", "Mark as spam"} <= set(re.findall(r">([A-Za-z ]+)</a>", html))
    assert "/mail/act/" not in parts(to_team)[1]  # no moderator, no action links
    assert to_team["List-Unsubscribe"] is None

    second = submit(web, author_name="Grace", body="A second thought.")
    assert send(factory, smtp.port, now + dt.timedelta(minutes=5)) == 2  # mod1 and the team
    assert len(smtp.inbox.to("mod2@example.gov.uk")) == 0
    assert send(factory, smtp.port, now + dt.timedelta(minutes=61)) == 1
    [digest] = smtp.inbox.to("mod2@example.gov.uk")
    assert digest["Subject"] == "2 comments waiting for moderation"
    text, html = parts(digest)
    assert "Ada" in text and "Grace" in text and "A second thought." in html
    assert len([h for h in anchors(html).hrefs if "/mail/act/" in h]) == 6
    assert send(factory, smtp.port, now + dt.timedelta(hours=3)) == 0  # nothing sent twice
    assert {first["id"], second["id"]}


def test_a_moderation_link_acts_once_and_only_on_post(
    web: FlaskClient, db: Session, factory: sessionmaker[Session], smtp: SMTPServer
) -> None:
    make_site(db)
    mod1, _ = moderators_for(db)
    sent = submit(web)
    send(factory, smtp.port)
    [message] = smtp.inbox.to("mod1@example.gov.uk")
    approve = link(message, "Approve")

    page = web.get(approve)
    assert page.status_code == 200 and "Approve this comment?" in page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert comment(db, sent["id"]).status is CommentStatus.PENDING
    assert db.scalars(select(AuditEvent).where(AuditEvent.action == "approve")).all() == []

    done = web.post(approve)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert comment(db, sent["id"]).status is CommentStatus.APPROVED
    [audit] = db.scalars(select(AuditEvent).where(AuditEvent.action == "approve")).all()
    assert audit.actor == "mod1 (from mail)" and audit.moderator_id == mod1.id

    again = web.post(approve)
    assert again.status_code == 410
    assert len(db.scalars(select(AuditEvent).where(AuditEvent.action == "approve")).all()) == 1

    forged = approve[:-3] + ("AAA" if not approve.endswith("AAA") else "BBB")
    assert web.get(forged).status_code == 400
    assert web.post(forged).status_code == 400


def test_moderation_links_expire_and_die_with_the_moderators_access(
    web: FlaskClient, db: Session, factory: sessionmaker[Session], smtp: SMTPServer
) -> None:
    make_site(db)
    mod1, _ = moderators_for(db)
    sent = submit(web)
    now = dt.datetime.now(dt.UTC)
    send(factory, smtp.port, now)
    [message] = smtp.inbox.to("mod1@example.gov.uk")
    token = link(message, "Reject").rsplit("/", 1)[1]

    with pytest.raises(BadLink) as expired:
        link_actions.act(db, token, secret=TEST_SECRET, now=now + dt.timedelta(hours=25))
    assert expired.value.status == 410

    update_moderator(db, mod1, role="moderator", site_slugs=(), actor=Actor("admin"), now=now)
    db.commit()
    refused = web.post(link(message, "Reject"))
    assert refused.status_code == 403
    assert comment(db, sent["id"]).status is CommentStatus.PENDING


def test_commenters_hear_of_approval_and_rejection_with_the_reason(
    web: FlaskClient, db: Session, factory: sessionmaker[Session], smtp: SMTPServer
) -> None:
    site = make_site(db)
    site.reject_reasons = ["Off topic"]
    site.comment_policy_url = "https://levellingupadvisorycouncil.blog.gov.uk/comments-policy/"
    admin = make_moderator(db, "admin")
    told = submit(web, author_email="told@example.com", notify=True)
    quiet = submit(web, author_email="quiet@example.com", body="Say nothing to me.")
    rejected = submit(web, author_email="told@example.com", body="Off the point.", notify=True)
    now = dt.datetime.now(dt.UTC)
    for public_id, action, reason in (
        (told["id"], "approve", None),
        (quiet["id"], "approve", None),
        (rejected["id"], "reject", "Off topic"),
    ):
        moderate_comment(
            db, admin, public_id, action, actor=Actor("admin", admin.id), now=now, reason=reason
        )
    db.commit()

    assert send(factory, smtp.port, now) == 2
    assert smtp.inbox.to("quiet@example.com") == []
    approved, refused = sorted(smtp.inbox.to("told@example.com"), key=lambda m: m["Subject"])
    assert approved["Subject"] == "Your comment on From industrial decline to growth is published"
    assert refused["Subject"] == "Your comment on From industrial decline to growth was not published"
    text, html = parts(refused)
    assert "The reason, from our comment policy: Off topic" in text
    assert "Off topic" in html and site.comment_policy_url in anchors(html).hrefs
    for message in (approved, refused):
        unsubscribe = message["List-Unsubscribe"]
        assert re.fullmatch(r"<https://comments\.example\.org/mail/unsubscribe/[\w.-]+>", unsubscribe)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"{ORIGIN}/2024/03/28/from-industrial-decline/#comment-{told['id']}" in parts(approved)[0]


def test_reply_notifications_stop_after_one_click_unsubscribe(
    web: FlaskClient, db: Session, factory: sessionmaker[Session], smtp: SMTPServer
) -> None:
    make_site(db)
    admin = make_moderator(db, "admin")
    actor = Actor("admin", admin.id)
    now = dt.datetime.now(dt.UTC)
    parent = submit(web, author_email="ada@example.com", notify_replies=True)
    moderate_comment(db, admin, parent["id"], "approve", actor=actor, now=now)
    db.commit()
    reply = submit(web, author_email="bob@example.com", body="I agree.", parent_id=parent["id"])
    moderate_comment(db, admin, reply["id"], "approve", actor=actor, now=now)
    db.commit()

    send(factory, smtp.port, now)
    [told] = smtp.inbox.to("ada@example.com")
    assert told["Subject"] == "A reply to your comment on From industrial decline to growth"
    assert "I agree." in parts(told)[0]
    unsubscribe = urlsplit(told["List-Unsubscribe"].strip("<>")).path
    assert web.get(unsubscribe).status_code == 200  # a scanner's GET changes nothing
    assert comment(db, parent["id"]).notify_replies is True

    one_click = web.post(
        unsubscribe,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 200
    assert comment(db, parent["id"]).notify_replies is False
    another = submit(web, author_email="cy@example.com", body="Me too.", parent_id=parent["id"])
    moderate_comment(db, admin, another["id"], "approve", actor=actor, now=now)
    db.commit()
    assert send(factory, smtp.port, now + dt.timedelta(minutes=1)) == 0
    assert len(smtp.inbox.to("ada@example.com")) == 1
    assert web.post(unsubscribe[:-4] + "xxxx").status_code == 400


HOSTILE_NAME = '<script>alert(1)</script><a href="javascript:alert(2)">Eve</a> http://evil.example'
HOSTILE_BODY = (
    "<script>alert(3)</script> <a href=javascript:alert(4)>click</a> "
    "http://evil.example/login www.evil.example/x mail eve@evil.example "
    '<img src=x onerror="alert(5)"> [link](http://evil.example)'
)
HOSTILE_TITLE = "<b>Title</b> http://evil.example <img src=x onerror=alert(6)>"


def assert_harmless(message: EmailMessage) -> None:
    """Nothing a hostile comment wrote is live: no markup, no link, no extra header."""
    for name in ("Subject", "From", "To"):
        value = str(message[name] or "")
        assert "\n" not in value and "\r" not in value and "evil.example" not in value
    assert message["Bcc"] is None and message["Cc"] is None
    text, html = parts(message)
    page = anchors(html)
    for tag, attrs in page.tags:
        assert tag not in ("script", "img", "iframe", "object"), tag
        assert not any(name.startswith("on") for name in attrs), attrs
    for href in page.hrefs:
        assert href.startswith((PUBLIC + "/", ORIGIN + "/")), href
    for part in (text, html):
        assert "evil.example" not in part and "www.evil" not in part
        assert not re.search(r"(?i)(https?|javascript):", part.replace(PUBLIC, "").replace(ORIGIN, ""))
    assert "<script>" not in html and "&lt;script&gt;" in html  # the name, escaped


def test_a_hostile_comment_yields_mail_with_nothing_live_in_it(
    web: FlaskClient, db: Session, factory: sessionmaker[Session], smtp: SMTPServer
) -> None:
    make_site(db)
    make_moderator(db, "mod1", role=Role.MODERATOR, sites=("luac",))
    admin = make_moderator(db, "admin")
    actor = Actor("admin", admin.id)
    now = dt.datetime.now(dt.UTC)
    injected = web.post(
        "/api/v1/sites/luac/comments",
        json=comment_json(author_name="Eve\r\nBcc: victim@example.com"),
    )
    assert injected.status_code == 422  # no second line in a name, so no header from it

    parent = submit(
        web,
        author_name=HOSTILE_NAME,
        author_email="eve@example.com",
        body=HOSTILE_BODY,
        post_title=HOSTILE_TITLE,
        notify=True,
        notify_replies=True,
    )
    send(factory, smtp.port)  # the held notice to mod1
    moderate_comment(db, admin, parent["id"], "approve", actor=actor, now=now)
    db.commit()
    reply = submit(
        web,
        author_name=HOSTILE_NAME,
        author_email="mallory@example.com",
        body='<iframe src="http://evil.example"></iframe> Visit https://evil.example/win now!',
        parent_id=parent["id"],
    )
    moderate_comment(db, admin, reply["id"], "approve", actor=actor, now=now)
    db.commit()
    send(factory, smtp.port)

    kinds = {m["Subject"].split(" on ")[0] for m in smtp.inbox.messages}
    assert kinds == {
        "Comment waiting for moderation",
        "Your comment",
        "A reply to your comment",
    }, kinds
    # The reply was approved before its held notice went, so that notice was dropped as stale.
    assert len(smtp.inbox.messages) == 3
    for message in smtp.inbox.messages:
        assert_harmless(message)


def test_header_values_are_one_line_and_link_like_text_is_defanged() -> None:
    assert header_text("Title\r\nBcc: victim@example.com") == "Title Bcc: victim@example.com"
    assert len(header_text("x" * 500)) == 150
    assert defang("see http://evil.example/a or www.evil.example") == (
        "see http[:]//evil[.]example/a or www[.]evil[.]example"
    )
    assert defang("javascript:alert(1) mail eve@evil.example") == (
        "javascript[:]alert(1) mail eve[at]evil[.]example"
    )


def test_mail_waits_while_the_smtp_server_is_down_and_is_sent_later(
    web: FlaskClient, db: Session, factory: sessionmaker[Session], smtp: SMTPServer
) -> None:
    make_site(db)
    make_moderator(db, "mod1", role=Role.MODERATOR, sites=("luac",))
    submit(web)
    submit(web, body="Another one.")
    smtp.stop()
    now = dt.datetime.now(dt.UTC)

    assert send(factory, smtp.port, now) == 1  # one tried; the other released, not counted
    db.expire_all()
    rows = db.scalars(select(OutgoingMail).order_by(OutgoingMail.id)).all()
    assert [r.status for r in rows] == [MailStatus.PENDING, MailStatus.PENDING]
    assert rows[0].attempts == 1 and rows[0].next_attempt_at > now
    assert "ConnectionRefusedError" in (rows[0].last_error or "")
    assert rows[1].attempts == 0 and rows[1].lease_owner is None

    smtp.start()
    assert send(factory, smtp.port, now + dt.timedelta(minutes=2)) == 2
    assert len(smtp.inbox.to("mod1@example.gov.uk")) == 2
    db.expire_all()
    assert {r.status for r in db.scalars(select(OutgoingMail))} == {MailStatus.SENT}


def test_two_workers_never_claim_the_same_mail(
    web: FlaskClient, db: Session, factory: sessionmaker[Session]
) -> None:
    make_site(db)
    make_moderator(db, "mod1", role=Role.MODERATOR, sites=("luac",))
    for n in range(3):
        submit(web, body=f"Comment {n}.")
    now = dt.datetime.now(dt.UTC)
    with factory() as one:
        first = claim_due(one, "worker-1", now=now, digest_after=dt.timedelta(hours=1), limit=2)
        one.commit()
    with factory() as two:
        second = claim_due(two, "worker-2", now=now, digest_after=dt.timedelta(hours=1))
        two.commit()
    assert len(first) == 2 and len(second) == 1
    assert not {i for b in first for i in b} & {i for b in second for i in b}
    with factory() as three:
        assert claim_due(three, "worker-3", now=now, digest_after=dt.timedelta(hours=1)) == []


def test_nothing_is_queued_while_mail_is_off(client: FlaskClient, session: Session) -> None:
    make_site(session)
    make_moderator(session, "mod1", role=Role.MODERATOR, sites=("luac",))
    response = client.post("/api/v1/sites/luac/comments", json=comment_json(notify=True))
    assert response.status_code == 202
    assert session.scalars(select(OutgoingMail)).all() == []
