"""Bans (issue 18, section 3): email, domain and network bans per site or for every site, what a
banned sender is told, expiry, removing a banned author's recent comments, the API's rules,
export, erasure and audit."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, delete, event, select
from sqlalchemy.orm import Session, sessionmaker

from moderation import actions, bans, comments, spam
from moderation.errors import ValidationFailed
from moderation.events import Actor
from moderation.models import (
    AuditEvent,
    Ban,
    BanKind,
    Comment,
    CommentStatus,
    Event,
    Moderator,
    Post,
    Role,
    utcnow,
)
from moderation.moderators import create_moderator, password_hasher
from moderation.personal_data import (
    Retention,
    erase_personal_data,
    export_personal_data,
    purge_expired,
)
from moderation.sites import update_site
from moderation.transfer import export_records, import_document
from moderation.validation import parse_submission
from tests.helpers import (
    POST_KEY,
    comment_json,
    csrf_from,
    good_token,
    json_of,
    login,
    make_moderator,
    make_site,
    make_token,
    stored,
)

BANS = "/api/v1/moderation/bans"
ADMIN = Actor("editor", None, "cli")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_token(session: Session) -> str:
    return make_token(session, make_moderator(session))


def ban(client: FlaskClient, token: str, expected: int = 201, **fields: Any) -> Any:
    response = client.post(BANS, json={"reason": "serial abuse", **fields}, headers=auth(token))
    assert response.status_code == expected, response.get_data(as_text=True)
    return json_of(response)


def send(
    client: FlaskClient, address: str = "203.0.113.7", *, site: str = "luac", **fields: str
) -> Any:
    """Submit as the embed does, from ``address``; return the response."""
    data = comment_json(form_token=good_token(site=site)) | fields
    return client.post(
        f"/api/v1/sites/{site}/comments", json=data, environ_base={"REMOTE_ADDR": address}
    )


def sent(client: FlaskClient, address: str = "203.0.113.7", **fields: str) -> Comment:
    response = send(client, address, **fields)
    assert response.status_code == 202, response.get_data(as_text=True)
    return stored(client.application, json_of(response)["id"])


def banned(comment: Comment) -> bool:
    return comment.status is CommentStatus.SPAM and any(
        s["check"] == "ban" for s in comment.signals
    )


# Matching --------------------------------------------------------------------------------------


def test_an_email_ban_matches_the_address_however_it_is_written(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = admin_token(session)
    made = ban(client, token, site="luac", email="  Ada.Lovelace@EXAMPLE.com ")
    assert made["email"] == "ada.lovelace@example.com"
    assert made["domain"] is None and made["network"] is None and made["active"] is True
    for spelling in (
        "ada.lovelace@example.com",
        "ADA.LOVELACE@Example.Com",
        "Ada.Lovelace@example.COM",
    ):
        comment = sent(client, author_email=spelling)
        assert banned(comment), spelling
        assert "ada" not in json.dumps(comment.signals).lower()  # no address in the reason
    # A composed and a decomposed accent are one address (email-validator's NFC).
    ban(client, token, site="luac", email="Zoë@example.com")
    assert banned(sent(client, author_email="zoe\u0308@example.com"))
    assert not banned(sent(client, author_email="ada.lovelace@example.org"))
    assert not banned(sent(client, author_email="ada.lovelace2@example.com"))


def test_a_domain_ban_matches_the_domain_and_its_subdomains_only(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = admin_token(session)
    assert ban(client, token, site="luac", domain="@Spam.Example.")["domain"] == "spam.example"
    assert banned(sent(client, author_email="a@spam.example"))
    assert banned(sent(client, author_email="b@MAIL.spam.example"))
    assert not banned(sent(client, author_email="c@notspam.example"))
    assert not banned(sent(client, author_email="d@spam.example.org"))
    # Internationalised domains are stored in their ASCII form and match either way.
    assert ban(client, token, site="luac", domain="Ärger.de")["domain"] == "xn--rger-koa.de"
    assert banned(sent(client, author_email="e@ärger.de"))


def test_a_network_ban_matches_the_reduced_client_network(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = admin_token(session)
    assert ban(client, token, site="luac", network="203.0.7.9/16")["network"] == "203.0.0.0/16"
    assert banned(sent(client, "203.0.113.7"))
    assert banned(sent(client, "::ffff:203.0.1.2"))  # IPv4 carried in IPv6 is the same client
    assert not banned(sent(client, "203.1.113.7"))
    # One address stands for the /24 (or /48) that a comment keeps of it.
    assert ban(client, token, site="luac", network="198.51.100.9")["network"] == "198.51.100.0/24"
    assert banned(sent(client, "198.51.100.200"))
    assert ban(client, token, site="luac", network="2001:db8:abcd::/40")["network"]
    assert banned(sent(client, "2001:db8:abcd:12::1"))
    assert not banned(sent(client, "2001:db8:bbcd::1"))
    # Narrower than a comment keeps, or wider than a /8: refused, without echoing the value.
    for refused in ("203.0.113.0/25", "10.0.0.0/7", "2001:db8::/49", "nonsense", "::/0"):
        error = ban(client, token, 422, site="luac", network=refused)["error"]
        assert set(error["fields"]) == {"network"} and refused not in json.dumps(error)


def test_a_site_ban_acts_on_its_site_and_an_admins_ban_on_every_site(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_site(session, "other", "https://other.example.org")
    token = admin_token(session)
    ban(client, token, site="other", email="ada@example.com")
    assert not banned(sent(client, author_email="ada@example.com"))
    assert banned(sent(client, author_email="ada@example.com", site="other"))
    everywhere = ban(client, token, email="bob@example.com")
    assert everywhere["site"] is None
    assert banned(sent(client, author_email="bob@example.com"))
    assert banned(sent(client, author_email="bob@example.com", site="other"))


def test_a_moderator_bans_on_their_own_sites_only(client: FlaskClient, session: Session) -> None:
    make_site(session)
    make_site(session, "other", "https://other.example.org")
    admin = admin_token(session)
    everywhere = ban(client, admin, email="bob@example.com")
    elsewhere = ban(client, admin, site="other", email="cy@example.com")
    mod = make_token(session, make_moderator(session, "mo", role=Role.MODERATOR, sites=("luac",)))
    assert ban(client, mod, 422, email="ada@example.com")["error"]["fields"]["site"]
    assert ban(client, mod, 422, site="other", email="ada@example.com")["error"]["fields"]["site"]
    mine = ban(client, mod, site="luac", email="ada@example.com")
    listed = json_of(client.get(BANS, headers=auth(mod)))["bans"]
    # Their site's bans and the every-site bans that act on it; not another site's.
    assert {b["id"] for b in listed} == {mine["id"], everywhere["id"]}
    assert client.get(f"{BANS}?site=other", headers=auth(mod)).status_code == 404
    narrowed = json_of(client.get(f"{BANS}?site=other", headers=auth(admin)))["bans"]
    assert {b["id"] for b in narrowed} == {elsewhere["id"], everywhere["id"]}
    assert client.delete(f"{BANS}/{elsewhere['id']}", headers=auth(mod)).status_code == 404
    refused = client.delete(f"{BANS}/{everywhere['id']}", headers=auth(mod))
    assert refused.status_code == 403 and json_of(refused)["error"]["code"] == "forbidden"
    assert client.delete(f"{BANS}/{mine['id']}", headers=auth(mod)).status_code == 204
    assert not banned(sent(client, author_email="ada@example.com"))


def test_an_expired_ban_stops_acting_by_itself(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = admin_token(session)
    start = utcnow()
    app.extensions["moderation.clock"] = lambda: start
    ends = (start + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    made = ban(client, token, site="luac", email="ada@example.com", expires_at=ends)
    assert banned(sent(client, author_email="ada@example.com"))
    app.extensions["moderation.clock"] = lambda: start + dt.timedelta(hours=1, seconds=1)
    assert not banned(sent(client, author_email="ada@example.com"))
    assert json_of(client.get(BANS, headers=auth(token)))["bans"] == []
    shown = json_of(client.get(f"{BANS}?expired=true", headers=auth(token)))["bans"]
    assert [(b["id"], b["active"]) for b in shown] == [(made["id"], False)]
    # A ban may not end before it begins.
    past = (start - dt.timedelta(minutes=1)).isoformat()
    assert ban(client, token, 422, email="x@example.com", expires_at=past)["error"]["fields"] == {
        "expires_at": bans.MESSAGES["expires_at"]
    }


# What the sender sees ---------------------------------------------------------------------------


def test_the_quiet_answer_is_the_usual_answer(client: FlaskClient, session: Session) -> None:
    make_site(session)
    token = admin_token(session)
    ban(client, token, site="luac", email="ada@example.com")
    normal = send(client, author_email="bob@example.com", body="First comment, a normal one.")
    quiet = send(client, author_email="ada@example.com", body="Second comment, a banned one.")
    assert (normal.status_code, quiet.status_code) == (202, 202)
    a, b = json_of(normal), json_of(quiet)
    assert a.keys() == b.keys() and a["id"] != b["id"]
    assert {k: v for k, v in a.items() if k != "id"} == {k: v for k, v in b.items() if k != "id"}
    drop = {"Date", "X-Request-ID", "Content-Length"}
    assert {k: v for k, v in normal.headers if k not in drop} == {
        k: v for k, v in quiet.headers if k not in drop
    }
    assert banned(stored(client.application, b["id"]))
    # Moderators find them by their signal.
    queue = client.get("/api/v1/moderation/comments?status=spam&signal=ban", headers=auth(token))
    assert [c["id"] for c in json_of(queue)["comments"]] == [b["id"]]
    # Nothing public shows the ban: the thread, its JSON, counts and feed know no banned comment.
    for path in (
        f"/embed/luac/thread?post={POST_KEY}",
        f"/api/v1/sites/luac/comments?post={POST_KEY}",
        f"/api/v1/sites/luac/counts?post={POST_KEY}",
        f"/api/v1/sites/luac/feed.atom?post={POST_KEY}",
    ):
        page = client.get(path).get_data(as_text=True)
        assert "banned" not in page.lower() and "ban " not in page and "serial abuse" not in page


def test_a_refusing_site_answers_403_banned_with_its_text(
    client: FlaskClient, session: Session
) -> None:
    site = make_site(session)
    token = admin_token(session)
    ban(client, token, site="luac", email="ada@example.com")
    update_site(session, site, {"ban_response": "refuse"}, actor=ADMIN, now=utcnow())
    session.commit()
    before = session.scalar(select(Comment.id).order_by(Comment.id.desc()).limit(1))
    refused = send(client, author_email="ada@example.com")
    assert refused.status_code == 403
    assert json_of(refused)["error"] == {
        "code": "banned",
        "message": "You cannot comment on this blog.",
        "fields": {},
    }
    welsh = json_of(send(client, author_email="ada@example.com", lang="cy"))["error"]
    assert welsh["message"] == "Ni allwch adael sylwadau ar y blog hwn."
    cymraeg = client.post(
        f"/embed/luac/thread?post={POST_KEY}&lang=cy",
        data={**comment_json(author_email="ada@example.com"), "form_token": good_token()},
    )
    assert cymraeg.status_code == 403
    assert "Ni allwch adael sylwadau ar y blog hwn." in cymraeg.get_data(as_text=True)
    text = "Your comments are not accepted here. Write to the blog team."
    update_site(session, site, {"banned_text": text}, actor=ADMIN, now=utcnow())
    session.commit()
    assert json_of(send(client, author_email="ada@example.com"))["error"]["message"] == text
    # The no-JavaScript form: an error page with the site's text, what was typed kept.
    form = client.post(
        f"/embed/luac/thread?post={POST_KEY}",
        data={**comment_json(author_email="ada@example.com"), "form_token": good_token()},
    )
    page = form.get_data(as_text=True)
    assert form.status_code == 403 and text in page and "Thank you for this post." in page
    assert session.scalar(select(Comment.id).order_by(Comment.id.desc()).limit(1)) == before
    # Others still get through.
    assert send(client, author_email="bob@example.com").status_code == 202


# Removing recent comments -----------------------------------------------------------------------


def approved(
    session: Session,
    email: str,
    days_ago: float,
    *,
    site: str = "luac",
    address: str = "203.0.113.7",
    status: CommentStatus = CommentStatus.APPROVED,
) -> Comment:
    """A comment submitted ``days_ago`` from ``address`` and approved then (or left pending)."""
    moment = utcnow() - dt.timedelta(days=days_ago)
    data = comment_json(author_email=email, body=f"Comment by {email} {days_ago} days ago.")
    if site != "luac":
        data["post_url"] = "https://other.example.org" + POST_KEY
    comment = comments.submit_comment(
        session, site, parse_submission(data), now=moment, client_address=address
    )
    if status is CommentStatus.APPROVED:
        comment.status = CommentStatus.APPROVED
        comment.moderated_at = moment
    session.commit()
    return comment


def test_remove_recent_days_rejects_only_that_authors_approved_comments_in_the_window(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_site(session, "other", "https://other.example.org")
    token = admin_token(session)
    recent = [approved(session, "Ada@example.com", 1), approved(session, "ada@example.com", 6.5)]
    kept = [
        approved(session, "ada@example.com", 8),  # before the window
        approved(session, "ada@example.com", 1, site="other"),  # another site
        approved(session, "ada@example.com", 1, status=CommentStatus.PENDING),  # not published
        approved(session, "bob@example.com", 1),  # someone else, same network
        approved(session, "ada@example.org", 1),  # another address
    ]
    thread = select(Post.version).where(Post.id == recent[0].post_id)
    version = session.scalar(thread)
    etag = client.get(f"/api/v1/sites/luac/comments?post={POST_KEY}").headers["ETag"]
    audits = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) or 0
    made = ban(client, token, site="luac", email="ada@example.com", remove_recent_days=7)
    assert sorted(made["removed_comments"]) == sorted(c.public_id for c in recent)
    for comment in recent:
        session.refresh(comment)
        assert comment.status is CommentStatus.REJECTED
    for comment in kept:
        before = comment.status
        session.refresh(comment)
        assert comment.status is before
    # One audit event for the removal (and one for the ban), an outbox event per comment.
    new = session.scalars(select(AuditEvent).where(AuditEvent.id > audits)).all()
    assert [a.action for a in new] == ["ban.add", "ban.remove_recent"]
    assert new[1].after["comments"] == made["removed_comments"]
    assert "ada@" not in json.dumps([a.after for a in new] + [a.before for a in new])
    rejected = session.scalars(
        select(Event.comment_id).where(Event.type == "comment.rejected")
    ).all()
    assert sorted(i or 0 for i in rejected) == sorted(c.id for c in recent)
    # Gone from every public read at once.
    session.expire_all()
    assert (session.scalar(thread) or 0) > (version or 0)
    read = client.get(f"/api/v1/sites/luac/comments?post={POST_KEY}")
    assert read.headers["ETag"] != etag
    shown = {c["id"] for c in json_of(read)["comments"]}
    assert not shown & {c.public_id for c in recent}


def test_remove_recent_days_by_domain_and_by_network(client: FlaskClient, session: Session) -> None:
    make_site(session)
    token = admin_token(session)
    by_domain = [approved(session, "a@spam.example", 1), approved(session, "b@x.spam.example", 2)]
    other = approved(session, "c@notspam.example", 1)
    made = ban(client, token, site="luac", domain="spam.example", remove_recent_days=3)
    assert sorted(made["removed_comments"]) == sorted(c.public_id for c in by_domain)
    inside = approved(session, "d@example.com", 1, address="198.51.7.9")
    outside = approved(session, "e@example.com", 1, address="198.52.7.9")
    made = ban(client, token, site="luac", network="198.51.0.0/16", remove_recent_days=3)
    assert made["removed_comments"] == [inside.public_id]
    for comment in (other, outside):
        session.refresh(comment)
        assert comment.status is CommentStatus.APPROVED


# Bounds, query cost, audit -----------------------------------------------------------------------


def test_hostile_values_are_refused_quickly_without_echo(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = admin_token(session)
    for name in ("email", "domain", "network", "reason", "site", "expires_at"):
        for hostile in ("a." * 5000, "@" * 10000, "1" * 10000, "\u0301" * 5000, "/" * 10000):
            body = {"email": "ada@example.com", "reason": "r", name: hostile}
            started = time.thread_time()
            response = client.post(BANS, json=body, headers=auth(token))
            took = time.thread_time() - started
            assert response.status_code == 422, (name, response.get_data(as_text=True))
            assert hostile[:50] not in response.get_data(as_text=True)
            assert took < 0.5, (name, took)
    days = {"email": "ada@example.com", "reason": "r", "remove_recent_days": 10**100}
    assert client.post(BANS, json=days, headers=auth(token)).status_code == 422
    assert client.delete(f"{BANS}/{10**30}", headers=auth(token)).status_code == 404
    # A submission whose domain has as many labels as an address allows: bounded lookups.
    deep = "x@" + "a." * 120 + "example.com"
    assert len(spam.ban_values(deep, "203.0.113.0/24")) <= 1 + spam.BAN_DOMAIN_SUFFIXES + 17


def test_the_ban_check_is_one_indexed_query(session: Session, engine: Engine) -> None:
    site = make_site(session)
    for i in range(300):
        session.add(Ban(site=site, kind=BanKind.EMAIL, value=f"n{i}@example.com", reason="r"))
    session.add(Ban(site=None, kind=BanKind.NETWORK, value="203.0.0.0/16", reason="r"))
    session.commit()
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith(("SAVEPOINT", "RELEASE", "BEGIN")):
            statements.append(statement)

    values = spam.ban_values("Zed@mail.example.com", "203.0.113.0/24")
    event.listen(engine, "before_cursor_execute", count)
    try:
        found = spam.find_ban(session, site.id, values, now=utcnow())
        missed = spam.find_ban(session, site.id, values[:3], now=utcnow())
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert found is not None and found[1] is BanKind.NETWORK and missed is None
    assert len(statements) == 2  # one each
    if engine.dialect.name == "sqlite":
        assert "USING INDEX ix_bans_value" in _plan_sqlite(session, values, site.id)


def _plan_sqlite(session: Session, values: list[str], site_id: int) -> str:
    from sqlalchemy import text

    marks = ", ".join(f":v{i}" for i in range(len(values)))
    query = (
        "EXPLAIN QUERY PLAN SELECT id, kind FROM bans WHERE value IN ("
        + marks
        + ") AND coalesce(site_id, :s) = :s AND (expires_at IS NULL OR expires_at > :n)"
    )
    params: dict[str, Any] = {f"v{i}": v for i, v in enumerate(values)}
    params.update(s=site_id, n=utcnow())
    return " ".join(str(row[-1]) for row in session.execute(text(query), params))


def test_making_and_lifting_bans_is_audited(client: FlaskClient, session: Session) -> None:
    make_site(session)
    token = admin_token(session)
    made = ban(client, token, site="luac", network="203.0.113.0/24", reason="flooding")
    mailed = ban(client, token, site="luac", email="ada@example.com")
    assert client.delete(f"{BANS}/{made['id']}", headers=auth(token)).status_code == 204
    assert client.delete(f"{BANS}/{made['id']}", headers=auth(token)).status_code == 404
    rows = session.scalars(select(AuditEvent).where(AuditEvent.action.like("ban.%"))).all()
    assert [(r.action, r.moderator_id is not None) for r in rows] == [
        ("ban.add", True),
        ("ban.add", True),
        ("ban.lift", True),
    ]
    assert rows[0].after["value"] == "203.0.113.0/24" and rows[0].after["reason"] == "flooding"
    assert rows[1].after["value"] is None and rows[1].after["ban"] == mailed["id"]
    assert rows[2].before["ban"] == made["id"]
    # The same ban twice is refused; the API's errors have the documented shape.
    again = ban(client, token, 422, site="luac", email="ADA@example.com")["error"]
    assert again["code"] == "validation_failed" and set(again["fields"]) == {"email"}
    both = ban(client, token, 422, email="a@example.com", domain="example.com")["error"]
    assert set(both["fields"]) == {"email"}
    assert ban(client, token, 422, reason="", email="b@example.com")["error"]["fields"]["reason"]
    assert client.post(BANS, json={"email": "a@example.com"}).status_code == 401


# Export and erasure ----------------------------------------------------------------------------


def test_a_persons_export_lists_their_bans_and_erasure_lifts_them(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = admin_token(session)
    approved(session, "ada@example.com", 1)
    mine = ban(client, token, site="luac", email="Ada@Example.com")
    ban(client, token, site="luac", domain="example.com")
    export = export_personal_data(session, "ADA@example.com", now=utcnow())
    assert [b["id"] for b in export["bans"]] == [mine["id"]]
    assert export["bans"][0]["email"] == "ada@example.com"
    assert mine["created_by"] and export["bans"][0]["created_by"] is None  # a moderator's login
    erased = erase_personal_data(session, "ada@example.com", actor=ADMIN, now=utcnow())
    session.commit()
    assert erased.bans_lifted == 1
    kinds = session.scalars(select(Ban.kind)).all()
    assert kinds == [BanKind.DOMAIN]  # the domain names no one and stays
    audits = session.scalars(select(AuditEvent).where(AuditEvent.action == "ban.lift")).all()
    assert [a.after for a in audits] == [{"lifted": "erased"}]
    dumped = json.dumps([[a.before, a.after] for a in session.scalars(select(AuditEvent))])
    assert "ada@" not in dumped.lower()


def test_bans_move_with_an_export(client: FlaskClient, session: Session) -> None:
    make_site(session)
    token = admin_token(session)
    ends = (utcnow() + dt.timedelta(days=7)).isoformat()
    ban(client, token, site="luac", email="ada@example.com", expires_at=ends)
    ban(client, token, network="203.0.113.0/24")
    document: dict[str, Any] = {}
    for section, record in export_records(session, now=utcnow()):
        if section == "meta":
            document["meta"] = record
        else:
            document.setdefault(section, []).append(record)
    assert [(b["site"], b["kind"], b["value"]) for b in document["bans"]] == [
        ("luac", "email", "ada@example.com"),
        (None, "network", "203.0.113.0/24"),
    ]
    assert import_document(session, document)["bans"] == 0  # all there already
    for row in session.scalars(select(Ban)):
        session.delete(row)
    session.flush()
    assert import_document(session, document)["bans"] == 2
    assert {b.value for b in session.scalars(select(Ban))} == {"ada@example.com", "203.0.113.0/24"}


# The moderators' pages ---------------------------------------------------------------------------


def test_ban_this_address_from_a_comments_page(client: FlaskClient, session: Session) -> None:
    make_site(session)
    make_moderator(session)
    comment = approved(session, "Ada@example.com", 1, status=CommentStatus.PENDING)
    login(client)
    page = client.get(f"/moderate/comments/{comment.public_id}").get_data(as_text=True)
    assert "Ban this address" in page
    response = client.post(
        f"/moderate/comments/{comment.public_id}/ban",
        data={
            "csrf_token": csrf_from(page),
            "target": "network",
            "duration": "week",
            "reason": "flooding",
        },
    )
    assert response.status_code == 303
    made = session.scalars(select(Ban)).one()
    assert (made.kind, made.value, made.site_id) == (
        BanKind.NETWORK,
        "203.0.113.0/24",
        comment.post.site_id,
    )
    assert made.expires_at is not None
    assert dt.timedelta(days=6) < made.expires_at - utcnow() <= dt.timedelta(days=7)
    listing = client.get("/moderate/bans").get_data(as_text=True)
    assert "203.0.113.0/24" in listing and "flooding" in listing
    lifted = client.post(f"/moderate/bans/{made.id}/lift", data={"csrf_token": csrf_from(listing)})
    assert lifted.status_code == 303
    assert session.scalars(select(Ban)).all() == []
    audit = client.get("/moderate/audit").get_data(as_text=True)
    assert "Banned" in audit and "Lifted a ban" in audit and "203.0.113.0/24" in audit
    # Without the CSRF token nothing happens.
    refused = client.post(
        f"/moderate/comments/{comment.public_id}/ban",
        data={"target": "email", "duration": "day", "reason": "x"},
    )
    assert refused.status_code == 400


def test_the_bans_page_adds_a_ban(client: FlaskClient, session: Session) -> None:
    make_site(session)
    make_moderator(session)
    login(client)
    page = client.get("/moderate/bans").get_data(as_text=True)
    bad = client.post(
        "/moderate/bans",
        data={"csrf_token": csrf_from(page), "kind": "domain", "value": "not a domain",
              "site": "luac", "duration": "forever", "reason": "spam"},
    )  # fmt: skip
    assert bad.status_code == 422 and "Enter a domain" in bad.get_data(as_text=True)
    good = client.post(
        "/moderate/bans",
        data={"csrf_token": csrf_from(page), "kind": "domain", "value": "spam.example",
              "site": "", "duration": "forever", "reason": "spam"},
    )  # fmt: skip
    assert good.status_code == 303
    made = session.scalars(select(Ban)).one()
    assert (made.value, made.site_id, made.expires_at) == ("spam.example", None, None)


def test_an_approved_comment_from_a_banned_author_via_actions_stays_one_step(
    session: Session,
) -> None:
    """reject_published moves approved comments only, once each."""
    make_site(session)
    comment = approved(session, "ada@example.com", 1)
    done = actions.reject_published(session, [comment, comment], actor=ADMIN, now=utcnow())
    assert [c.id for c in done] == [comment.id]


def test_the_openapi_description_has_the_ban_routes(client: FlaskClient) -> None:
    spec = json_of(client.get("/api/v1/openapi.json"))
    assert {"post", "get"} <= set(spec["paths"]["/api/v1/moderation/bans"])
    assert "delete" in spec["paths"]["/api/v1/moderation/bans/{ban_id}"]
    assert "ban_response" in spec["components"]["schemas"]["SiteSettings"]["properties"]


def test_bans_that_ended_long_ago_are_purged_with_client_data(session: Session) -> None:
    site = make_site(session)
    moment = utcnow()
    for days_ago in (31, 29):
        ended = moment - dt.timedelta(days=days_ago)
        session.add(Ban(site=site, kind=BanKind.EMAIL, value=f"{days_ago}@example.com",
                        reason="r", expires_at=ended))  # fmt: skip
    session.add(Ban(site=site, kind=BanKind.EMAIL, value="forever@example.com", reason="r"))
    session.commit()
    assert purge_expired(session, Retention(), now=moment, dry_run=True).bans_deleted == 1
    assert purge_expired(session, Retention(), now=moment).bans_deleted == 1
    left = set(session.scalars(select(Ban.value)))
    assert left == {"29@example.com", "forever@example.com"}


def test_supernets_are_what_ipaddress_would_say() -> None:
    """The hand-made networks the check looks up are exactly ipaddress's (how bans are stored)."""
    generator = random.Random(18)
    addresses = ["0.0.0.0", "255.255.255.255", "::", "0:5::1", "1::", "ffff:ffff:ffff::"]
    addresses += [str(ipaddress.IPv4Address(generator.getrandbits(32))) for _ in range(500)]
    for _ in range(500):
        bits = generator.getrandbits(48)
        for group in range(3):  # runs of zero groups, where IPv6's "::" is decided
            if generator.random() < 0.4:
                bits &= ~(0xFFFF << (16 * group))
        addresses.append(str(ipaddress.IPv6Address(bits << 80 | generator.getrandbits(80))))
    for address in addresses:
        network = comments.client_network(address)
        assert network is not None
        net = ipaddress.ip_network(network)
        widest = spam.BAN_NETWORK_PREFIXES[net.version][0]
        expected = [str(net.supernet(new_prefix=p)) for p in range(net.prefixlen, widest - 1, -1)]
        assert spam.supernets(network) == expected, address


