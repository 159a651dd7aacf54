"""Reversible decisions and pinned comments (issue 18, sections 4 and 5): unapprove, approve
from spam or rejected, pins (at most three a post, also under concurrency) and permalinks to
the page of a long thread that holds a comment."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from moderation import learning, metrics
from moderation.actions import UNDO_WINDOW, moderate_comment, pin_comment
from moderation.db import begin_as_writer
from moderation.errors import AlreadyModerated, ValidationFailed
from moderation.events import Actor
from moderation.models import (
    AuditEvent,
    Comment,
    CommentStatus,
    Event,
    Moderator,
    Post,
    Role,
    Site,
    SpamToken,
)
from moderation.moderators import create_moderator, password_hasher
from moderation.sites import create_site
from tests.helpers import (
    POST_KEY,
    comment_json,
    csrf_from,
    json_of,
    login,
    make_app,
    make_moderator,
    make_site,
    make_token,
    remove_site,
)

S = CommentStatus
THREAD = f"/embed/luac/thread?post={POST_KEY}"
COMMENTS = f"/api/v1/sites/luac/comments?post={POST_KEY}"
COUNTS = f"/api/v1/sites/luac/counts?post={POST_KEY}"
FEED = f"/api/v1/sites/luac/feed.atom?post={POST_KEY}"
SITE_FEED = "/api/v1/sites/luac/feed.atom"
MODERATE = "/api/v1/moderation/comments"


@pytest.fixture
def auth(session: Session) -> dict[str, str]:
    make_site(session)
    return {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}


def submit(client: FlaskClient, n: int = 1, **fields: str) -> list[str]:
    return [
        json_of(
            client.post(
                "/api/v1/sites/luac/comments",
                json=comment_json(**({"body": f"Words {i}"} | fields)),
            )
        )["id"]
        for i in range(n)
    ]


def act(client: FlaskClient, auth: dict[str, str], public_id: str, action: str) -> Any:
    return client.post(f"{MODERATE}/{public_id}/{action}", headers=auth)


def audits(session: Session, public_id: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    rows = session.scalars(
        select(AuditEvent)
        .join(Comment, AuditEvent.comment_id == Comment.id)
        .where(Comment.public_id == public_id)
        .order_by(AuditEvent.id)
    )
    return [(a.action, a.before, a.after) for a in rows]


def events(session: Session, public_id: str) -> list[str]:
    rows = session.scalars(
        select(Event.type)
        .join(Comment, Event.comment_id == Comment.id)
        .where(Comment.public_id == public_id)
        .order_by(Event.id)
    )
    return list(rows)


def public_reads(client: FlaskClient) -> dict[str, tuple[str, str]]:
    """Every public read of the post (and the site's feed): its ETag and its body."""
    reads = {}
    for name, url in (
        ("thread", THREAD),
        ("page", THREAD + "&page=1"),
        ("json", COMMENTS),
        ("counts", COUNTS),
        ("feed", FEED),
        ("site feed", SITE_FEED),
    ):
        response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        reads[name] = (response.headers["ETag"], response.get_data(as_text=True))
    return reads


def test_unapprove_hides_a_comment_from_every_public_read_and_changes_every_etag(
    client: FlaskClient, session: Session, auth: dict[str, str]
) -> None:
    (kept,) = submit(client, body="Stays published")
    (taken,) = submit(client, body="Published by mistake")
    for public_id in (kept, taken):
        assert act(client, auth, public_id, "approve").status_code == 200
    before = public_reads(client)
    for name, (_, body) in before.items():
        assert ("Published by mistake" in body) or name == "counts", name
    assert '"' + POST_KEY + '": 2' in before["counts"][1]

    answer = act(client, auth, taken, "unapprove")
    assert answer.status_code == 200
    assert json_of(answer)["status"] == "pending"
    after = public_reads(client)
    for name, (etag, body) in after.items():
        assert etag != before[name][0], name
        assert "Published by mistake" not in body, name
        assert "Stays published" in body or name == "counts", name
    assert '"' + POST_KEY + '": 1' in after["counts"][1]
    # A revalidation with the old ETag gets the new thread, not a 304.
    old = client.get(THREAD, headers={"If-None-Match": before["thread"][0]})
    assert old.status_code == 200 and "Published by mistake" not in old.get_data(as_text=True)

    assert audits(session, taken)[-1] == (
        "unapprove",
        {"status": "approved"},
        {"status": "pending"},
    )
    assert events(session, taken)[-1] == "comment.unapproved"
    queue = json_of(client.get(f"{MODERATE}?status=pending", headers=auth))
    assert [c["id"] for c in queue["comments"]] == [taken]
    # Only an approved comment can be unapproved: the rest is "already moderated".
    again = act(client, auth, taken, "unapprove")
    assert again.status_code == 409
    assert json_of(again)["error"]["code"] == "already_moderated"


def test_approve_reverses_spam_and_rejected_decisions_in_one_step(
    client: FlaskClient, session: Session, auth: dict[str, str]
) -> None:
    site = session.scalars(select(Site)).one()
    site.reject_reasons = ["Off topic"]
    session.commit()
    filed, rejected, deleted = submit(client, 3)
    act(client, auth, filed, "spam")
    client.post(f"{MODERATE}/{rejected}/reject", json={"reason": "Off topic"}, headers=auth)
    act(client, auth, deleted, "delete")

    for public_id, reversal in ((filed, "not spam"), (rejected, "reversed")):
        answer = act(client, auth, public_id, "approve")
        assert answer.status_code == 200
        body = json_of(answer)
        assert body["status"] == "approved" and body["reject_reason"] is None
        action, before, after = audits(session, public_id)[-1]
        assert action == "approve"
        assert before["status"] in ("spam", "rejected")
        assert after == {"status": "approved", "reversal": reversal}
        assert events(session, public_id)[-1] == "comment.approved"
    published = json_of(client.get(COMMENTS))["comments"]
    assert sorted(c["id"] for c in published) == sorted([filed, rejected])
    # A deleted comment is restored first; an approved one is approved already.
    assert act(client, auth, deleted, "approve").status_code == 409
    assert act(client, auth, filed, "approve").status_code == 409


def test_a_fresh_decision_is_its_makers_to_reverse_for_the_undo_window(
    client: FlaskClient, session: Session, auth: dict[str, str]
) -> None:
    """Two moderators deciding one pending comment at the same moment: the second approve is
    refused, not turned into a reversal of a decision its moderator never saw."""
    (public_id,) = submit(client)
    marker = session.scalars(select(Moderator)).one()
    other = make_moderator(session, "colleague")
    moment = dt.datetime.now(dt.UTC)

    def approve(by: Moderator, at: dt.datetime) -> Comment:
        actor = Actor(by.login, by.id)
        return moderate_comment(session, by, public_id, "approve", actor=actor, now=at)

    moderate_comment(
        session, marker, public_id, "spam", actor=Actor(marker.login, marker.id), now=moment
    )
    with pytest.raises(AlreadyModerated, match="it is spam"):
        approve(other, moment + UNDO_WINDOW - dt.timedelta(seconds=1))
    assert approve(other, moment + UNDO_WINDOW).status is S.APPROVED
    # Its maker may reverse their own decision at once (as they may undo it).
    later = moment + UNDO_WINDOW
    for action in ("unapprove", "spam"):
        actor = Actor(other.login, other.id)
        moderate_comment(session, other, public_id, action, actor=actor, now=later)
    assert approve(other, later).status is S.APPROVED
    assert audits(session, public_id)[-1][2] == {"status": "approved", "reversal": "not spam"}


def test_bulk_approve_takes_spam_and_rejected_comments_too(
    client: FlaskClient, session: Session, auth: dict[str, str]
) -> None:
    pending, filed, rejected, deleted = submit(client, 4)
    act(client, auth, filed, "spam")
    act(client, auth, rejected, "reject")
    act(client, auth, deleted, "delete")
    result = json_of(
        client.post(
            "/api/v1/moderation/bulk",
            json={"ids": [pending, filed, rejected, deleted], "action": "approve"},
            headers=auth,
        )
    )
    assert result["done"] == [pending, filed, rejected]
    assert list(result["refused"]) == [deleted]
    reversals = [audits(session, i)[-1][2].get("reversal") for i in (pending, filed, rejected)]
    assert reversals == [None, "not spam", "reversed"]


def model(session: Session) -> dict[tuple[int, str], tuple[int, int]]:
    return {(r.scope, r.token): (r.spam, r.ham) for r in session.scalars(select(SpamToken))}


def test_the_learned_model_follows_a_reversal_and_an_unapproval(
    client: FlaskClient, session: Session, auth: dict[str, str]
) -> None:
    (public_id,) = submit(client, body="The bus timetable changes are welcome news")
    site_id = session.scalars(select(Site.id)).one()
    act(client, auth, public_id, "spam")
    session.expire_all()
    assert model(session)[(site_id, "timetable")] == (1, 0)
    act(client, auth, public_id, "approve")  # not spam: unlearn spam, learn legitimate
    session.expire_all()
    assert model(session)[(site_id, "timetable")] == (0, 1)
    assert model(session)[(site_id, learning.DOCUMENTS)] == (0, 1)
    act(client, auth, public_id, "unapprove")  # back to the queue: nothing learned from it
    session.expire_all()
    assert model(session) == {}
    comment = session.scalars(select(Comment).where(Comment.public_id == public_id)).one()
    assert comment.learned is None and comment.learned_tokens is None


def test_approving_what_the_filter_filed_as_spam_counts_as_rescued(
    client: FlaskClient, session: Session, auth: dict[str, str]
) -> None:
    (public_id,) = submit(client)
    comment = session.scalars(select(Comment).where(Comment.public_id == public_id)).one()
    comment.status, comment.verdict = S.SPAM, "spam"  # filed by the filter, no moderator
    session.commit()
    site_id = comment.post.site_id
    rescues = metrics.SPAM_OVERTURNS.labels("luac", "rescued")
    counted = rescues._value.get()
    assert learning.filter_report(session, site_id).rescued == 0
    assert act(client, auth, public_id, "approve").status_code == 200
    report = learning.filter_report(session, site_id)
    assert (report.filed, report.rescued) == (1, 1)
    assert rescues._value.get() == counted + 1
    # Unpublishing it later is no second rescue, and leaves the comment counted once.
    act(client, auth, public_id, "unapprove")
    assert learning.filter_report(session, site_id).rescued == 1
    assert rescues._value.get() == counted + 1


# Pins ----------------------------------------------------------------------------------------


def test_pinned_comments_come_first_in_every_public_read_marked_in_english_and_welsh(
    client: FlaskClient, session: Session, auth: dict[str, str]
) -> None:
    ids = submit(client, 4)
    for public_id in ids:
        act(client, auth, public_id, "approve")
    before = public_reads(client)
    answer = act(client, auth, ids[2], "pin")
    assert answer.status_code == 200
    assert json_of(answer)["pinned"] is True and json_of(answer)["pinned_at"]
    after = public_reads(client)
    for name in ("thread", "page", "json"):
        assert after[name][0] != before[name][0], name

    listed = json_of(client.get(COMMENTS))
    assert [c["id"] for c in listed["comments"]] == [ids[2], ids[0], ids[1], ids[3]]
    assert [c["pinned"] for c in listed["comments"]] == [True, False, False, False]
    # Pages after the first leave the pinned comment out: each comment is listed once.
    first = json_of(client.get(COMMENTS + "&limit=2"))
    assert [c["id"] for c in first["comments"]] == [ids[2], ids[0], ids[1]]
    rest = json_of(client.get(COMMENTS + f"&limit=2&cursor={first['next_cursor']}"))
    assert [c["id"] for c in rest["comments"]] == [ids[3]]

    for lang, label in (("en", "Pinned by the blog team"), ("cy", "Wedi'i binio gan dîm y blog")):
        html = client.get(f"{THREAD}&lang={lang}").get_data(as_text=True)
        order = re.findall(r'<li class="cm-comment[^"]*" id="comment-([^"]+)"', html)
        assert order[:4] == [ids[2], ids[0], ids[1], ids[3]]
        assert html.count(label.replace("'", "&#39;")) == 1
        assert f'<a class="cm-permalink" href="#comment-{ids[2]}"><time' in html
    # Feeds are chronological: newest first, pinned or not.
    feed = client.get(FEED).get_data(as_text=True)
    assert [feed.index(f"#comment-{i}</id>") for i in reversed(ids)] == sorted(
        feed.index(f"#comment-{i}</id>") for i in ids
    )

    assert audits(session, ids[2])[-1] == ("pin", {"pinned": False}, {"pinned": True})
    assert events(session, ids[2])[-1] == "comment.pinned"
    assert act(client, auth, ids[2], "unpin").status_code == 200
    assert audits(session, ids[2])[-1] == ("unpin", {"pinned": True}, {"pinned": False})
    assert events(session, ids[2])[-1] == "comment.unpinned"
    assert client.get(THREAD).headers["ETag"] != after["thread"][0]
    assert [c["id"] for c in json_of(client.get(COMMENTS))["comments"]] == ids


def test_pins_are_for_published_top_level_comments_three_a_post(
    client: FlaskClient, session: Session, auth: dict[str, str]
) -> None:
    ids = submit(client, 5)
    for public_id in ids[:4]:
        act(client, auth, public_id, "approve")
    (reply,) = submit(client, parent_id=ids[0])
    act(client, auth, reply, "approve")

    refused = act(client, auth, ids[4], "pin")  # pending
    assert refused.status_code == 422
    assert json_of(refused)["error"]["fields"] == {
        "comment": "Only a published comment can be pinned"
    }
    assert json_of(act(client, auth, reply, "pin"))["error"]["fields"] == {
        "comment": "Only a top-level comment can be pinned"
    }
    for public_id in ids[:3]:
        assert act(client, auth, public_id, "pin").status_code == 200
    fourth = act(client, auth, ids[3], "pin")
    assert fourth.status_code == 422
    assert "at most 3" in json_of(fourth)["error"]["fields"]["comment"]
    # Pinning again and unpinning what is not pinned change nothing, and audit nothing.
    audited = session.scalar(select(func.count()).select_from(AuditEvent))
    assert act(client, auth, ids[0], "pin").status_code == 200
    assert act(client, auth, ids[3], "unpin").status_code == 200
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == audited
    assert act(client, auth, ids[0], "unpin").status_code == 200
    assert act(client, auth, ids[3], "pin").status_code == 200
    assert act(client, auth, "no-such-comment", "pin").status_code == 404


def test_unapproving_or_deleting_a_pinned_comment_unpins_it(
    client: FlaskClient, session: Session, auth: dict[str, str]
) -> None:
    unapproved, deleted = submit(client, 2)
    for public_id in (unapproved, deleted):
        act(client, auth, public_id, "approve")
        act(client, auth, public_id, "pin")
    act(client, auth, unapproved, "unapprove")
    act(client, auth, deleted, "delete")
    session.expire_all()
    assert session.scalar(select(func.count()).where(Comment.pinned_at.is_not(None))) == 0
    act(client, auth, unapproved, "approve")  # published again: not pinned again
    listed = json_of(client.get(COMMENTS))["comments"]
    assert [(c["id"], c["pinned"]) for c in listed] == [(unapproved, False)]


# Permalinks ----------------------------------------------------------------------------------


def add_approved(session: Session, n: int) -> list[str]:
    """``n`` approved top-level comments on the test post, oldest first (no queue needed)."""
    site = session.scalars(select(Site)).one()
    post = Post(site=site, key=POST_KEY, title="A long thread", url="https://l.example/p/")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    comments = [
        Comment(
            post=post,
            author_name=f"Reader {n}",
            author_email=f"reader{n}@example.com",
            body_text=f"Comment number {n}",
            body_html=f"<p>Comment number {n}</p>",
            status=S.APPROVED,
            submitted_at=start + dt.timedelta(minutes=n),
        )
        for n in range(1, n + 1)
    ]
    session.add_all(comments)
    session.commit()
    return [c.public_id for c in comments]


def shown(html: str) -> list[str]:
    return re.findall(r"Comment number (\d+)<", html)


def without_token(html: str) -> str:
    return re.sub(r'name="form_token" value="[^"]*"', "", html)


@pytest.fixture
def paged(engine: Engine, connection: Any, session: Session) -> Iterator[FlaskClient]:
    app: Flask = make_app(engine, connection, embed_page_size=100)
    make_site(session)
    with app.test_client() as client:
        yield client


def test_a_permalink_serves_the_page_of_a_long_thread_that_holds_the_comment(
    paged: FlaskClient, session: Session
) -> None:
    ids = add_approved(session, 400)
    first = paged.get(THREAD).get_data(as_text=True)
    assert shown(first) == [str(n) for n in range(1, 101)]
    assert "Show the first comments" not in first
    for mode in ("", "&page=1", "&lang=cy", "&page=1&lang=cy"):
        html = paged.get(f"{THREAD}{mode}&comment={ids[349]}").get_data(as_text=True)
        assert shown(html) == [str(n) for n in range(301, 401)], mode
        assert f'id="comment-{ids[349]}"' in html
        label = "Dangos y sylwadau cyntaf" if "cy" in mode else "Show the first comments"
        assert label in html, mode
    # The page boundaries: the 100th comment is on the first page, the 101st on the second.
    assert shown(paged.get(f"{THREAD}&comment={ids[99]}").get_data(as_text=True))[0] == "1"
    assert shown(paged.get(f"{THREAD}&comment={ids[100]}").get_data(as_text=True))[0] == "101"
    # The first page's link back goes to the post (a fragment) or the first page (standalone).
    later = paged.get(f"{THREAD}&comment={ids[249]}").get_data(as_text=True)
    assert 'class="cm-first-link" href="https://l.example/p/"' in later

    # A pinned comment shows on the first page, and the pages count without it.
    last = session.scalars(select(Comment).where(Comment.public_id == ids[399])).one()
    last.pinned_at = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    last.post.version += 1  # as pin_comment does: the thread's ETag changes
    session.commit()
    assert shown(paged.get(f"{THREAD}&comment={ids[399]}").get_data(as_text=True))[0] == "400"
    html = paged.get(f"{THREAD}&comment={ids[349]}").get_data(as_text=True)
    assert shown(html) == [str(n) for n in range(301, 400)]


def test_an_unknown_or_unpublished_permalink_serves_the_first_page_without_an_oracle(
    paged: FlaskClient, session: Session
) -> None:
    ids = add_approved(session, 150)
    hidden = session.scalars(select(Comment).where(Comment.public_id == ids[120])).one()
    hidden.status = S.PENDING
    session.commit()
    first = without_token(paged.get(THREAD).get_data(as_text=True))
    for value in (ids[120], "no-such-id", "x" * 10_000, "<script>", "%00", ids[0]):
        started = time.thread_time()
        response = paged.get(
            "/embed/luac/thread", query_string={"post": POST_KEY, "comment": value}
        )
        assert time.thread_time() - started < 1
        assert response.status_code == 200
        assert without_token(response.get_data(as_text=True)) == first, value[:20]


# The queue -----------------------------------------------------------------------------------


def test_the_queue_offers_not_spam_approve_unpublish_and_pins_in_place(
    client: FlaskClient, session: Session, auth: dict[str, str]
) -> None:
    filed, rejected, published = submit(client, 3)
    act(client, auth, filed, "spam")
    act(client, auth, rejected, "reject")
    act(client, auth, published, "approve")
    login(client)

    def buttons(status: str, public_id: str) -> list[tuple[str, str]]:
        page = client.get(f"/moderate/?status={status}").get_data(as_text=True)
        card = page[page.index(f'id="queue-{public_id}"') :]
        card = card[: card.index("</li>")]
        found: list[tuple[str, str]] = re.findall(r'data-action="(\w+)">([^<]+)<', card)
        return found

    assert ("approve", "Not spam") in buttons("spam", filed)
    assert ("approve", "Approve") in buttons("rejected", rejected)
    assert {("unapprove", "Unpublish"), ("pin", "Pin")} <= set(buttons("approved", published))

    page = client.get("/moderate/?status=approved").get_data(as_text=True)
    form = {"csrf_token": csrf_from(page), "next": "/moderate/?status=approved"}
    headers = {"Accept": "application/json"}
    pinned = json_of(client.post(f"/moderate/comments/{published}/pin", data=form,
                                 headers=headers))  # fmt: skip
    assert pinned["message"] == "Comment by Ada Lovelace pinned to the top of its thread."
    assert 'data-action="unpin"' in pinned["card"] and "undo" not in pinned
    unpublished = json_of(client.post(f"/moderate/comments/{published}/unapprove", data=form,
                                      headers=headers))  # fmt: skip
    assert unpublished["status"] == "pending"
    assert unpublished["message"] == "Comment by Ada Lovelace unpublished: it is back in the queue."
    assert unpublished["counts"]["approved"] == "0"
    assert "queue-item--done" in unpublished["card"]
    rescued = json_of(client.post(f"/moderate/comments/{filed}/approve", data=form,
                                  headers=headers))  # fmt: skip
    assert rescued["status"] == "approved"
    # The audit page says what was reversed.
    audit = client.get("/moderate/audit").get_data(as_text=True)
    assert "spam → approved, reversal: not spam" in audit
    assert "Unpublished (back to the queue)" in audit and "Pinned" in audit


# Concurrency ---------------------------------------------------------------------------------


@pytest.fixture
def committed(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions that really commit, on a site of their own that is removed afterwards."""
    factory = sessionmaker(engine, expire_on_commit=False)
    yield factory
    with factory() as session:
        remove_site(session, "pins")
        session.execute(delete(Moderator).where(Moderator.login.like("pinner-%")))
        session.commit()


@pytest.mark.concurrency
def test_moderators_pinning_at_once_never_make_a_fourth_pin(
    committed: sessionmaker[Session],
) -> None:
    racers = 6
    with committed() as session:
        site = create_site(session, slug="pins", name="Pins", origins=["https://pins.example"])
        pinners = [
            create_moderator(
                session,
                password_hasher(fast=True),
                login=f"pinner-{n}",
                email=f"pinner-{n}@example.org",
                password="long enough password",
                role=Role.ADMIN,
            )
            for n in range(racers)
        ]
        posts = [
            Post(site=site, key=f"/p{n}/", url=f"https://pins.example/p{n}/") for n in range(3)
        ]
        candidates = [
            [
                Comment(
                    post=post,
                    author_name="A",
                    author_email="a@example.com",
                    body_text=f"{n}",
                    body_html=f"<p>{n}</p>",
                    status=S.APPROVED,
                )
                for n in range(racers)
            ]
            for post in posts
        ]
        session.add_all([c for each in candidates for c in each])
        session.commit()

    outcomes: list[str] = []
    lock = threading.Lock()

    def pin(moderator: Moderator, public_id: str, barrier: threading.Barrier) -> None:
        with committed() as session:
            barrier.wait()
            begin_as_writer(session)
            try:
                pin_comment(
                    session,
                    session.get_one(Moderator, moderator.id),
                    public_id,
                    actor=Actor(moderator.login, moderator.id),
                    now=dt.datetime.now(dt.UTC),
                )
                session.commit()
                result = "pinned"
            except ValidationFailed:
                session.rollback()
                result = "refused"
        with lock:
            outcomes.append(result)

    for comments in candidates:
        barrier = threading.Barrier(racers)
        threads = [
            threading.Thread(target=pin, args=(pinners[n], comments[n].public_id, barrier))
            for n in range(racers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert sorted(outcomes) == ["pinned"] * 9 + ["refused"] * 9
    with committed() as session:
        pinned = session.execute(
            select(Post.key, func.count(Comment.id))
            .join(Comment, Comment.post_id == Post.id)
            .join(Site)
            .where(Site.slug == "pins", Comment.pinned_at.is_not(None))
            .group_by(Post.key)
        ).all()
        assert sorted(pinned) == [("/p0/", 3), ("/p1/", 3), ("/p2/", 3)]
        audited = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .join(Comment, AuditEvent.comment_id == Comment.id)
            .join(Post)
            .join(Site)
            .where(Site.slug == "pins", AuditEvent.action == "pin")
        )
        assert audited == 9
