"""Readers report published comments: the JSON route and the no-script form, the take-down from
every public read, moderators' Reported tab and dismissal, and what the public never learns."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, template_rendered
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from moderation import create_app, metrics, schema
from moderation.actions import moderate_comment, pin_comment
from moderation.db import make_engine
from moderation.events import Actor
from moderation.models import (
    AuditEvent,
    Comment,
    CommentStatus,
    Event,
    Moderator,
    Post,
    Report,
    ReportReason,
    Site,
    utcnow,
)
from moderation.sites import create_site
from tests.browser import serving
from tests.helpers import (
    ORIGIN,
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
    settings_for_tests,
)
from tests.mailserver import MailTest, parts

THREAD = f"/embed/luac/thread?post={POST_KEY}"
LISTING = f"/api/v1/sites/luac/comments?post={POST_KEY}"
COUNTS = f"/api/v1/sites/luac/counts?post={POST_KEY}"
FEED = f"/api/v1/sites/luac/feed.atom?post={POST_KEY}"
SITE_FEED = "/api/v1/sites/luac/feed.atom"
PUBLIC_READS = (THREAD, f"{THREAD}&page=1", LISTING, COUNTS, FEED, SITE_FEED)
DETAIL = "This names my neighbour and her address"
_numbers = itertools.count()


def report_url(comment_id: str, site: str = "luac") -> str:
    return f"/api/v1/sites/{site}/comments/{comment_id}/reports"


def published(client: FlaskClient, session: Session, moderator: Moderator, **fields: str) -> str:
    """A comment submitted and approved by a moderator."""
    fields.setdefault("body", f"Comment number {next(_numbers)} on this post.")
    response = client.post("/api/v1/sites/luac/comments", json=comment_json(**fields))
    assert response.status_code == 202, response.get_data(as_text=True)
    comment_id: str = json_of(response)["id"]
    actor = Actor(moderator.login, moderator.id)
    moderate_comment(session, moderator, comment_id, "approve", actor=actor, now=utcnow())
    session.commit()
    return comment_id


def report(
    client: FlaskClient,
    comment_id: str,
    network: str = "198.51.100.7",
    reason: str = "abusive",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> TestResponse:
    return client.post(
        report_url(comment_id),
        json={"reason": reason, **extra},
        headers=headers,
        environ_base={"REMOTE_ADDR": network},
    )


def stored(session: Session, comment_id: str) -> Comment:
    session.expire_all()
    return session.scalars(select(Comment).where(Comment.public_id == comment_id)).one()


def reports_of(session: Session, comment_id: str) -> list[Report]:
    comment = stored(session, comment_id)
    query = select(Report).where(Report.comment_id == comment.id).order_by(Report.id)
    return list(session.scalars(query))


def public_bodies(client: FlaskClient) -> dict[str, str]:
    """Every public read's body, without the form's time-trap token (fresh in every answer)."""
    bodies = {}
    for url in PUBLIC_READS:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        body = response.get_data(as_text=True)
        bodies[url] = re.sub(r'name="form_token" value="[^"]*"', "", body)
    return bodies


def etags(client: FlaskClient) -> dict[str, str | None]:
    return {url: client.get(url).headers.get("ETag") for url in PUBLIC_READS}


@pytest.fixture
def moderator(session: Session) -> Moderator:
    make_site(session)
    return make_moderator(session)


def test_the_answer_is_the_same_whatever_a_report_changes(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    comment_id = published(client, session, moderator)
    waiting = json_of(client.post("/api/v1/sites/luac/comments", json=comment_json()))["id"]
    answers = [
        report(client, comment_id),  # counted
        report(client, comment_id, reason="spam"),  # the same network again
        report(client, waiting),  # not published
        report(client, "no-such-comment"),
        report(client, "x" * 10_000),
    ]
    assert {(r.status_code, r.get_data(as_text=True)) for r in answers} == {
        (202, '{"status":"received"}\n')
    }
    assert [r.reason for r in reports_of(session, comment_id)] == ["abusive"]
    assert reports_of(session, waiting) == []
    missing = client.post(report_url(comment_id, site="nowhere"), json={"reason": "spam"})
    assert missing.status_code == 404


def test_reports_from_enough_networks_take_a_comment_down_from_every_public_read(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    kept = published(client, session, moderator, body="A comment that stays up.")
    comment_id = published(client, session, moderator, body="A comment readers object to.")
    before, shown = etags(client), public_bodies(client)
    assert all("readers object to" in body for url, body in shown.items() if url != COUNTS)
    assert '"' + POST_KEY + '": 2' in shown[COUNTS]

    # Two networks (one of them twice, from another address in its /24): not yet.
    for network in ("198.51.100.7", "198.51.100.99", "203.0.113.5"):
        assert report(client, comment_id, network).status_code == 202
    assert stored(session, comment_id).status is CommentStatus.APPROVED
    assert etags(client) == before  # nothing public changed

    assert report(client, comment_id, "2001:db8:5::1", reason="off_topic").status_code == 202
    comment = stored(session, comment_id)
    assert comment.status is CommentStatus.PENDING
    (signal,) = [s for s in comment.signals if s["check"] == "reported"]
    assert signal["counts"] == {"abusive": 2, "off_topic": 1}
    assert "3 networks" in signal["reason"]

    after, now_shown = etags(client), public_bodies(client)
    assert all(after[url] != before[url] for url in PUBLIC_READS), (before, after)
    for url, body in now_shown.items():
        assert "readers object to" not in body, url
        assert comment_id not in body, url
    assert "stays up" in now_shown[LISTING]
    assert '"' + POST_KEY + '": 1' in now_shown[COUNTS]
    assert stored(session, kept).status is CommentStatus.APPROVED

    audits = session.scalars(
        select(AuditEvent).where(AuditEvent.comment_id == comment.id, AuditEvent.action == "report")
    ).all()
    assert [a.after["status"] for a in audits] == ["approved", "approved", "pending"]
    assert all("198.51" not in str(a.after) + a.actor for a in audits)
    events = session.scalars(
        select(Event).where(Event.comment_id == comment.id, Event.type == "comment.reported")
    ).all()
    assert [e.payload["data"]["report"]["taken_down"] for e in events] == [False, False, True]
    assert events[-1].payload["data"]["status"] == "pending"


def test_one_personal_data_report_takes_a_comment_down_and_withholds_its_text(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    comment_id = published(client, session, moderator, body="Call Jo on the number I gave.")
    taken = metrics.REPORTS.labels("personal_data", "taken_down")._value.get()
    assert report(client, comment_id, reason="personal_data", detail=DETAIL).status_code == 202
    comment = stored(session, comment_id)
    assert comment.status is CommentStatus.PENDING
    assert metrics.REPORTS.labels("personal_data", "taken_down")._value.get() == taken + 1
    event = session.scalars(
        select(Event).where(Event.comment_id == comment.id, Event.type == "comment.reported")
    ).one()
    data = event.payload["data"]
    assert data["text_withheld"] is True and data["body_text"] is None
    assert data["report"] == {
        "reason": "personal_data",
        "reports": 1,
        "counts": {"personal_data": 1},
        "taken_down": True,
    }
    assert DETAIL not in str(event.payload)  # a reader's words go to moderators only
    schema = json.loads(
        (Path(__file__).parents[1] / "docs/webhook-payload.schema.json").read_text()
    )
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert [e.message for e in validator.iter_errors(event.payload)] == []


def test_dismissing_republishes_and_the_same_reports_never_count_again(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    token = make_token(session, moderator)
    auth = {"Authorization": f"Bearer {token}"}
    comment_id = published(client, session, moderator)
    networks = ("198.51.100.1", "198.51.101.1", "198.51.102.1")
    for network in networks:
        report(client, comment_id, network)
    assert stored(session, comment_id).status is CommentStatus.PENDING
    before = client.get(THREAD).headers["ETag"]

    response = client.post(
        f"/api/v1/moderation/comments/{comment_id}/dismiss-reports", headers=auth
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = json_of(response)
    assert body["status"] == "approved"
    assert not [s for s in body["signals"] if s["check"] == "reported"]
    assert [r["dismissed_at"] is not None for r in body["reports"]] == [True] * 3
    assert client.get(THREAD).headers["ETag"] != before
    assert comment_id in client.get(LISTING).get_data(as_text=True)

    # The same networks again: nothing counts. Two new ones: still below the threshold of 3.
    for network in (*networks, "203.0.113.1", "203.0.114.1"):
        assert report(client, comment_id, network).status_code == 202
    assert stored(session, comment_id).status is CommentStatus.APPROVED
    live = [r for r in reports_of(session, comment_id) if r.dismissed_at is None]
    assert len(live) == 2
    report(client, comment_id, "203.0.115.1")
    assert stored(session, comment_id).status is CommentStatus.PENDING

    # Approving a comment readers took down answers their reports too.
    actor = Actor(moderator.login, moderator.id)
    moderate_comment(session, moderator, comment_id, "approve", actor=actor, now=utcnow())
    session.commit()
    assert all(r.dismissed_at is not None for r in reports_of(session, comment_id))
    report(client, comment_id, "203.0.116.1")
    assert stored(session, comment_id).status is CommentStatus.APPROVED
    # Nothing left to dismiss: nothing changes, and no audit says otherwise.
    again = client.post(f"/api/v1/moderation/comments/{comment_id}/dismiss-reports", headers=auth)
    assert json_of(again)["status"] == "approved"
    dismissals = session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "dismiss_reports")
    )
    assert dismissals == 2


def test_moderators_list_reported_comments_with_every_reason_and_detail(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    auth = {"Authorization": f"Bearer {make_token(session, moderator)}"}
    quiet = published(client, session, moderator)
    comment_id = published(client, session, moderator)
    report(client, comment_id, "198.51.100.1", detail=DETAIL)
    report(client, comment_id, "198.51.101.1", reason="spam")
    listed = json_of(client.get("/api/v1/moderation/comments?reported=true", headers=auth))
    assert [c["id"] for c in listed["comments"]] == [comment_id]  # approved, and still listed
    reports = listed["comments"][0]["reports"]
    assert [(r["reason"], r["detail"]) for r in reports] == [("abusive", DETAIL), ("spam", None)]
    assert all(set(r) == {"reason", "detail", "created_at", "dismissed_at"} for r in reports)
    assert "198.51" not in str(listed)
    assert (
        json_of(client.get(f"/api/v1/moderation/comments/{quiet}", headers=auth))["reports"] == []
    )
    pending_only = client.get(
        "/api/v1/moderation/comments?reported=true&status=pending", headers=auth
    )
    assert json_of(pending_only)["comments"] == []
    for value in ("yes", "", "TRUE"):
        bad = client.get(f"/api/v1/moderation/comments?reported={value}", headers=auth)
        assert bad.status_code == 400 and "reported" in json_of(bad)["error"]["fields"]


def test_nothing_public_reveals_reports_or_reporters(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    comment_id = published(client, session, moderator)
    shown = public_bodies(client)
    report(client, comment_id, "198.51.100.1", detail=DETAIL)
    after = public_bodies(client)
    assert after == shown  # one report below the threshold changes nothing public
    for body in after.values():
        assert DETAIL not in body and "198.51" not in body
    page = client.get(f"/embed/luac/comments/{comment_id}/report")
    assert DETAIL not in page.get_data(as_text=True)


def test_a_hostile_detail_costs_bounded_time_and_is_not_echoed(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    comment_id = published(client, session, moderator)
    for hostile in ("<script>" * 1250, "\x00\x1f" * 5000, "a\r\n" * 3400, "é" * 10_000):
        started = time.thread_time()
        response = report(client, comment_id, detail=hostile)
        elapsed = time.thread_time() - started
        assert response.status_code == 422 and elapsed < 0.5, (hostile[:10], elapsed)
        error = json_of(response)["error"]
        assert set(error["fields"]) == {"detail"} and hostile[:20] not in str(error)
    # Control characters go; line breaks are kept; 500 characters are enough.
    ok = report(client, comment_id, detail="a\x00b\r\n" + "c" * 495)
    assert ok.status_code == 202
    (kept,) = reports_of(session, comment_id)
    assert kept.detail == "ab\n" + "c" * 495
    for bad in ({"reason": "rude"}, {"reason": ["spam"]}, {"reason": "spam", "detail": 5}, {}):
        response = client.post(report_url(comment_id), json=bad)
        assert response.status_code == 422, bad
    assert client.post(report_url(comment_id), data="reason=spam").status_code == 415


def test_origin_rules_and_closed_posts_are_those_of_submissions(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    comment_id = published(client, session, moderator)
    foreign = report(client, comment_id, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    own = client.post(report_url(comment_id), json={"reason": "spam"}, headers={"Origin": ORIGIN})
    assert own.status_code == 202
    assert own.headers["Access-Control-Allow-Origin"] == ORIGIN
    post = session.scalars(select(Post)).one()
    post.closed = True
    session.commit()
    closed = report(client, comment_id, "203.0.113.9")
    assert closed.status_code == 403 and json_of(closed)["error"]["code"] == "thread_closed"
    assert client.get(f"/embed/luac/comments/{comment_id}/report").status_code == 403
    assert f"/comments/{comment_id}/report" not in client.get(THREAD).get_data(as_text=True)


def test_reports_are_rate_limited_per_network(
    engine: Engine, connection: Any, session: Session, moderator: Moderator
) -> None:
    limited = make_app(engine, connection, ratelimit_enabled=True).test_client()
    comment_id = published(limited, session, moderator)
    statuses = [report(limited, comment_id, "192.0.2.1").status_code for _ in range(6)]
    assert statuses == [202] * 5 + [429]
    refused = report(limited, comment_id, "192.0.2.77")  # the same /24
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert json_of(refused)["error"]["code"] == "rate_limited"
    assert report(limited, comment_id, "192.0.3.1").status_code == 202
    welsh = limited.post(
        f"/embed/luac/comments/{comment_id}/report?lang=cy",
        data={"reason": "spam"},
        environ_base={"REMOTE_ADDR": "192.0.2.1"},
    )
    assert welsh.status_code == 429 and "sawl adroddiad" in welsh.get_data(as_text=True)


def test_the_report_threshold_is_a_site_setting(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    auth = {"Authorization": f"Bearer {make_token(session, moderator)}"}
    site = json_of(client.get("/api/v1/moderation/sites/luac", headers=auth))
    assert site["report_threshold"] == 3
    for bad in (0, 101, 2.5, True, "3"):
        response = client.patch(
            "/api/v1/moderation/sites/luac", json={"report_threshold": bad}, headers=auth
        )
        assert response.status_code == 422, bad
    response = client.patch(
        "/api/v1/moderation/sites/luac", json={"report_threshold": 1}, headers=auth
    )
    assert json_of(response)["report_threshold"] == 1
    comment_id = published(client, session, moderator)
    report(client, comment_id, reason="off_topic")
    assert stored(session, comment_id).status is CommentStatus.PENDING

    login(client)
    page = client.get("/moderate/admin/sites/luac").get_data(as_text=True)
    assert 'name="report_threshold"' in page
    form = {"csrf_token": csrf_from(page), "report_threshold": "5"}
    assert client.post("/moderate/admin/sites/luac", data=form).status_code == 303
    session.expire_all()
    assert session.scalars(select(Site)).one().report_threshold == 5


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_without_script_the_report_form_posts_and_returns_to_the_post(
    client: FlaskClient, session: Session, moderator: Moderator, lang: str
) -> None:
    comment_id = published(client, session, moderator, body="Reported without script.")
    thread = client.get(f"{THREAD}&lang={lang}").get_data(as_text=True)
    link = f"https://comments.example.org/embed/luac/comments/{comment_id}/report"
    assert (link + (f"?lang={lang}" if lang == "cy" else "")) in thread
    assert 'id="comment-reported"' in thread
    page = client.get(f"/embed/luac/comments/{comment_id}/report?lang={lang}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Reported without script." in html
    assert ("Rhoi gwybod am sylw" if lang == "cy" else "Report a comment") in html
    assert (
        html.count('type="radio"') == 5
        and "frame-ancestors" in page.headers["Content-Security-Policy"]
    )
    action = f"/embed/luac/comments/{comment_id}/report?lang={lang}"
    missing = client.post(action, data={"detail": "No reason given"})
    assert missing.status_code == 422
    problem = missing.get_data(as_text=True)
    assert "cm-error-summary" in problem and "No reason given" in problem  # kept, escaped
    expected = "Dewiswch pam" if lang == "cy" else "Choose why you are reporting"
    assert expected in problem
    sent = client.post(action, data={"reason": "abusive", "detail": "Rude"})
    assert sent.status_code == 303
    assert sent.headers["Location"] == f"{ORIGIN}{POST_KEY}#comment-reported"
    assert [r.detail for r in reports_of(session, comment_id)] == ["Rude"]
    # From the iframe's page, back to that page.
    framed = client.post(
        f"{action}&page=1",
        data={"reason": "spam"},
        headers={"Sec-Fetch-Dest": "iframe"},
        environ_base={"REMOTE_ADDR": "203.0.113.8"},
    )
    assert framed.status_code == 303 and "page=1" in framed.headers["Location"]
    assert framed.headers["Location"].endswith("#comment-reported")
    assert client.get("/embed/luac/comments/nothing/report").status_code == 404


def test_moderators_see_the_reported_tab_and_dismiss_reports_in_the_queue(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    comment_id = published(client, session, moderator)
    for n in range(3):
        report(client, comment_id, f"198.51.{n}.1", detail=f"Detail number {n}")
    login(client)
    queue = client.get("/moderate/?reported=true").get_data(as_text=True)
    assert "Reported comments" in queue and 'data-count="reported"' in queue
    assert 'Reported <span class="count">(1)</span>' in queue
    assert all(f"Detail number {n}" in queue for n in range(3))
    assert f"/moderate/comments/{comment_id}/dismiss-reports" in queue
    assert "publish it again" in queue
    page = client.get(f"/moderate/comments/{comment_id}").get_data(as_text=True)
    assert "Reported by readers" in page
    refused = client.post(f"/moderate/comments/{comment_id}/dismiss-reports", data={})
    assert refused.status_code == 400  # no CSRF token
    response = client.post(
        f"/moderate/comments/{comment_id}/dismiss-reports",
        data={"csrf_token": csrf_from(queue), "next": "/moderate/?reported=true"},
    )
    assert response.status_code == 303
    assert stored(session, comment_id).status is CommentStatus.APPROVED
    after = client.get("/moderate/?reported=true").get_data(as_text=True)
    assert "There are no comments here." in after
    in_place = client.post(
        f"/moderate/comments/{comment_id}/dismiss-reports",
        data={"csrf_token": csrf_from(queue), "next": "/moderate/?reported=true"},
        headers={"Accept": "application/json"},
    )
    assert json_of(in_place)["counts"]["reported"] == "0"


# Real concurrency: committed data, a real server, two readers at the same moment --------------


@pytest.fixture
def racing(engine: Engine, tmp_path: Any) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """A server on the suite's database (PostgreSQL when set) whose clients' addresses come from
    X-Forwarded-For; its site is removed afterwards."""
    url = engine.url.render_as_string(hide_password=False)
    app: Flask = create_app(settings_for_tests(database_url=url, trusted_proxy_hops=1))
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        create_site(session, slug="race", name="Race", origins=["https://race.example"])
        session.commit()
    try:
        with serving(app) as base:
            yield base, factory
    finally:
        with factory() as session:
            remove_site(session, "race")
            session.commit()
        app.extensions["moderation.engine"].dispose()


def _published_race_comment(factory: sessionmaker[Session], threshold: int) -> str:
    from moderation.comments import submit_comment
    from moderation.validation import CommentSubmission

    with factory() as session:
        site = session.scalars(select(Site).where(Site.slug == "race")).one()
        site.report_threshold = threshold
        comment = submit_comment(
            session,
            "race",
            CommentSubmission(
                post="/race/", author_name="A", author_email="a@example.com", body="Race me"
            ),
            now=utcnow(),
        )
        comment.status = CommentStatus.APPROVED
        session.commit()
        return comment.public_id


def _race(base: str, comment_id: str, networks: list[str]) -> list[int]:
    barrier = threading.Barrier(len(networks))
    statuses: list[int] = []
    lock = threading.Lock()

    def send(network: str) -> None:
        request = urllib.request.Request(
            f"{base}/api/v1/sites/race/comments/{comment_id}/reports",
            data=b'{"reason": "abusive"}',
            headers={"Content-Type": "application/json", "X-Forwarded-For": network},
            method="POST",
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send, args=(n,)) for n in networks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


@pytest.mark.concurrency
def test_two_concurrent_reports_count_exactly(racing: tuple[str, sessionmaker[Session]]) -> None:
    base, factory = racing
    for _ in range(3):
        # One network twice at the same moment: one report counts.
        same = _published_race_comment(factory, threshold=3)
        assert _race(base, same, ["198.51.100.1", "198.51.100.2"]) == [202, 202]
        # Two networks at the same moment reach a threshold of two: taken down once.
        pair = _published_race_comment(factory, threshold=2)
        assert _race(base, pair, ["198.51.100.1", "203.0.113.1"]) == [202, 202]
        with factory() as session:
            counted = {
                public_id: session.scalar(
                    select(func.count())
                    .select_from(Report)
                    .join(Comment, Report.comment_id == Comment.id)
                    .where(Comment.public_id == public_id)
                )
                for public_id in (same, pair)
            }
            assert counted == {same: 1, pair: 2}
            down = session.scalars(select(Comment).where(Comment.public_id == pair)).one()
            assert down.status is CommentStatus.PENDING
            version = session.scalars(select(Post).where(Post.key == "/race/")).one().version
            audits = session.scalars(
                select(AuditEvent.after).where(
                    AuditEvent.comment_id == down.id, AuditEvent.action == "report"
                )
            ).all()
            assert sorted(a["status"] for a in audits) == ["approved", "pending"]
            assert version >= 2


def test_reporters_networks_go_after_the_client_data_retention_period(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    from moderation.personal_data import Retention, purge_expired

    comment_id = published(client, session, moderator)
    for network in ("198.51.100.1", "203.0.113.1"):
        report(client, comment_id, network)
    first, _ = reports_of(session, comment_id)
    first.created_at = utcnow() - dt.timedelta(days=31)
    session.commit()
    for _ in range(2):  # a second run changes nothing more
        purge_expired(session, Retention(client_data_days=30), now=utcnow())
        session.commit()
    session.expire_all()
    assert [r.network for r in reports_of(session, comment_id)] == [
        f"purged:{first.id}",
        "203.0.113.0/24",
    ]
    assert stored(session, comment_id).status is CommentStatus.APPROVED  # still two, live


def test_integrations_hear_of_reports_and_the_route_answers_cors_preflights(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    from moderation.webhooks.chat import line_for

    comment_id = published(client, session, moderator)
    preflight = client.options(
        report_url(comment_id),
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    report(client, comment_id, reason="personal_data")
    event = session.scalars(select(Event).where(Event.type == "comment.reported")).one()
    line = line_for(event.payload)
    assert (
        line == "Blog luac: comment reported by readers and taken down on “From industrial "
        "decline to growth”"
    )
    event.payload["data"]["report"]["taken_down"] = False
    assert "comment reported by a reader on" in line_for(event.payload)


def test_the_sites_moderators_are_mailed_when_readers_take_a_comment_down(mail: MailTest) -> None:
    from moderation import reports

    with mail.sessions() as session:
        make_site(session)
        moderator = make_moderator(session)
        comment_id = published_directly(session, moderator)
        submission = reports.ReportSubmission(ReportReason.PERSONAL_DATA, DETAIL)
        reports.report_comment(
            session, "luac", comment_id, submission, now=utcnow(), network="198.51.100.0/24"
        )
        session.commit()
    assert mail.send() == 2  # when it was submitted, and now
    message = mail.inbox.messages[-1]
    text, _ = parts(message)
    assert "waiting for moderation" in text and "Reported by readers from 1 network" in text
    assert DETAIL not in text  # a reader's words stay in the queue


def published_directly(session: Session, moderator: Moderator) -> str:
    from moderation.comments import submit_comment
    from moderation.validation import CommentSubmission

    comment = submit_comment(
        session,
        "luac",
        CommentSubmission(post=POST_KEY, author_name="A", author_email="a@example.com", body="Hi"),
        now=utcnow(),
    )
    actor = Actor(moderator.login, moderator.id)
    moderate_comment(session, moderator, comment.public_id, "approve", actor=actor, now=utcnow())
    session.commit()
    return comment.public_id


def test_hostile_comments_are_escaped_on_the_report_page(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    comment_id = published(
        client,
        session,
        moderator,
        author_name='"><script>alert(1)</script>',
        body='<img src=x onerror="alert(2)"><a href="javascript:alert(3)">x</a>',
    )
    for url in (f"/embed/luac/comments/{comment_id}/report?lang=cy", THREAD):
        html = client.get(url).get_data(as_text=True)
        assert "<script>alert" not in html and "<img" not in html, url
        assert 'href="javascript:' not in html and not re.search(r"<[^>]+\son\w+=", html), url


def test_dismissing_reports_never_republishes_what_a_moderator_unpublished(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    """Approving a comment readers took down answers their reports; a later Unpublish is the
    moderator's decision, which no dismissal of reports may reverse."""
    auth = {"Authorization": f"Bearer {make_token(session, moderator)}"}
    comment_id = published(client, session, moderator)
    report(client, comment_id, reason="personal_data")
    assert stored(session, comment_id).status is CommentStatus.PENDING
    actor = Actor(moderator.login, moderator.id)
    moderate_comment(session, moderator, comment_id, "approve", actor=actor, now=utcnow())
    session.commit()
    assert not [s for s in stored(session, comment_id).signals if s["check"] == "reported"]
    later = utcnow() + dt.timedelta(minutes=5)
    moderate_comment(session, moderator, comment_id, "unapprove", actor=actor, now=later)
    session.commit()

    response = client.post(
        f"/api/v1/moderation/comments/{comment_id}/dismiss-reports", headers=auth
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert json_of(response)["status"] == "pending"
    assert stored(session, comment_id).status is CommentStatus.PENDING
    assert comment_id not in client.get(LISTING).get_data(as_text=True)


def test_a_site_name_no_site_can_have_is_not_counted_in_the_rate_limiter(
    engine: Engine, connection: Any, session: Session, moderator: Moderator
) -> None:
    """The limiter's keys hold the site's name from the address: a 4 kB name must not become
    4 kB keys, two a request, kept for an hour."""
    app = make_app(engine, connection, ratelimit_enabled=True)
    limited = app.test_client()
    name = "x" * 4000
    answers = [
        limited.post(f"/api/v1/sites/{name}/comments/abc/reports", json={"reason": "spam"}),
        limited.post(f"/embed/{name}/comments/abc/report", data={"reason": "spam"}),
        limited.post(f"/api/v1/sites/{name}/comments", json=comment_json()),
    ]
    assert [a.status_code for a in answers] == [404] * 3
    assert name not in json.dumps([a.get_data(as_text=True) for a in answers])
    storage = app.extensions["moderation.screening"].limiter.storage
    assert max((len(key) for key in storage.events), default=0) < 200


def test_the_report_form_holds_no_write_lock_while_it_checks_and_renders(tmp_path: Path) -> None:
    """Invalid reports are not rate-limited (nothing is counted): on SQLite, whose write lock is
    one for every process, a flood of them must not hold that lock while each is looked up and
    its page rendered, or every submission and decision waits behind them."""
    path = tmp_path / "reports.db"
    engine = make_engine(f"sqlite:///{path}")
    schema.upgrade(engine)
    with Session(engine) as session:
        make_site(session)
        moderator = make_moderator(session)
        app = create_app(settings_for_tests(), engine=engine)
        client = app.test_client()
        comment_id = published(client, session, moderator)
    lock_free: list[bool] = []

    def probe(*_: Any, **__: Any) -> None:
        other = sqlite3.connect(path, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.rollback()
            lock_free.append(True)
        except sqlite3.OperationalError:
            lock_free.append(False)
        finally:
            other.close()

    with template_rendered.connected_to(probe, app):
        for lang in ("en", "cy"):
            answer = client.post(
                f"/embed/luac/comments/{comment_id}/report?lang={lang}",
                data={"detail": "no reason"},
            )
            assert answer.status_code == 422
        sent = client.post(f"/embed/luac/comments/{comment_id}/report", data={"reason": "spam"})
    assert sent.status_code == 303
    assert lock_free == [True, True]
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Report)) == 1
    engine.dispose()