def test_the_no_javascript_form_answers_a_quiet_ban_as_usual(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = admin_token(session)
    ban(client, token, site="luac", email="ada@example.com")
    answers = []
    for email in ("bob@example.com", "ada@example.com"):
        response = client.post(
            f"/embed/luac/thread?post={POST_KEY}",
            data={**comment_json(author_email=email), "form_token": good_token()},
        )
        answers.append((response.status_code, response.headers["Location"]))
    assert answers[0] == answers[1] and answers[0][0] == 303
    newest = session.scalars(select(Comment).order_by(Comment.id.desc()).limit(2)).all()
    assert [banned(c) for c in newest] == [True, False]


def test_a_comment_filed_for_a_ban_alone_teaches_the_spam_filter_nothing(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = admin_token(session)
    ban(client, token, site="luac", email="ada@example.com")
    quiet = sent(client, author_email="ada@example.com")
    assert banned(quiet) and quiet.learned is None
    # With another check's spam verdict too (the honeypot), it is learned as spam as before.
    both = sent(client, author_email="ada@example.com", website="http://spam.example")
    assert banned(both) and both.learned == "spam"


def test_a_moderator_cannot_ban_everywhere_from_a_comments_page(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session, "mo", role=Role.MODERATOR, sites=("luac",))
    comment = approved(session, "ada@example.com", 1, status=CommentStatus.PENDING)
    login(client, "mo")
    page = client.get(f"/moderate/comments/{comment.public_id}").get_data(as_text=True)
    assert "On every site" not in page
    form = {"csrf_token": csrf_from(page), "target": "email", "duration": "day", "reason": "x"}
    refused = client.post(
        f"/moderate/comments/{comment.public_id}/ban", data={**form, "every_site": "1"}
    )
    assert refused.status_code == 303 and refused.headers["Location"].endswith("#ban")
    assert session.scalars(select(Ban)).all() == []
    hostile = {**form, "target": "x" * 10000, "duration": "y" * 10000, "reason": "z" * 10000}
    started = time.thread_time()
    response = client.post(f"/moderate/comments/{comment.public_id}/ban", data=hostile)
    assert response.status_code == 303 and time.thread_time() - started < 0.5
    notice = client.get(f"/moderate/comments/{comment.public_id}").get_data(as_text=True)
    assert "Not banned" in notice and "x" * 50 not in notice
    assert client.post(f"/moderate/comments/{comment.public_id}/ban", data=form).status_code == 303
    made = session.scalars(select(Ban)).one()
    assert made.site_id == comment.post.site_id and made.value == "ada@example.com"


def test_a_days_value_of_non_ascii_digits_is_refused_not_a_500(
    client: FlaskClient, session: Session
) -> None:
    """str.isdigit() takes superscripts and Arabic-Indic digits, which int() refuses or reads
    as a number."""
    make_site(session)
    make_moderator(session)
    login(client)
    page = client.get("/moderate/bans").get_data(as_text=True)
    for days in ("\u00b2", "\u0661", "\u0663\u0660"):
        response = client.post(
            "/moderate/bans",
            data={"csrf_token": csrf_from(page), "kind": "domain", "value": "spam.example",
                  "site": "luac", "duration": "forever", "reason": "spam",
                  "remove_recent_days": days},
        )  # fmt: skip
        assert response.status_code == 422, days
        assert "Give a number of days" in response.get_data(as_text=True)
    assert session.scalars(select(Ban)).all() == []


# Concurrency ---------------------------------------------------------------------------------


@pytest.fixture
def committed(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions that really commit; the race's bans and their audit are removed afterwards."""
    factory = sessionmaker(engine, expire_on_commit=False)
    yield factory
    with factory() as session:
        session.execute(delete(Ban).where(Ban.value == "race.example"))
        session.execute(delete(AuditEvent).where(AuditEvent.actor == "racer"))
        session.execute(delete(Moderator).where(Moderator.login == "ban-racer"))
        session.commit()


@pytest.mark.concurrency
def test_two_moderators_banning_the_same_at_once_make_one_ban(
    committed: sessionmaker[Session],
) -> None:
    """A duplicate would outlive its twin's lifting: the moderator who lifts "the" ban would
    find the address still banned."""
    racers = 6
    with committed() as session:
        admin = create_moderator(
            session, password_hasher(fast=True), login="ban-racer",
            email="ban-racer@example.org", password="long enough password", role=Role.ADMIN,
        )  # fmt: skip
        session.commit()
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(racers)

    def make() -> None:
        with committed() as session:
            wanted = bans.BanRequest(BanKind.DOMAIN, "race.example", None, "spam")
            barrier.wait()
            try:
                bans.create_ban(
                    session, session.get_one(Moderator, admin.id), wanted,
                    actor=Actor("racer", admin.id), now=dt.datetime.now(dt.UTC),
                )  # fmt: skip
                session.commit()
                result = "made"
            except ValidationFailed:
                session.rollback()
                result = "duplicate"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=make) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["duplicate"] * (racers - 1) + ["made"]
    with committed() as session:
        assert len(session.scalars(select(Ban).where(Ban.value == "race.example")).all()) == 1


def test_a_quietly_banned_sender_cannot_date_the_post_and_close_it(
    client: FlaskClient, session: Session
) -> None:
    """A banned sender's comment is filed as spam and "nothing public changes": nor may the
    publication date it carries become the post's, which would close the post at the sender's
    word (the automatic close counts from it)."""
    make_site(session)
    token = admin_token(session)
    settings = client.patch(
        "/api/v1/moderation/sites/luac", json={"close_after_days": 30}, headers=auth(token)
    )
    assert settings.status_code == 200, settings.get_data(as_text=True)
    sent(client, author_email="bob@example.com", body="The post's first comment.")
    ban(client, token, site="luac", email="troll@example.com")
    almost = dt.datetime.now(dt.UTC) - dt.timedelta(days=29, hours=23, minutes=59)
    quiet = send(
        client, author_email="troll@example.com", body="Dated to close the post in a minute.",
        published=almost.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
    )  # fmt: skip
    assert quiet.status_code == 202
    assert banned(stored(client.application, json_of(quiet)["id"]))
    session.expire_all()
    assert session.scalars(select(Post)).one().published_at is None
