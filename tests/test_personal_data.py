"""Personal data: export, erasure leaving no trace of the address, and retention on a clock."""

from __future__ import annotations

import datetime as dt
import json

from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from moderation.events import Actor
from moderation.models import AuditEvent, Base, Comment, CommentStatus, Event, Post
from moderation.personal_data import (
    ERASED_NAME,
    Retention,
    erase_personal_data,
    export_personal_data,
    purge_expired,
)
from tests.conftest import (
    comment_json,
    csrf_from,
    json_of,
    login,
    make_moderator,
    make_site,
    make_token,
)

ADDRESS = "Erin.Erasure@example.com"
NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def everything_stored(session: Session) -> str:
    """Every row of every table, as text, for a search."""
    dump = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            dump.append(json.dumps([str(value) for value in row]))
    return "\n".join(dump)


def seed(client: FlaskClient, session: Session) -> list[str]:
    make_site(session)
    auth = {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}
    ids = [
        json_of(
            client.post(
                "/api/v1/sites/luac/comments",
                json=comment_json(
                    author_email=ADDRESS, author_name="Erin Private", body=f"Words {n}"
                ),
                environ_base={"REMOTE_ADDR": "203.0.113.9"},
            )
        )["id"]
        for n in range(2)
    ]
    client.post(
        f"/api/v1/moderation/comments/{ids[0]}/edit", json={"body": "Edited words 0"}, headers=auth
    )
    client.post(f"/api/v1/moderation/comments/{ids[0]}/approve", headers=auth)
    client.post("/api/v1/sites/luac/comments", json=comment_json(body="Someone else"))
    return ids


def test_export_holds_everything_about_the_address(client: FlaskClient, session: Session) -> None:
    seed(client, session)
    document = export_personal_data(session, "erin.erasure@EXAMPLE.com", now=NOW)
    assert document["email"] == "erin.erasure@example.com"
    assert [c["body_text"] for c in document["comments"]] == ["Edited words 0", "Words 1"]
    assert document["comments"][0]["original_text"] == "Words 0"
    assert document["comments"][0]["client_network"] == "203.0.113.0/24"
    assert all(c["author_email"] == ADDRESS for c in document["comments"])


def test_erasure_leaves_no_trace_of_the_address_or_name(
    client: FlaskClient, session: Session
) -> None:
    seed(client, session)
    assert ADDRESS in everything_stored(session)
    erased = erase_personal_data(session, ADDRESS, actor=Actor("dpo"), now=NOW)
    session.commit()
    assert (erased.comments, erased.texts_removed) == (2, 0)
    stored = everything_stored(session)
    assert ADDRESS not in stored and ADDRESS.lower() not in stored
    assert "Erin Private" not in stored
    assert "203.0.113" not in stored
    assert "Edited words 0" in stored, "this site keeps the text"
    assert "Someone else" in stored
    erased_events = session.scalars(select(Event).where(Event.type == "comment.erased")).all()
    assert len(erased_events) == 2
    assert all(e.payload["data"]["author_name"] == ERASED_NAME for e in erased_events)
    audits = session.scalars(select(AuditEvent).where(AuditEvent.action == "erase")).all()
    assert [a.after for a in audits] == [{"personal_data": "erased", "text": "kept"}] * 2


def test_erasure_removes_the_text_where_the_site_says_so(
    client: FlaskClient, session: Session
) -> None:
    seed(client, session)
    session.scalars(select(Post)).first().site.erasure_keeps_text = False  # type: ignore[union-attr]
    session.commit()
    erase_personal_data(session, ADDRESS, actor=Actor("dpo"), now=NOW)
    session.commit()
    stored = everything_stored(session)
    for words in ("Words 0", "Words 1", "Edited words 0"):
        assert words not in stored
    public = client.get(f"/embed/luac/thread?post={comment_json()['post']}").get_data(as_text=True)
    assert "removed at its author's request" in public


def test_retention_on_an_injected_clock(client: FlaskClient, session: Session) -> None:
    make_site(session)
    make_moderator(session)
    for body in ("old spam", "fresh spam", "old approved"):
        client.post(
            "/api/v1/sites/luac/comments",
            json=comment_json(body=body),
            environ_base={"REMOTE_ADDR": "198.51.100.1"},
        )
    by_body = {c.body_text: c for c in session.scalars(select(Comment))}
    by_body["old spam"].status = CommentStatus.SPAM
    by_body["old spam"].moderated_at = NOW - dt.timedelta(days=91)
    by_body["fresh spam"].status = CommentStatus.SPAM
    by_body["fresh spam"].moderated_at = NOW - dt.timedelta(days=89)
    by_body["old approved"].status = CommentStatus.APPROVED
    by_body["old approved"].submitted_at = NOW - dt.timedelta(days=31)
    session.commit()

    report = purge_expired(session, Retention(30, 90), now=NOW, dry_run=True)
    assert (report.client_data_cleared, report.comments_deleted) == (1, 1)
    assert len(session.scalars(select(Comment)).all()) == 3

    purge_expired(session, Retention(30, 90), now=NOW)
    session.commit()
    session.expire_all()
    left = {c.body_text: c for c in session.scalars(select(Comment))}
    assert set(left) == {"fresh spam", "old approved"}
    assert left["old approved"].client_network is None
    assert left["fresh spam"].client_network == "198.51.100.0/24"


def test_admins_export_and_erase_in_the_ui(client: FlaskClient, session: Session) -> None:
    seed(client, session)
    login(client)
    page = client.get("/moderate/admin/personal-data").get_data(as_text=True)
    exported = client.post(
        "/moderate/admin/personal-data",
        data={"csrf_token": csrf_from(page), "email": ADDRESS, "action": "export"},
    )
    assert json.loads(exported.get_data(as_text=True))["comments"][1]["body_text"] == "Words 1"
    unconfirmed = client.post(
        "/moderate/admin/personal-data",
        data={"csrf_token": csrf_from(page), "email": ADDRESS, "action": "erase"},
    )
    assert unconfirmed.status_code == 422
    done = client.post(
        "/moderate/admin/personal-data",
        data={"csrf_token": csrf_from(page), "email": ADDRESS, "action": "erase", "confirm": "1"},
        follow_redirects=True,
    )
    assert "Erased personal data from 2 comments" in done.get_data(as_text=True)
    assert session.scalar(text("SELECT count(*) FROM comments WHERE author_email = ''")) == 2
