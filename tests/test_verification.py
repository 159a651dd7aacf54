"""Verified email: confirmation links (used twice, expired, forged), the trusted policy, the
no-JS form's message, retention of comments never confirmed, and the switch needing mail."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation import schema, verification
from moderation.actions import moderate_comment, reply_as_blog
from moderation.cli import main
from moderation.db import make_engine
from moderation.events import Actor
from moderation.mail.links import BadLink, address_hash
from moderation.models import (
    AuditEvent,
    Comment,
    CommentStatus,
    Event,
    ModerationPolicy,
    OutgoingMail,
    Role,
    Site,
    VerifiedAddress,
)
from moderation.personal_data import Retention, erase_personal_data, purge_expired
from moderation.sites import update_site
from tests.helpers import POST_KEY, TEST_SECRET, comment_json, make_moderator, make_site, make_token
from tests.mailserver import MailTest, comment, link, parts, submit

ADDRESS = "ada@example.com"


def verifying_site(session: Session, policy: ModerationPolicy = ModerationPolicy.ALL) -> None:
    site = make_site(session)
    update_site(
        session,
        site,
        {"verify_email": True, "policy": policy.value},
        actor=Actor("admin"),
        now=dt.datetime.now(dt.UTC),
    )
    session.commit()


def confirmation(mail: MailTest, address: str = ADDRESS) -> str:
    mail.send()
    message = mail.inbox.to(address)[-1]
    assert message["Subject"] == "Confirm your email address to send your comment to Blog luac"
    return link(message, "Confirm my email address")


def test_a_comment_waits_for_its_author_to_confirm_the_address(mail: MailTest) -> None:
    verifying_site(mail.session)
    make_moderator(mail.session, "mod1", role=Role.MODERATOR, sites=("luac",))
    sent = submit(mail.client)
    assert sent["status"] == "pending"
    assert "check your email and open its link" in sent["message"]
    assert comment(mail.session, sent["id"]).status is CommentStatus.UNCONFIRMED
    assert mail.session.scalars(select(Event)).all() == []  # comment.submitted only once confirmed
    queue_token = make_token(mail.session, make_moderator(mail.session, "admin"))
    listed = mail.client.get(
        "/api/v1/moderation/comments?status=all",
        headers={"Authorization": f"Bearer {queue_token}"},
    )
    assert listed.get_json()["comments"] == []
    public = mail.client.get(f"/api/v1/sites/luac/comments?post={POST_KEY}")
    assert public.get_json()["comments"] == []

    confirm = confirmation(mail)
    assert mail.inbox.to("mod1@example.gov.uk") == []  # nothing for moderators yet
    page = mail.client.get(confirm)
    assert page.status_code == 200 and "Confirm my email address" in page.get_data(as_text=True)
    assert (
        comment(mail.session, sent["id"]).status is CommentStatus.UNCONFIRMED
    )  # a GET changes nothing

    done = mail.client.post(confirm)
    assert done.status_code == 200
    assert "gone to the moderators" in done.get_data(as_text=True)
    assert comment(mail.session, sent["id"]).status is CommentStatus.PENDING
    [event] = mail.session.scalars(select(Event)).all()
    assert event.type == "comment.submitted" and event.payload["data"]["status"] == "pending"
    [remembered] = mail.session.scalars(select(VerifiedAddress)).all()
    assert remembered.address_hash == address_hash(TEST_SECRET, ADDRESS)
    assert ADDRESS not in remembered.address_hash
    mail.send()
    assert len(mail.inbox.to("mod1@example.gov.uk")) == 1

    again = mail.client.post(confirm)
    assert again.status_code == 410 and "already been used" in again.get_data(as_text=True)
    forged = mail.client.post(confirm[:-2] + ("xx" if not confirm.endswith("xx") else "yy"))
    assert forged.status_code == 400
    assert len(mail.session.scalars(select(Event)).all()) == 1

    later = submit(mail.client, body="A later comment from a verified address.")
    assert later["status"] == "pending"  # a verified address is not asked again
    assert "once a moderator has approved it" in later["message"]


def test_an_expired_confirmation_link_changes_nothing(mail: MailTest) -> None:
    verifying_site(mail.session)
    sent = submit(mail.client)
    token = confirmation(mail).rsplit("/", 1)[1]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=49)
    with pytest.raises(BadLink) as expired:
        verification.confirm_comment(mail.session, token, secret=TEST_SECRET, now=later)
    assert expired.value.status == 410 and "expired" in expired.value.message
    assert comment(mail.session, sent["id"]).status is CommentStatus.UNCONFIRMED
    assert mail.session.scalars(select(VerifiedAddress)).all() == []


def test_a_trusted_address_is_published_on_confirmation_only(mail: MailTest) -> None:
    verifying_site(mail.session, ModerationPolicy.TRUSTED)
    admin = make_moderator(mail.session, "admin")
    first = submit(mail.client)
    assert mail.client.post(confirmation(mail)).status_code == 200
    moderate_comment(
        mail.session,
        admin,
        first["id"],
        "approve",
        actor=Actor("admin", admin.id),
        now=dt.datetime.now(dt.UTC),
    )
    mail.session.commit()

    # Anyone may type a trusted address: the comment waits for the address's owner to confirm.
    claimed = submit(mail.client, body="Typed by someone who knows Ada's address.")
    assert claimed["status"] == "pending"
    assert comment(mail.session, claimed["id"]).status is CommentStatus.UNCONFIRMED
    done = mail.client.post(confirmation(mail))
    assert "Your comment is published" in done.get_data(as_text=True)
    published = comment(mail.session, claimed["id"])
    assert published.status is CommentStatus.APPROVED and published.moderated_by_id is None
    audits = mail.session.scalars(
        select(AuditEvent).where(AuditEvent.comment_id == published.id).order_by(AuditEvent.id)
    ).all()
    assert [(a.action, a.actor) for a in audits] == [
        ("confirm", "commenter (email address confirmed)"),
        ("approve", "automatic (trusted address)"),
    ]
    types = mail.session.scalars(
        select(Event.type).where(Event.comment_id == published.id).order_by(Event.id)
    ).all()
    assert types == ["comment.submitted", "comment.approved"]
    thread = mail.client.get(f"/api/v1/sites/luac/comments?post={POST_KEY}").get_json()["comments"]
    assert claimed["id"] in {c["id"] for c in thread}


def test_the_no_js_form_tells_the_commenter_to_check_their_email(mail: MailTest) -> None:
    verifying_site(mail.session)
    page = mail.client.get(f"/embed/luac/thread?post={POST_KEY}&page=1").get_data(as_text=True)
    assert "check your email and open its link" in page
    assert 'name="notify"' in page and 'name="notify_replies"' in page
    welsh = mail.client.get(f"/embed/luac/thread?post={POST_KEY}&page=1&lang=cy").get_data(
        as_text=True
    )
    assert "gwiriwch eich e-bost" in welsh and "pan fydd rhywun yn ateb fy sylw" in welsh
    form: dict[str, Any] = {
        k: v for k, v in comment_json().items() if k not in ("post", "post_title")
    }
    posted = mail.client.post(
        f"/embed/luac/thread?post={POST_KEY}&page=1", data={**form, "notify": "on"}
    )
    assert posted.status_code == 303 and posted.headers["Location"].endswith("#comment-submitted")
    stored = mail.session.scalars(select(Comment)).one()
    assert stored.status is CommentStatus.UNCONFIRMED and stored.notify_decision is True
    assert stored.notify_replies is False
    assert [m.kind for m in mail.session.scalars(select(OutgoingMail))] == ["confirm"]


def answer(web: FlaskClient, **overrides: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    """A JSON submission's status code, body and headers, but for the ids (random each time)."""
    response = web.post("/api/v1/sites/luac/comments", json=comment_json(**overrides))
    body = dict(response.get_json())
    assert body.pop("id")
    headers = {k: v for k, v in response.headers.items() if k != "X-Request-ID"}
    return response.status_code, body, headers


