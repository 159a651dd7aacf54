"""Working the queue: every action through the UI and the API, bulk, edits, replies, claims,
undo, the audit log and its CSV, and constant SQL per page."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

import moderation
from moderation import queue as queues
from moderation.models import (
    AuditEvent,
    Comment,
    CommentStatus,
    Event,
    Moderator,
    Post,
    Role,
    Site,
)
from tests.helpers import (
    comment_json,
    csrf_from,
    json_of,
    login,
    make_moderator,
    make_site,
    make_token,
)

S = CommentStatus


def submit(client: FlaskClient, n: int = 1, **fields: str) -> list[str]:
    ids = []
    for i in range(n):
        data = comment_json(**({"body": f"Comment number {i}"} | fields))
        ids.append(json_of(client.post("/api/v1/sites/luac/comments", json=data))["id"])
    return ids


def status_of(session: Session, public_id: str) -> CommentStatus:
    session.expire_all()
    return session.scalars(select(Comment.status).where(Comment.public_id == public_id)).one()


def audits(session: Session) -> list[tuple[str, dict[str, object], dict[str, object]]]:
    rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id))
    return [(a.action, a.before, a.after) for a in rows]


def ui(client: FlaskClient, path: str, **data: str | list[str]) -> str:
    """Post a queue form as a browser would, following the redirect; returns the page."""
    page = client.get("/moderate/").get_data(as_text=True)
    response = client.post(
        path, data={"csrf_token": csrf_from(page), **data}, follow_redirects=True
    )
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_every_action_through_the_ui(client: FlaskClient, session: Session) -> None:
    make_site(session)
    make_moderator(session)
    a, b, c = submit(client, 3)
    login(client)
    assert "Comment by Ada Lovelace marked approved." in ui(
        client, f"/moderate/comments/{a}/approve"
    )
    ui(client, f"/moderate/comments/{b}/reject")
    ui(client, f"/moderate/comments/{c}/spam")
    ui(client, f"/moderate/comments/{a}/delete")
    ui(client, f"/moderate/comments/{a}/restore")
    assert [status_of(session, i) for i in (a, b, c)] == [S.PENDING, S.REJECTED, S.SPAM]
    assert [x[0] for x in audits(session)] == ["approve", "reject", "spam", "delete", "restore"]
    events = session.scalars(select(Event.type).where(Event.type != "comment.submitted"))
    assert list(events) == [
        "comment.approved",
        "comment.rejected",
        "comment.spam",
        "comment.deleted",
        "comment.restored",
    ]


def test_every_action_through_the_api(client: FlaskClient, session: Session) -> None:
    site = make_site(session)
    site.reject_reasons = ["Off topic", "Abusive"]
    session.commit()
    auth = {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}
    a, b = submit(client, 2)

    refused = client.post(
        f"/api/v1/moderation/comments/{b}/reject", json={"reason": "Made up"}, headers=auth
    )
    assert refused.status_code == 422
    rejected = client.post(
        f"/api/v1/moderation/comments/{b}/reject", json={"reason": "Off topic"}, headers=auth
    )
    assert json_of(rejected)["reject_reason"] == "Off topic"

    edited = client.post(
        f"/api/v1/moderation/comments/{a}/edit", json={"body": "Tidied text"}, headers=auth
    )
    assert json_of(edited)["body_text"] == "Tidied text"
    assert json_of(edited)["original_text"] == "Comment number 0"

    reply = client.post(
        f"/api/v1/moderation/comments/{a}/reply",
        json={"body": "Thanks from the team", "approve": True},
        headers=auth,
    )
    assert reply.status_code == 201
    assert json_of(reply)["official"] is True and json_of(reply)["parent_id"] == a
    assert status_of(session, a) is S.APPROVED

    for action, status in (("delete", S.DELETED), ("restore", S.PENDING)):
        response = client.post(f"/api/v1/moderation/comments/{a}/{action}", headers=auth)
        assert json_of(response)["status"] == status.value
    assert [x[0] for x in audits(session)] == [
        "reject",
        "edit",
        "approve",
        "reply",
        "delete",
        "restore",
    ]
    assert audits(session)[1][1:] == (
        {"body_text": "Comment number 0"},
        {"body_text": "Tidied text"},
    )

    public = json_of(client.get(f"/api/v1/sites/luac/comments?post={comment_json()['post']}"))
    assert [c["author_name"] for c in public["comments"]] == [site.name]


def test_bulk_actions_moderate_each_once(client: FlaskClient, session: Session) -> None:
    make_site(session)
    auth = {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}
    ids = submit(client, 4)
    # Approve reverses spam and rejected decisions too (tests/test_reversals.py); a deleted
    # comment is restored first, so bulk approve leaves it alone.
    client.post(f"/api/v1/moderation/comments/{ids[0]}/delete", headers=auth)

    result = json_of(
        client.post(
            "/api/v1/moderation/bulk",
            json={"ids": [*ids, "no-such-id"], "action": "approve"},
            headers=auth,
        )
    )
    assert result["done"] == ids[1:]
    assert set(result["refused"]) == {ids[0], "no-such-id"}
    assert [status_of(session, i) for i in ids] == [
        S.DELETED,
        S.APPROVED,
        S.APPROVED,
        S.APPROVED,
    ]

    login(client)
    page = ui(client, "/moderate/bulk", action="delete", ids=ids[1])
    assert "1 comment deleted." in page
    assert status_of(session, ids[1]) is S.DELETED
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == 5
    # The bar below the list sends its own choice; its confirmation says what was done.
    fresh = [*submit(client, body="Another one"), *submit(client, body="And one more")]
    page = ui(client, "/moderate/bulk", action="approve", action_below="spam", bar="below",
              ids=fresh)  # fmt: skip
    assert "2 comments marked as spam." in page
    assert [status_of(session, i) for i in fresh] == [S.SPAM, S.SPAM]


def test_edit_keeps_the_original_and_save_and_approve(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session)
    (a,) = submit(client, body="Call me on 07700 900123 <b>now</b>")
    login(client)
    ui(client, f"/moderate/comments/{a}/edit", body="Call me (number removed)", approve="1")
    session.expire_all()
    comment = session.scalars(select(Comment)).one()
    assert comment.status is S.APPROVED
    # The original is kept for accountability, with the personal data the edit took out replaced
    # by a placeholder (issue 15: redaction really forgets).
    assert comment.original_text == "Call me on [phone number removed] <b>now</b>"
    assert comment.body_html == "<p>Call me (number removed)</p>"
    detail = client.get(f"/moderate/comments/{a}").get_data(as_text=True)
    assert "Original text as submitted" in detail and "[phone number removed]" in detail
    assert "07700 900123" not in detail


def test_opening_a_comment_claims_it_and_colleagues_see_who(
    client: FlaskClient, app: Flask, session: Session
) -> None:
    make_site(session)
    make_moderator(session)
    make_moderator(session, "colleague")
    (a,) = submit(client)
    login(client)
    client.get(f"/moderate/comments/{a}")

    other = app.test_client()
    login(other, "colleague")
    detail = other.get(f"/moderate/comments/{a}").get_data(as_text=True)
    assert "editor is handling this comment right now." in detail
    assert "Being handled by" in other.get("/moderate/").get_data(as_text=True)
    # The claim is advisory: acting still works once, and clears it.
    ui(other, f"/moderate/comments/{a}/approve")
    session.expire_all()
    assert session.scalars(select(Comment)).one().claimed_by_id is None


def test_undo_takes_back_ones_own_action_within_the_window(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session)
    a, b = submit(client, 2)
    login(client)
    page = ui(client, f"/moderate/comments/{a}/approve")
    assert f"/moderate/comments/{a}/undo" in page
    page = ui(client, f"/moderate/comments/{a}/undo")
    assert "is pending again" in page
    assert status_of(session, a) is S.PENDING

    ui(client, f"/moderate/comments/{b}/spam")
    stale = session.scalars(select(Comment).where(Comment.public_id == b)).one()
    stale.moderated_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    session.commit()
    assert "can no longer be undone" in ui(client, f"/moderate/comments/{b}/undo")
    assert status_of(session, b) is S.SPAM
    assert [x[0] for x in audits(session)] == ["approve", "undo", "spam"]


def test_queue_filters_search_order_and_counts(client: FlaskClient, session: Session) -> None:
    make_site(session)
    make_moderator(session)
    submit(client, 1, body="About trains", author_name="Tom")
    submit(client, 1, body="About buses", author_email="bus_fan@example.com")
    (spam,) = submit(client, 1, body="Buy 100% cheap", post="/other/")
    login(client)
    ui(client, f"/moderate/comments/{spam}/spam")

    def titles(query: str) -> str:
        return client.get(f"/moderate/?{query}").get_data(as_text=True)

    assert "About trains" in titles("q=TRAIN") and "About buses" not in titles("q=TRAIN")
    assert "About buses" in titles("q=bus_fan") and "About trains" not in titles("q=bus_fan")
    assert "About trains" not in titles("q=100%25")  # % is matched literally
    assert "Buy 100% cheap" in titles("status=spam&post=/other/")
    assert "Buy 100% cheap" in titles("status=all")
    page = titles("")
    assert 'Pending <span class="count">(2)</span>' in page
    assert 'Spam <span class="count">(1)</span>' in page
    newest = titles("order=newest")
    assert newest.index("About buses") < newest.index("About trains")


def test_the_queue_shows_the_authors_earlier_comments_and_the_parent(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    auth = {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}
    (first,) = submit(client, body="My first comment")
    client.post(f"/api/v1/moderation/comments/{first}/approve", headers=auth)
    submit(client, body="A reply to it", parent_id=first)
    login(client)
    page = client.get("/moderate/").get_data(as_text=True)
    assert "Earlier comments by this address" in page and "1 approved</a>" in page
    assert "In reply to" in page and "My first comment" in page


def test_the_audit_log_filters_and_exports_csv(client: FlaskClient, session: Session) -> None:
    make_site(session)
    make_moderator(session)
    a, b = submit(client, 2)
    login(client)
    ui(client, f"/moderate/comments/{a}/approve")
    ui(client, f"/moderate/comments/{b}/reject")

    page = client.get("/moderate/audit?action=reject").get_data(as_text=True)
    assert "rejected" in page and '"approved"' not in page
    response = client.get("/moderate/audit?format=csv&moderator=editor")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["actor"], r["action"], r["comment"]) for r in rows] == [
        ("editor", "approve", a),
        ("editor", "reject", b),
    ]
    assert (
        client.get("/moderate/audit?format=csv&moderator=nobody").get_data(as_text=True).count("\n")
        == 1
    )
    today = dt.date.today().isoformat()
    assert "approve" in client.get(f"/moderate/audit?since={today}&until={today}").get_data(
        as_text=True
    )


def test_nothing_updates_or_deletes_audit_events() -> None:
    root = Path(moderation.__file__).parent
    sources = "\n".join(p.read_text() for p in root.rglob("*.py"))
    assert "update(AuditEvent" not in sources and "delete(AuditEvent" not in sources


@contextmanager
def count_queries(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_sql_queries_per_queue_page_do_not_grow_with_the_page(
    client: FlaskClient, session: Session, engine: Engine
) -> None:
    make_site(session)
    make_moderator(session)
    token = make_token(session, session.scalars(select(Moderator)).one())
    login(client)
    counts = []
    for batch in (3, 30):
        parent = submit(client, 1)[0]
        client.post(
            f"/api/v1/moderation/comments/{parent}/approve",
            headers={"Authorization": f"Bearer {token}"},
        )
        submit(client, batch, parent_id=parent)
        with count_queries(engine) as statements:
            page = client.get("/moderate/?limit=200")
            api = client.get(
                "/api/v1/moderation/comments?limit=200",
                headers={"Authorization": f"Bearer {token}"},
            )
        assert page.status_code == api.status_code == 200
        counts.append(len(statements))
    assert 0 < counts[0] == counts[1], counts
    assert session.scalar(select(func.count()).select_from(Site)) == 1


def test_without_the_script_a_decision_returns_to_the_next_comment_focused(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session)
    a, b, _ = submit(client, 3)
    login(client)
    page = client.get("/moderate/?status=pending&site=luac").get_data(as_text=True)
    assert f'name="then" value="{b}"' in page  # the first card's forms name the second
    response = client.post(
        f"/moderate/comments/{a}/approve",
        data={"csrf_token": csrf_from(page), "next": "/moderate/?status=pending&site=luac",
              "then": b},
    )  # fmt: skip
    assert response.status_code == 303
    assert response.headers["Location"] == (
        f"/moderate/?status=pending&site=luac&focus={b}#queue-{b}"
    )
    landed = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'id="queue-{b}" tabindex="-1" data-id="{b}" data-status="pending" autofocus' in landed
    assert "Comment by Ada Lovelace marked approved." in landed
    # Another site's address or a made-up id never ends up in the redirect.
    response = client.post(
        f"/moderate/comments/{b}/approve",
        data={"csrf_token": csrf_from(page), "next": "//evil.example/", "then": "<x>"},
    )
    assert response.headers["Location"] == f"/moderate/?focus={b}#queue-{b}"


def test_the_script_decides_in_place_from_a_json_answer(
    client: FlaskClient, session: Session
) -> None:
    site = make_site(session)
    site.reject_reasons = ["Off topic", "Abusive"]
    make_moderator(session)
    session.commit()
    a, b, _ = submit(client, 3)
    login(client)
    page = client.get("/moderate/").get_data(as_text=True)
    assert 'value="Off topic"' in page and "Reject with a reason" in page
    headers = {"Accept": "application/json"}
    form = {"csrf_token": csrf_from(page), "next": "/moderate/?status=pending", "then": b}
    answer = client.post(f"/moderate/comments/{a}/reject", data=form | {"reason": "Off topic"},
                         headers=headers)  # fmt: skip
    assert answer.status_code == 200
    body = json_of(answer)
    assert body["message"] == "Comment by Ada Lovelace rejected (reason: Off topic)."
    assert body["status"] == "rejected" and body["id"] == a
    assert body["counts"]["pending"] == "2" and body["counts"]["rejected"] == "1"
    assert f'id="queue-{a}"' in body["card"] and "queue-item--done" in body["card"]
    assert body["undo"]["action"] == f"/moderate/comments/{a}/undo"
    assert status_of(session, a) is S.REJECTED

    # A reason that is not in the policy, and a comment decided already: the error shape,
    # the card as it is now, and nothing changed.
    refused = client.post(f"/moderate/comments/{b}/reject", data=form | {"reason": "Made up"},
                          headers=headers)  # fmt: skip
    assert refused.status_code == 422
    assert json_of(refused)["error"]["fields"] == {
        "reason": "Choose a reason from the site's comment policy"
    }
    assert "queue-item--done" not in json_of(refused)["card"]
    # (Approve would reverse the rejection: tests/test_reversals.py.)
    again = client.post(f"/moderate/comments/{a}/spam", data=form, headers=headers)
    assert again.status_code == 409
    assert json_of(again)["error"]["code"] == "already_moderated"
    assert "undo" not in json_of(again)

    undone = client.post(f"/moderate/comments/{a}/undo", data=form, headers=headers)
    assert json_of(undone)["status"] == "pending"
    assert json_of(undone)["counts"]["pending"] == "3"
    assert "queue-item--done" not in json_of(undone)["card"]
    assert [x[0] for x in audits(session)] == ["reject", "undo"]


def test_the_audit_log_reads_as_words_and_the_csv_keeps_everything(
    client: FlaskClient, session: Session
) -> None:
    site = make_site(session)
    site.reject_reasons = ["Off topic"]
    make_moderator(session)
    session.commit()
    a, b = submit(client, 2)
    login(client)
    ui(client, f"/moderate/comments/{a}/reject", reason="Off topic")
    ui(client, f"/moderate/comments/{b}/edit", body="Comment number one, edited")
    page = client.get("/moderate/audit").get_data(as_text=True)
    assert "pending → rejected, reason: Off topic" in page
    assert "Rejected: <a" in page and "Edited the text: <a" in page
    assert "text edited" in page and "Show the difference" in page
    assert "Comment number <del>1</del><ins>one, edited</ins>" in page
    assert "{&#34;status&#34;" not in page and '{"status"' not in page  # no raw JSON
    rows = list(csv.DictReader(io.StringIO(client.get("/moderate/audit?format=csv").text)))
    assert json.loads(rows[0]["after"]) == {"status": "rejected", "reason": "Off topic"}
    assert json.loads(rows[1]["after"]) == {"body_text": "Comment number one, edited"}


def test_the_word_difference_is_bounded() -> None:
    from moderation.audit import DIFF_MAX_WORDS, word_diff

    assert word_diff("a b c", "a x c") == (
        ("same", "a "), ("removed", "b "), ("added", "x "), ("same", "c"),
    )  # fmt: skip
    assert word_diff("w " * (DIFF_MAX_WORDS + 1), "w") is None


def test_a_comments_page_shows_the_blogs_reply_and_your_own_claim(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session)
    (a,) = submit(client)
    login(client)
    ui(client, f"/moderate/comments/{a}/reply", reply="Thanks, we will look into it.", approve="1")
    page = client.get(f"/moderate/comments/{a}").get_data(as_text=True)
    assert "Replied as Blog luac" in page and "Thanks, we will look into it." in page
    assert '<dd class="claim">you</dd>' in page  # opening it claimed it, for me
    assert re.search(r"\d{1,2} \w+ \d{4} at \d{1,2}:\d\d[ap]m (GMT|BST)", page)


def test_earlier_comments_count_only_what_the_moderator_may_see(session: Session) -> None:
    """A moderator of one site sees no counts from another site, nor unconfirmed comments;
    the address matches whatever its case, non-ASCII capitals included."""
    home, other = make_site(session), make_site(session, "other", "https://other.example")
    limited = make_moderator(session, "limited", role=Role.MODERATOR, sites=("luac",))
    post = {
        s.id: Post(site=s, key="/p/", title="P", url=f"{s.origins[0]}/p/") for s in (home, other)
    }
    session.add_all(post.values())
    session.flush()

    def add(site: Site, email: str, status: CommentStatus) -> Comment:
        comment = Comment(
            post_id=post[site.id].id,
            author_name="Ärger",
            author_email=email,
            body_text="Words",
            body_html="<p>Words</p>",
            status=status,
        )
        session.add(comment)
        session.flush()
        return comment

    shown = add(home, "Ärger@example.com", CommentStatus.PENDING)
    add(home, "ärger@example.com", CommentStatus.APPROVED)
    add(home, "ÄRGER@example.com", CommentStatus.UNCONFIRMED)
    add(other, "Ärger@example.com", CommentStatus.SPAM)
    assert queues.author_history(session, limited, [shown]) == {
        shown.id: {CommentStatus.APPROVED: 1}
    }
    admin = make_moderator(session, "admin")
    assert queues.author_history(session, admin, [shown]) == {
        shown.id: {CommentStatus.APPROVED: 1, CommentStatus.SPAM: 1}
    }
