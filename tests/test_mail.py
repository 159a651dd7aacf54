"""Mail against a real SMTP server on loopback (aiosmtpd): the worker sends from the outbox.

Moderator notifications (each and digest) with moderation links, commenters' approval, rejection
and reply notices with one-click unsubscribe, hostile comments, and an SMTP server that is down.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from moderation import create_app, schema
from moderation.actions import moderate_comment
from moderation.comments import submit_comment
from moderation.events import Actor
from moderation.mail import MAIL_ENABLED, link_actions
from moderation.mail.links import BadLink
from moderation.mail.messages import defang, header_text
from moderation.models import (
    AuditEvent,
    CommentStatus,
    MailPreference,
    MailStatus,
    Moderator,
    OutgoingMail,
    Role,
)
from moderation.moderators import update_moderator
from moderation.outbox.mail import claim_due, send_due_mail
from moderation.outbox.webhooks import deliver_due
from moderation.validation import CommentSubmission
from moderation.webhooks.endpoints import create_endpoint
from tests.consumer import running_consumer
from tests.helpers import (
    ORIGIN,
    TEST_SECRET,
    comment_json,
    csrf_from,
    login,
    make_moderator,
    make_site,
    make_token,
)
from tests.mailserver import (
    FROM,
    PUBLIC,
    MailTest,
    anchors,
    comment,
    link,
    mail_settings,
    parts,
    submit,
)


def moderators_for(session: Session) -> tuple[Moderator, Moderator]:
    each = make_moderator(session, "mod1", role=Role.MODERATOR, sites=("luac",))
    digest = make_moderator(session, "mod2", role=Role.MODERATOR, sites=("luac",))
    digest.mail_preference = MailPreference.DIGEST
    session.commit()
    return each, digest


def test_moderators_hear_of_held_comments_each_or_as_a_digest(mail: MailTest) -> None:
    site = make_site(mail.session)
    site.notify_emails = ["team@example.gov.uk"]
    mail.session.commit()
    moderators_for(mail.session)
    first = submit(mail.client, author_name="Ada")
    now = dt.datetime.now(dt.UTC)

    assert mail.send(now) == 2  # mod1 and the team; mod2's digest waits
    [to_mod1] = mail.inbox.to("mod1@example.gov.uk")
    [to_team] = mail.inbox.to("team@example.gov.uk")
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

    second = submit(mail.client, author_name="Grace", body="A second thought.")
    assert mail.send(now + dt.timedelta(minutes=5)) == 2  # mod1 and the team
    assert len(mail.inbox.to("mod2@example.gov.uk")) == 0
    assert mail.send(now + dt.timedelta(minutes=61)) == 1
    [digest] = mail.inbox.to("mod2@example.gov.uk")
    assert digest["Subject"] == "2 comments waiting for moderation"
    text, html = parts(digest)
    assert "Ada" in text and "Grace" in text and "A second thought." in html
    assert len([h for h in anchors(html).hrefs if "/mail/act/" in h]) == 6
    assert mail.send(now + dt.timedelta(hours=3)) == 0  # nothing sent twice
    assert {first["id"], second["id"]}


def test_administrators_of_every_site_hear_of_held_comments(mail: MailTest) -> None:
    """An administrator assigned to no site oversees them all; one assigned to some sites, and a
    moderator of another site, hear only of theirs."""
    make_site(mail.session)
    make_site(mail.session, slug="other")
    make_moderator(mail.session, "overseer", role=Role.ADMIN)
    make_moderator(mail.session, "elsewhere", role=Role.ADMIN, sites=("other",))
    make_moderator(mail.session, "othermod", role=Role.MODERATOR, sites=("other",))
    submit(mail.client)
    assert mail.send() == 1
    [held] = mail.inbox.to("overseer@example.gov.uk")
    assert held["Subject"].startswith("Comment waiting for moderation")
    assert "/mail/act/" in parts(held)[1]


def test_a_moderation_link_acts_once_and_only_on_post(mail: MailTest) -> None:
    make_site(mail.session)
    mod1, _ = moderators_for(mail.session)
    sent = submit(mail.client)
    mail.send()
    [message] = mail.inbox.to("mod1@example.gov.uk")
    approve = link(message, "Approve")

    page = mail.client.get(approve)
    assert page.status_code == 200 and "Approve this comment?" in page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert comment(mail.session, sent["id"]).status is CommentStatus.PENDING
    assert (
        mail.session.scalars(select(AuditEvent).where(AuditEvent.action == "approve")).all() == []
    )

    done = mail.client.post(approve)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert comment(mail.session, sent["id"]).status is CommentStatus.APPROVED
    [audit] = mail.session.scalars(select(AuditEvent).where(AuditEvent.action == "approve")).all()
    assert audit.actor == "mod1 (from mail)" and audit.moderator_id == mod1.id

    again = mail.client.post(approve)
    assert again.status_code == 410
    assert (
        len(mail.session.scalars(select(AuditEvent).where(AuditEvent.action == "approve")).all())
        == 1
    )

    forged = approve[:-3] + ("AAA" if not approve.endswith("AAA") else "BBB")
    assert mail.client.get(forged).status_code == 400
    assert mail.client.post(forged).status_code == 400


def test_moderation_links_expire_and_die_with_the_moderators_access(mail: MailTest) -> None:
    make_site(mail.session)
    mod1, _ = moderators_for(mail.session)
    sent = submit(mail.client)
    now = dt.datetime.now(dt.UTC)
    mail.send(now)
    [message] = mail.inbox.to("mod1@example.gov.uk")
    token = link(message, "Reject").rsplit("/", 1)[1]

    with pytest.raises(BadLink) as expired:
        link_actions.act(mail.session, token, secret=TEST_SECRET, now=now + dt.timedelta(hours=25))
    assert expired.value.status == 410

    update_moderator(
        mail.session, mod1, role="moderator", site_slugs=(), actor=Actor("admin"), now=now
    )
    mail.session.commit()
    refused = mail.client.post(link(message, "Reject"))
    assert refused.status_code == 403
    assert comment(mail.session, sent["id"]).status is CommentStatus.PENDING


def test_commenters_hear_of_approval_and_rejection_with_the_reason(mail: MailTest) -> None:
    site = make_site(mail.session)
    site.reject_reasons = ["Off topic"]
    site.comment_policy_url = "https://levellingupadvisorycouncil.blog.gov.uk/comments-policy/"
    admin = make_moderator(mail.session, "admin")
    told = submit(mail.client, author_email="told@example.com", notify=True)
    quiet = submit(mail.client, author_email="quiet@example.com", body="Say nothing to me.")
    rejected = submit(
        mail.client, author_email="told@example.com", body="Off the point.", notify=True
    )
    now = dt.datetime.now(dt.UTC)
    for public_id, action, reason in (
        (told["id"], "approve", None),
        (quiet["id"], "approve", None),
        (rejected["id"], "reject", "Off topic"),
    ):
        moderate_comment(
            mail.session,
            admin,
            public_id,
            action,
            actor=Actor("admin", admin.id),
            now=now,
            reason=reason,
        )
    mail.session.commit()

    assert mail.send(now) == 2
    assert mail.inbox.to("quiet@example.com") == []
    approved, refused = sorted(mail.inbox.to("told@example.com"), key=lambda m: m["Subject"])
    assert approved["Subject"] == "Your comment on From industrial decline to growth is published"
    assert (
        refused["Subject"] == "Your comment on From industrial decline to growth was not published"
    )
    text, html = parts(refused)
    assert "The reason, from our comment policy: Off topic" in text
    assert "Off topic" in html and site.comment_policy_url in anchors(html).hrefs
    for message in (approved, refused):
        unsubscribe = message["List-Unsubscribe"]
        assert re.fullmatch(
            r"<https://comments\.example\.org/mail/unsubscribe/[\w.-]+>", unsubscribe
        )
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (
        f"{ORIGIN}/2024/03/28/from-industrial-decline/#comment-{told['id']}" in parts(approved)[0]
    )


def test_reply_notifications_stop_after_one_click_unsubscribe(mail: MailTest) -> None:
    make_site(mail.session)
    admin = make_moderator(mail.session, "admin")
    actor = Actor("admin", admin.id)
    now = dt.datetime.now(dt.UTC)
    parent = submit(mail.client, author_email="ada@example.com", notify_replies=True)
    moderate_comment(mail.session, admin, parent["id"], "approve", actor=actor, now=now)
    mail.session.commit()
    reply = submit(
        mail.client, author_email="bob@example.com", body="I agree.", parent_id=parent["id"]
    )
    moderate_comment(mail.session, admin, reply["id"], "approve", actor=actor, now=now)
    mail.session.commit()

    mail.send(now)
    [told] = mail.inbox.to("ada@example.com")
    assert told["Subject"] == "A reply to your comment on From industrial decline to growth"
    assert "I agree." in parts(told)[0]
    unsubscribe = urlsplit(told["List-Unsubscribe"].strip("<>")).path
    assert mail.client.get(unsubscribe).status_code == 200  # a scanner's GET changes nothing
    assert comment(mail.session, parent["id"]).notify_replies is True

    one_click = mail.client.post(
        unsubscribe,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 200
    assert comment(mail.session, parent["id"]).notify_replies is False
    another = submit(
        mail.client, author_email="cy@example.com", body="Me too.", parent_id=parent["id"]
    )
    moderate_comment(mail.session, admin, another["id"], "approve", actor=actor, now=now)
    mail.session.commit()
    assert mail.send(now + dt.timedelta(minutes=1)) == 0
    assert len(mail.inbox.to("ada@example.com")) == 1
    assert mail.client.post(unsubscribe[:-4] + "xxxx").status_code == 400


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
        assert not re.search(
            r"(?i)(https?|javascript):", part.replace(PUBLIC, "").replace(ORIGIN, "")
        )
    assert "<script>" not in html and "&lt;script&gt;" in html  # the name, escaped


def test_a_hostile_comment_yields_mail_with_nothing_live_in_it(mail: MailTest) -> None:
    make_site(mail.session)
    make_moderator(mail.session, "mod1", role=Role.MODERATOR, sites=("luac",))
    admin = make_moderator(mail.session, "admin")
    actor = Actor("admin", admin.id)
    now = dt.datetime.now(dt.UTC)
    injected = mail.client.post(
        "/api/v1/sites/luac/comments",
        json=comment_json(author_name="Eve\r\nBcc: victim@example.com"),
    )
    assert injected.status_code == 422  # no second line in a name, so no header from it

    parent = submit(
        mail.client,
        author_name=HOSTILE_NAME,
        author_email="eve@example.com",
        body=HOSTILE_BODY,
        post_title=HOSTILE_TITLE,
        notify=True,
        notify_replies=True,
    )
    mail.send()  # the held notice to mod1 and the admin (of every site)
    moderate_comment(mail.session, admin, parent["id"], "approve", actor=actor, now=now)
    mail.session.commit()
    reply = submit(
        mail.client,
        author_name=HOSTILE_NAME,
        author_email="mallory@example.com",
        body='<iframe src="http://evil.example"></iframe> Visit https://evil.example/win now!',
        parent_id=parent["id"],
    )
    moderate_comment(mail.session, admin, reply["id"], "approve", actor=actor, now=now)
    mail.session.commit()
    mail.send()

    kinds = {m["Subject"].split(" on ")[0] for m in mail.inbox.messages}
    assert kinds == {
        "Comment waiting for moderation",
        "Your comment",
        "A reply to your comment",
    }, kinds
    # The reply was approved before its held notices went, so they were dropped as stale.
    assert len(mail.inbox.messages) == 4
    for message in mail.inbox.messages:
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


def test_mail_waits_while_the_smtp_server_is_down_and_is_sent_later(mail: MailTest) -> None:
    make_site(mail.session)
    make_moderator(mail.session, "mod1", role=Role.MODERATOR, sites=("luac",))
    submit(mail.client)
    submit(mail.client, body="Another one.")
    mail.server.stop()
    now = dt.datetime.now(dt.UTC)

    assert mail.send(now) == 1  # one tried; the other released, not counted
    mail.session.expire_all()
    rows = mail.session.scalars(select(OutgoingMail).order_by(OutgoingMail.id)).all()
    assert [r.status for r in rows] == [MailStatus.PENDING, MailStatus.PENDING]
    assert rows[0].attempts == 1 and rows[0].next_attempt_at > now
    assert "ConnectionRefusedError" in (rows[0].last_error or "")
    assert rows[1].attempts == 0 and rows[1].lease_owner is None

    mail.server.start()
    assert mail.send(now + dt.timedelta(minutes=2)) == 2
    assert len(mail.inbox.to("mod1@example.gov.uk")) == 2
    mail.session.expire_all()
    assert {r.status for r in mail.session.scalars(select(OutgoingMail))} == {MailStatus.SENT}


def test_two_workers_never_claim_the_same_mail(mail: MailTest) -> None:
    make_site(mail.session)
    make_moderator(mail.session, "mod1", role=Role.MODERATOR, sites=("luac",))
    for n in range(3):
        submit(mail.client, body=f"Comment {n}.")
    now = dt.datetime.now(dt.UTC)
    with mail.sessions() as one:
        first = claim_due(one, "worker-1", now=now, digest_after=dt.timedelta(hours=1), limit=2)
        one.commit()
    with mail.sessions() as two:
        second = claim_due(two, "worker-2", now=now, digest_after=dt.timedelta(hours=1))
        two.commit()
    assert len(first) == 2 and len(second) == 1
    assert not {i for b in first for i in b} & {i for b in second for i in b}
    with mail.sessions() as three:
        assert claim_due(three, "worker-3", now=now, digest_after=dt.timedelta(hours=1)) == []


def test_nothing_is_queued_while_mail_is_off(client: FlaskClient, session: Session) -> None:
    make_site(session)
    make_moderator(session, "mod1", role=Role.MODERATOR, sites=("luac",))
    response = client.post("/api/v1/sites/luac/comments", json={**comment_json(), "notify": True})
    assert response.status_code == 202
    assert session.scalars(select(OutgoingMail)).all() == []


def test_moderators_choose_their_own_mail_preference(mail: MailTest) -> None:
    make_site(mail.session)
    mod1 = make_moderator(mail.session, "mod1", role=Role.MODERATOR, sites=("luac",))
    token = make_token(mail.session, mod1)
    auth = {"Authorization": f"Bearer {token}"}
    me = mail.client.get("/api/v1/moderation/me", headers=auth).get_json()
    assert me["login"] == "mod1" and me["mail_preference"] == "each"
    changed = mail.client.patch(
        "/api/v1/moderation/me", json={"mail_preference": "digest"}, headers=auth
    )
    assert changed.status_code == 200 and changed.get_json()["mail_preference"] == "digest"
    bad = mail.client.patch(
        "/api/v1/moderation/me", json={"mail_preference": "hourly"}, headers=auth
    )
    assert bad.status_code == 422
    not_mine = mail.client.patch("/api/v1/moderation/me", json={"role": "admin"}, headers=auth)
    assert not_mine.status_code == 422

    login(mail.client, "mod1")
    page = mail.client.get("/moderate/account").get_data(as_text=True)
    assert 'value="digest" checked' in page
    saved = mail.client.post(
        "/moderate/account", data={"mail_preference": "off", "csrf_token": csrf_from(page)}
    )
    assert saved.status_code == 303
    mail.session.expire_all()
    assert mail.session.get_one(Moderator, mod1.id).mail_preference is MailPreference.OFF
    audits = mail.session.scalars(
        select(AuditEvent.after).where(AuditEvent.action == "moderator.mail_preference")
    ).all()
    assert [a["mail_preference"] for a in audits] == ["digest", "off"]
    submit(mail.client)
    assert mail.session.scalars(select(OutgoingMail)).all() == []  # mod1 wants nothing


def test_the_worker_command_sends_the_outbox(tmp_path: Path, mail: MailTest) -> None:
    """`moderation worker --once`, a real process, sends what a request queued."""
    from tests.helpers import run_command

    mail_env = {
        "MODERATION_SMTP_HOST": "127.0.0.1",
        "MODERATION_SMTP_PORT": str(mail.server.port),
        "MODERATION_SMTP_SECURITY": "none",
        "MODERATION_MAIL_FROM": FROM,
        "MODERATION_PUBLIC_URL": PUBLIC,
    }
    app = create_app(
        mail_settings(mail.server.port, database_url=f"sqlite:///{tmp_path / 'cli.db'}"),
    )
    engine = app.extensions["moderation.engine"]
    schema.upgrade(engine)
    with app.extensions["moderation.sessionmaker"]() as session:
        make_site(session)
        make_moderator(session, "mod1", role=Role.MODERATOR, sites=("luac",))
    posted = app.test_client().post("/api/v1/sites/luac/comments", json=comment_json())
    assert posted.status_code == 202
    engine.dispose()

    worked = run_command(tmp_path, "worker", "--once", env=mail_env)
    assert worked.returncode == 0, worked.stderr
    assert "and 1 mails" in worked.stdout
    [message] = mail.inbox.to("mod1@example.gov.uk")
    assert link(message, "Approve").startswith("/mail/act/")


MAIL_TABLES = (
    "mail_outbox, used_links, audit_events, events, comments, posts, moderator_sites, "
    "login_sessions, api_tokens, moderators, sites"
)


@pytest.mark.concurrency
def test_two_workers_on_postgresql_send_each_mail_once(engine: Engine, mail: MailTest) -> None:
    """Two workers at once, each with its own connection: SKIP LOCKED claims, no mail twice."""
    if engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL (SKIP LOCKED between connections)")
    sessions = sessionmaker(engine, expire_on_commit=False, info={MAIL_ENABLED: True})
    try:
        with sessions() as session:
            make_site(session)
            make_moderator(session, "mod1", role=Role.MODERATOR, sites=("luac",))
            for n in range(30):
                submit_comment(
                    session, "luac",
                    CommentSubmission(post="/p/", author_name="Ada", author_email="ada@example.com",
                                      body=f"Comment number {n}."),
                    now=dt.datetime.now(dt.UTC),
                )  # fmt: skip
            session.commit()
        settings = mail_settings(mail.server.port)
        start = threading.Barrier(2)
        sent: list[int] = []

        def work(owner: str) -> None:
            start.wait()
            idle = 0
            while idle < 2:
                done = send_due_mail(
                    sessions, settings, secret=TEST_SECRET, now=dt.datetime.now(dt.UTC),
                    owner=owner, limit=4,
                )  # fmt: skip
                sent.append(done)
                idle = idle + 1 if done == 0 else 0

        workers = [threading.Thread(target=work, args=(f"worker-{n}",)) for n in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        ids = [m["Message-ID"] for m in mail.inbox.messages]
        assert len(ids) == 30 and len(set(ids)) == 30 and sum(sent) == 30
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {MAIL_TABLES} RESTART IDENTITY CASCADE"))


def test_administrators_hear_when_a_webhook_endpoint_is_disabled(mail: MailTest) -> None:
    make_site(mail.session)
    make_moderator(mail.session, "admin1", role=Role.ADMIN)
    make_moderator(mail.session, "mod1", role=Role.MODERATOR, sites=("luac",))
    now = dt.datetime.now(dt.UTC)
    with running_consumer() as consumer:
        consumer.default = "410"
        endpoint = create_endpoint(
            mail.session, actor=Actor("test"), url=consumer.url, allow_http=True, now=now
        )
        mail.session.commit()
        submit(mail.client)
        settings = mail_settings(
            mail.server.port, webhook_allow_http=True, webhook_allowed_networks="127.0.0.0/8"
        )
        assert deliver_due(mail.sessions, settings, now=now, owner="test") == 1
    mail.session.expire_all()
    assert not mail.session.get_one(type(endpoint), endpoint.id).enabled

    mail.send(now)
    [notice] = mail.inbox.to("admin1@example.gov.uk")
    assert notice["Subject"] == "Webhooks stopped: an endpoint was disabled"
    text, html = parts(notice)
    assert consumer.url in text and "the consumer answered 410 Gone" in text
    assert f"{PUBLIC}/moderate/webhooks/{endpoint.public_id}" in text
    assert anchors(html).hrefs == [f"{PUBLIC}/moderate/webhooks/{endpoint.public_id}"]
    # Moderators hear of the held comment only; no one hears twice.
    assert all("Webhooks" not in m["Subject"] for m in mail.inbox.to("mod1@example.gov.uk"))
    assert mail.send(now) == 0