def test_the_submit_answer_does_not_tell_whether_an_address_was_verified(mail: MailTest) -> None:
    """An address verified before (comment pending) and a new one (comment unconfirmed) get the
    same status, message, fields and headers, from the JSON API and from the no-JS form."""
    verifying_site(mail.session)
    now = dt.datetime.now(dt.UTC)
    verification.remember(mail.session, TEST_SECRET, "known@example.com", now=now)
    mail.session.commit()
    known = answer(mail.client, author_email="known@example.com", body="From a known address.")
    new = answer(mail.client, author_email="new@example.com", body="From a new address.")
    filed = answer(mail.client, author_email="bot@example.com", body="Spam.", website="x")
    welsh_known = answer(mail.client, author_email="known@example.com", body="Sylw.", lang="cy")
    welsh_new = answer(mail.client, author_email="new@example.com", body="Sylw arall.", lang="cy")
    stored = {c.author_email: c.status for c in mail.session.scalars(select(Comment))}
    assert stored["known@example.com"] is CommentStatus.PENDING
    assert stored["new@example.com"] is CommentStatus.UNCONFIRMED
    assert stored["bot@example.com"] is CommentStatus.SPAM
    assert known == new == filed
    assert known[0] == 202 and known[1]["status"] == "pending"
    assert "check your email and open its link" in known[1]["message"]
    assert welsh_known == welsh_new and "gwiriwch eich e-bost" in welsh_new[1]["message"]

    # A reply: its own wording, the same for both.
    mail.session.scalars(select(Comment)).first().status = CommentStatus.APPROVED  # type: ignore[union-attr]
    parent = mail.session.scalars(
        select(Comment.public_id).where(Comment.status == CommentStatus.APPROVED)
    ).one()
    mail.session.commit()
    replies = [
        answer(mail.client, author_email=address, body=f"A reply from {address}.", parent_id=parent)
        for address in ("known@example.com", "new@example.com")
    ]
    assert replies[0] == replies[1] and "Your reply will be published" in replies[0][1]["message"]

    # The no-JS form: the same redirect, to the same notice.
    form: dict[str, Any] = {
        k: v for k, v in comment_json().items() if k not in ("post", "post_title")
    }
    posted = [
        mail.client.post(
            f"/embed/luac/thread?post={POST_KEY}",
            data={**form, "author_email": address, "body": f"No script, {address}."},
        )
        for address in ("known@example.com", "new@example.com")
    ]
    assert [p.status_code for p in posted] == [303, 303]
    headers = [{k: v for k, v in p.headers.items() if k != "X-Request-ID"} for p in posted]
    assert headers[0] == headers[1]
    assert posted[0].headers["Location"].endswith("#comment-submitted")