def test_a_report_is_no_way_to_unpin_a_comment(
    client: FlaskClient, session: Session, moderator: Moderator
) -> None:
    """One reader's personal-data report takes a pinned comment down, which unpins it; a
    dismissal used to republish it unpinned, so any reader could unpin the blog team's picks.
    It is pinned again where it was, unless the post has its pins already."""
    actor = Actor(moderator.login, moderator.id)
    auth = {"Authorization": f"Bearer {make_token(session, moderator)}"}
    ids = [published(client, session, moderator) for _ in range(4)]
    pin_comment(session, moderator, ids[0], actor=actor, now=utcnow())
    session.commit()
    pinned_at = stored(session, ids[0]).pinned_at
    assert pinned_at is not None

    report(client, ids[0], reason="personal_data")
    assert stored(session, ids[0]).status is CommentStatus.PENDING
    assert stored(session, ids[0]).pinned_at is None
    dismissed = client.post(f"/api/v1/moderation/comments/{ids[0]}/dismiss-reports", headers=auth)
    assert dismissed.status_code == 200
    again = stored(session, ids[0])
    assert again.status is CommentStatus.APPROVED and again.pinned_at == pinned_at
    assert json_of(client.get(LISTING))["comments"][0]["id"] == ids[0]  # first, as before

    # Taken down again; meanwhile the post got its three pins: dismissed, it stays unpinned.
    report(client, ids[0], "203.0.113.9", reason="personal_data")
    for other in ids[1:]:
        pin_comment(session, moderator, other, actor=actor, now=utcnow())
    session.commit()
    client.post(f"/api/v1/moderation/comments/{ids[0]}/dismiss-reports", headers=auth)
    again = stored(session, ids[0])
    assert again.status is CommentStatus.APPROVED and again.pinned_at is None
