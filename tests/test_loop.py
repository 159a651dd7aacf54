"""The whole comment loop over HTTP: submit, wait in the queue, approve, publish."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moderation.models import AuditEvent, Comment, CommentStatus, Event
from tests.helpers import (
    ORIGIN,
    POST_KEY,
    comment_json,
    csrf_from,
    json_of,
    login,
    make_moderator,
    make_site,
    make_token,
)


def public_views(client: FlaskClient) -> tuple[str, str]:
    fragment = client.get(f"/embed/luac/thread?post={POST_KEY}").get_data(as_text=True)
    listing = client.get(f"/api/v1/sites/luac/comments?post={POST_KEY}").get_data(as_text=True)
    return fragment, listing


def test_json_submission_waits_then_approval_in_the_queue_publishes_it(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session)

    response = client.post("/api/v1/sites/luac/comments", json=comment_json(body="First!"))
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "pending"
    comment_id = body["id"]
    assert len(comment_id) >= 16 and not comment_id.isdigit()

    fragment, listing = public_views(client)
    assert "First!" not in fragment and "First!" not in listing

    login(client)
    queue = client.get("/moderate/").get_data(as_text=True)
    assert "First!" in queue and "ada@example.com" in queue
    approved = client.post(
        f"/moderate/comments/{comment_id}/approve", data={"csrf_token": csrf_from(queue)}
    )
    assert approved.status_code == 303

    fragment, listing = public_views(client)
    assert "First!" in fragment
    assert [
        c["id"]
        for c in json_of(client.get(f"/api/v1/sites/luac/comments?post={POST_KEY}"))["comments"]
    ] == [comment_id]
    assert "ada@example.com" not in fragment + listing


def test_form_submission_redirects_to_the_post_and_api_approval_publishes_it(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = make_token(session, make_moderator(session))

    response = client.post(
        f"/embed/luac/thread?post={POST_KEY}",
        data={
            "author_name": "Grace",
            "author_email": "grace@example.com",
            "body": "Sent without JavaScript",
            "post_title": "From industrial decline",
            "post_url": ORIGIN + POST_KEY,
        },
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"{ORIGIN}{POST_KEY}#comment-submitted"

    pending = json_of(
        client.get(
            "/api/v1/moderation/comments?status=pending",
            headers={"Authorization": f"Bearer {token}"},
        )
    )["comments"]
    assert [c["body_text"] for c in pending] == ["Sent without JavaScript"]
    assert pending[0]["author_email"] == "grace@example.com"

    approved = client.post(
        f"/api/v1/moderation/comments/{pending[0]['id']}/approve",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert approved.status_code == 200
    assert json_of(approved)["status"] == "approved"

    fragment, listing = public_views(client)
    assert "Sent without JavaScript" in fragment and "Sent without JavaScript" in listing


def test_every_action_writes_one_audit_event_and_one_outbox_event(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = make_token(session, make_moderator(session))
    auth = {"Authorization": f"Bearer {token}"}
    ids = [
        json_of(client.post("/api/v1/sites/luac/comments", json=comment_json(body=f"c{n}")))["id"]
        for n in range(3)
    ]
    for comment_id, action in zip(ids, ["approve", "reject", "spam"], strict=True):
        assert (
            client.post(
                f"/api/v1/moderation/comments/{comment_id}/{action}", headers=auth
            ).status_code
            == 200
        )

    statuses = dict(session.execute(select(Comment.public_id, Comment.status)).all())
    assert [statuses[i] for i in ids] == [
        CommentStatus.APPROVED,
        CommentStatus.REJECTED,
        CommentStatus.SPAM,
    ]
    audits = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(a.action, a.before, a.after) for a in audits] == [
        ("approve", {"status": "pending"}, {"status": "approved"}),
        ("reject", {"status": "pending"}, {"status": "rejected"}),
        ("spam", {"status": "pending"}, {"status": "spam"}),
    ]
    assert all(a.actor == "editor (token integration)" for a in audits)
    types = session.scalars(select(Event.type).order_by(Event.id)).all()
    assert types == ["comment.submitted"] * 3 + [
        "comment.approved",
        "comment.rejected",
        "comment.spam",
    ]


def test_a_comment_is_moderated_once_and_the_second_moderator_is_told(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = make_token(session, make_moderator(session))
    make_moderator(session, "second")
    comment_id = json_of(client.post("/api/v1/sites/luac/comments", json=comment_json()))["id"]

    login(client, "second")
    queue = client.get("/moderate/").get_data(as_text=True)
    first = client.post(
        f"/api/v1/moderation/comments/{comment_id}/approve",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert first.status_code == 200

    second = client.post(
        f"/moderate/comments/{comment_id}/spam",
        data={"csrf_token": csrf_from(queue)},
        follow_redirects=True,
    )
    assert "already been moderated (it is approved)" in second.get_data(as_text=True)
    again = client.post(
        f"/api/v1/moderation/comments/{comment_id}/reject",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert again.status_code == 409
    assert json_of(again)["error"]["code"] == "already_moderated"
    assert session.scalar(select(Comment.status)) is CommentStatus.APPROVED
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1