def test_unconfirmed_comments_are_purged_and_erasure_forgets_the_verification(
    mail: MailTest,
) -> None:
    verifying_site(mail.session)
    waiting = submit(mail.client)
    confirmed = submit(mail.client, author_email="grace@example.com", body="Grace writes too.")
    assert mail.client.post(confirmation(mail, "grace@example.com")).status_code == 200
    now = dt.datetime.now(dt.UTC)
    waiting_id = comment(mail.session, waiting["id"]).id

    report = purge_expired(
        mail.session, Retention(unconfirmed_days=7), now=now + dt.timedelta(days=6)
    )
    assert report.unconfirmed_deleted == 0
    report = purge_expired(
        mail.session, Retention(unconfirmed_days=7), now=now + dt.timedelta(days=8), dry_run=True
    )
    assert report.unconfirmed_deleted == 1
    assert comment(mail.session, waiting["id"]).status is CommentStatus.UNCONFIRMED
    purge_expired(mail.session, Retention(unconfirmed_days=7), now=now + dt.timedelta(days=8))
    mail.session.commit()
    assert mail.session.scalars(select(Comment.public_id)).all() == [confirmed["id"]]
    # Its confirmation mail went with it.
    assert (
        mail.session.scalars(
            select(OutgoingMail).where(OutgoingMail.comment_id == waiting_id)
        ).all()
        == []
    )

    assert verification.is_verified(mail.session, TEST_SECRET, "grace@example.com")
    erase_personal_data(
        mail.session, "grace@example.com", actor=Actor("dpo"), now=now, secret=TEST_SECRET
    )
    assert not verification.is_verified(mail.session, TEST_SECRET, "grace@example.com")


def test_verification_cannot_be_switched_on_while_mail_is_off(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = make_token(session, make_moderator(session, "admin"))
    response = client.patch(
        "/api/v1/moderation/sites/luac",
        json={"verify_email": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 422
    message = response.get_json()["error"]["fields"]["verify_email"]
    assert message.startswith("Mail is not set up on this server")
    assert "MODERATION_" not in message  # the docs name the settings, not the UI (issue 19)


def test_notification_addresses_are_checked_and_verification_switches_on_with_mail(
    mail: MailTest,
) -> None:
    make_site(mail.session)
    token = make_token(mail.session, make_moderator(mail.session, "admin"))
    auth = {"Authorization": f"Bearer {token}"}
    injected = mail.client.patch(
        "/api/v1/moderation/sites/luac",
        json={"notify_emails": ["team@example.gov.uk\r\nBcc: victim@example.com"]},
        headers=auth,
    )
    assert injected.status_code == 422
    saved = mail.client.patch(
        "/api/v1/moderation/sites/luac",
        json={"notify_emails": ["Team@Example.gov.uk"], "verify_email": True},
        headers=auth,
    )
    assert saved.status_code == 200, saved.get_data(as_text=True)
    body = saved.get_json()
    assert body["notify_emails"] == ["Team@example.gov.uk"] and body["verify_email"] is True
    [audit] = mail.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "site.update")
    ).all()
    assert audit.after["verify_email"] is True


def test_the_check_command_names_sites_that_verify_while_mail_is_off(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'check.db'}"
    engine = make_engine(url)
    schema.upgrade(engine)
    with Session(engine) as session:
        make_site(session).verify_email = True
        session.commit()
    engine.dispose()
    env = {
        "MODERATION_ENV": "testing",
        "MODERATION_DATABASE_URL": url,
        "MODERATION_SECRET_KEY": TEST_SECRET,
    }
    result = CliRunner().invoke(main, ["check"], env=env)
    assert result.exit_code == 1
    assert (
        "site luac asks commenters to confirm their email address, but mail is off" in result.output
    )


def test_a_welsh_commenter_gets_mail_and_link_pages_in_welsh(mail: MailTest) -> None:
    verifying_site(mail.session)
    admin = make_moderator(mail.session, "admin")
    # From the Welsh embed: the script sends lang; the no-JS form's address carries it.
    sent = submit(mail.client, lang="cy-GB", notify="true")
    assert "gwiriwch eich e-bost ac agorwch" in sent["message"]  # what the Welsh form says
    form: dict[str, Any] = {
        k: v for k, v in comment_json().items() if k not in ("post", "post_title")
    }
    posted = mail.client.post(
        f"/embed/luac/thread?post={POST_KEY}&page=1&lang=cy",
        data={**form, "author_email": "bryn@example.com", "body": "Diolch am y blogbost hwn."},
    )
    assert posted.status_code == 303
    english = submit(mail.client, author_email="eve@example.com", body="In English, please.")
    stored = {c.author_email: c.lang for c in mail.session.scalars(select(Comment))}
    assert stored == {ADDRESS: "cy", "bryn@example.com": "cy", "eve@example.com": "en"}

    mail.send()
    [welsh] = mail.inbox.to(ADDRESS)
    assert welsh["Subject"] == ("Cadarnhewch eich cyfeiriad e-bost i anfon eich sylw at Blog luac")
    text, html = parts(welsh)
    assert text.startswith("Diolch am eich sylw ar Blog luac.")
    assert "Ada Lovelace ar From industrial decline to growth:" in text
    assert "Mae'r ddolen yn gweithio unwaith, am 48 awr." in text
    assert '<html lang="cy">' in html and "Confirm" not in html
    assert mail.inbox.to("bryn@example.com")[0]["Subject"] == welsh["Subject"]
    [in_english] = mail.inbox.to("eve@example.com")
    assert in_english["Subject"] == "Confirm your email address to send your comment to Blog luac"
    assert '<html lang="en">' in parts(in_english)[1]

    confirm = link(welsh, "Cadarnhau fy nghyfeiriad e-bost")
    page = mail.client.get(confirm).get_data(as_text=True)
    assert '<html lang="cy">' in page and "Neidio i&#39;r prif gynnwys" in page
    assert "<h1>Cadarnhewch eich cyfeiriad e-bost</h1>" in page
    assert "Cadarnhewch mai chi ysgrifennodd y sylw hwn ar Blog luac:" in page
    done = mail.client.post(confirm).get_data(as_text=True)
    assert "Diolch: mae eich cyfeiriad e-bost wedi&#39;i gadarnhau" in done
    assert "Mae eich sylw wedi mynd at y cymedrolwyr." in done
    used = mail.client.post(confirm)  # its error page is Welsh too, the link being genuine
    assert used.status_code == 410 and '<html lang="cy">' in (page := used.get_data(as_text=True))
    assert (
        "Mae&#39;r ddolen hon eisoes wedi&#39;i defnyddio: mae eich sylw wedi&#39;i gadarnhau"
        in page
    )
    forged = mail.client.get(confirm[:-2] + ("xx" if not confirm.endswith("xx") else "yy"))
    assert forged.status_code == 400 and '<html lang="en">' in forged.get_data(as_text=True)
    [submitted] = mail.session.scalars(select(Event)).all()
    assert submitted.payload["data"]["lang"] == "cy"  # for webhook consumers that write to them
    mail.send()
    [held] = mail.inbox.to("admin@example.gov.uk")  # moderators read English
    assert held["Subject"] == "Comment waiting for moderation on From industrial decline to growth"
    assert '<html lang="en">' in parts(held)[1]

    moderate_comment(
        mail.session, admin, sent["id"], "approve", actor=Actor("admin", admin.id),
        now=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    mail.session.commit()
    mail.send()
    approved = mail.inbox.to(ADDRESS)[-1]
    assert (
        approved["Subject"] == "Mae eich sylw ar From industrial decline to growth wedi'i gyhoeddi"
    )
    text, html = parts(approved)
    assert "Mae eich sylw ar Blog luac wedi'i gymeradwyo a'i gyhoeddi." in text
    assert "Ei weld ar y blogbost:" in text
    assert "Rydych yn cael yr e-bost hwn am i chi ofyn am gael gwybod am eich sylw." in text
    unsubscribe = link(approved, "Atal y negeseuon e-bost hyn")
    page = mail.client.get(unsubscribe).get_data(as_text=True)
    assert '<html lang="cy">' in page and "Atal negeseuon e-bost am eich sylwadau?" in page
    stopped = mail.client.post(unsubscribe).get_data(as_text=True)
    assert "Ni fyddwch yn cael rhagor o negeseuon e-bost am eich sylwadau" in stopped
    assert comment(mail.session, sent["id"]).notify_decision is False
    assert english["status"] == "pending"

    # Asked again with the next comments: a rejection with its reason, and a reply.
    now = dt.datetime.now(dt.UTC)
    actor = Actor("admin", admin.id)
    mail.session.scalars(select(Site)).one().reject_reasons = ["Oddi ar y pwnc"]
    refused = submit(mail.client, lang="cy", notify="true", body="Sylw arall.")
    moderate_comment(
        mail.session, admin, refused["id"], "reject", actor=actor, now=now, reason="Oddi ar y pwnc"
    )
    asked = submit(mail.client, lang="cy", notify_replies="true", body="Cwestiwn i'r tîm.")
    reply_as_blog(
        mail.session, admin, asked["id"], "Diolch am ofyn.", actor=actor, now=now,
        approve_first=True,
    )  # fmt: skip
    mail.session.commit()
    mail.send()
    rejected, replied = mail.inbox.to(ADDRESS)[-2:]
    assert rejected["Subject"] == (
        "Ni chafodd eich sylw ar From industrial decline to growth ei gyhoeddi"
    )
    assert "Y rheswm, o'n polisi sylwadau: Oddi ar y pwnc" in parts(rejected)[0]
    assert replied["Subject"] == "Ateb i'ch sylw ar From industrial decline to growth"
    text = parts(replied)[0]
    assert "Mae tîm y blog wedi ateb eich sylw ar Blog luac." in text
    assert "Darllen yr ateb ar y blogbost:" in text


@pytest.mark.parametrize("lang", ["c y", "cy_GB", " cy", "", "x" * 36, "<b>cy</b>", None, 7])
def test_a_language_that_is_not_a_language_tag_is_refused(
    client: FlaskClient, session: Session, lang: object
) -> None:
    make_site(session)
    response = client.post("/api/v1/sites/luac/comments", json={**comment_json(), "lang": lang})
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"lang"}
