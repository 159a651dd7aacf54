"""Personal data: export, erasure leaving no trace of the address, and retention on a clock."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from moderation import schema, verification
from moderation.db import make_engine
from moderation.events import Actor
from moderation.models import (
    AuditEvent,
    Base,
    Comment,
    CommentStatus,
    DeliveryStatus,
    Event,
    MaintenanceRun,
    Moderator,
    Post,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from moderation.outbox import webhooks as wd
from moderation.outbox.worker import run_worker
from moderation.personal_data import (
    ERASED_NAME,
    Retention,
    erase_personal_data,
    export_personal_data,
    purge_expired,
    purge_if_due,
)
from moderation.sites import create_site
from moderation.webhooks.endpoints import create_endpoint
from tests.consumer import running_consumer
from tests.helpers import (
    POST_KEY,
    comment_json,
    csrf_from,
    json_of,
    login,
    make_moderator,
    make_site,
    make_token,
    session_factory,
    settings_for_tests,
    webhook_settings,
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


def old_spam(session: Session, body: str, *, days: int = 91) -> None:
    site = session.scalars(select(Post)).first()
    assert site is not None
    session.add(
        Comment(
            post=site,
            author_name="Spammer",
            author_email="spam@example.com",
            body_text=body,
            body_html=f"<p>{body}</p>",
            status=CommentStatus.SPAM,
            submitted_at=NOW - dt.timedelta(days=days),
            moderated_at=NOW - dt.timedelta(days=days),
        )
    )
    session.commit()


def bodies(session: Session) -> set[str]:
    session.expire_all()
    return set(session.scalars(select(Comment.body_text)))


def test_a_purge_is_audited_once_with_its_counts_and_the_audit_outlives_the_comments(
    client: FlaskClient, session: Session
) -> None:
    """A retention purge left no audit row, and the audit rows of the comments it deleted lost
    their comment (a blank comment id in the CSV)."""
    make_site(session)
    auth = {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}
    ids = [
        json_of(client.post("/api/v1/sites/luac/comments", json=comment_json(body=f"Old {n}")))[
            "id"
        ]
        for n in range(3)
    ]
    for public_id in ids:
        client.post(f"/api/v1/moderation/comments/{public_id}/reject", headers=auth)
    session.expire_all()
    for comment in session.scalars(select(Comment)):
        comment.moderated_at = NOW - dt.timedelta(days=91)
        comment.submitted_at = NOW - dt.timedelta(days=91)
    session.commit()

    purge_expired(session, Retention(30, 90), now=NOW, dry_run=True)
    purge_expired(session, Retention(30, 90), now=NOW)
    session.commit()
    session.expire_all()
    assert session.scalars(select(Comment)).all() == []
    rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    rejects = [r for r in rows if r.action == "reject"]
    assert [(r.comment_id, r.comment_public_id, r.post_key) for r in rejects] == [
        (None, public_id, POST_KEY) for public_id in ids
    ]
    [purge] = [r for r in rows if r.action == "retention.purge"]  # one for the batch
    assert purge.actor == "automatic (retention)" and purge.site_id is None
    assert purge.after["comments_deleted"] == 3 and purge.after["client_data_cleared"] == 3
    assert purge.after["retention_days"]["rejected_days"] == 90

    purge_expired(session, Retention(30, 90), now=NOW + dt.timedelta(days=1))  # nothing left
    session.commit()
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == len(rows)

    login(client)
    csv_text = client.get("/moderate/audit?format=csv").get_data(as_text=True)
    for public_id in ids:
        assert f",{public_id}," in csv_text
    assert csv_text.count(POST_KEY) == 3
    page = client.get("/moderate/audit").get_data(as_text=True)
    assert f"comment {ids[0]} on {POST_KEY} (since deleted)" in page
    assert "Purged data past its retention period" in page


def test_the_purge_prunes_old_events_once_every_endpoint_has_had_them(session: Session) -> None:
    """The outbox's events (and their delivery log) went on for ever; now they go with decided
    comments' retention, except one a delivery still retries."""
    site = make_site(session)
    endpoint = WebhookEndpoint(url="https://hooks.example.com/", secret="whsec_x")
    session.add(endpoint)
    old = NOW - dt.timedelta(days=91)

    def event(created: dt.datetime, dispatched: bool, delivery: DeliveryStatus | None) -> int:
        row = Event(
            type="comment.approved", site_id=site.id, payload={}, created_at=created,
            dispatched_at=created if dispatched else None,
        )  # fmt: skip
        session.add(row)
        session.flush()
        if delivery is not None:
            session.add(WebhookDelivery(endpoint=endpoint, event_id=row.id, status=delivery))
        return row.id

    gone = event(old, True, DeliveryStatus.SUCCEEDED)
    given_up = event(old, True, DeliveryStatus.FAILED)
    kept = {
        event(old, True, DeliveryStatus.PENDING),  # still retried
        event(old, False, None),  # not yet fanned out
        event(NOW - dt.timedelta(days=89), True, DeliveryStatus.SUCCEEDED),  # recent
    }
    session.commit()

    assert purge_expired(session, Retention(30, 90), now=NOW, dry_run=True).events_deleted == 2
    assert session.scalar(select(func.count()).select_from(Event)) == 5
    report = purge_expired(session, Retention(30, 90), now=NOW)
    session.commit()
    assert report.events_deleted == 2
    assert set(session.scalars(select(Event.id))) == kept
    assert gone not in kept and given_up not in kept
    # Their delivery log went with them; the retried delivery stays.
    assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 2
    [purge] = session.scalars(select(AuditEvent).where(AuditEvent.action == "retention.purge"))
    assert purge.after["events_deleted"] == 2


def test_the_worker_purges_once_a_day_on_an_injected_clock(
    client: FlaskClient, session: Session, connection: Connection
) -> None:
    make_site(session)
    client.post("/api/v1/sites/luac/comments", json=comment_json(body="kept"))
    old_spam(session, "first old spam")
    settings = settings_for_tests(retention_rejected_days=90)
    worker_a, worker_b = session_factory(connection), session_factory(connection)

    # Due (never ran): the worker loop's first round purges.
    stop = threading.Event()

    def clock() -> dt.datetime:
        stop.set()  # one round only
        return NOW

    run_worker(worker_a, settings, stop, clock=clock)
    assert bodies(session) == {"kept"}

    # Not due: later the same day, in this worker or another, nothing runs.
    old_spam(session, "second old spam")
    assert purge_if_due(worker_a, settings, NOW + dt.timedelta(hours=11)) is None
    assert purge_if_due(worker_b, settings, NOW + dt.timedelta(hours=11, minutes=59)) is None
    assert bodies(session) == {"kept", "second old spam"}

    # The next day: once again, by whichever worker comes first.
    report = purge_if_due(worker_b, settings, NOW + dt.timedelta(days=1))
    assert report is not None and report.comments_deleted == 1
    assert purge_if_due(worker_a, settings, NOW + dt.timedelta(days=1, hours=1)) is None
    assert bodies(session) == {"kept"}
    runs = session.scalars(select(MaintenanceRun.day).order_by(MaintenanceRun.day)).all()
    assert runs == [NOW.date(), NOW.date() + dt.timedelta(days=1)]


@pytest.mark.concurrency
def test_two_workers_at_the_same_moment_purge_once(tmp_path: Path) -> None:
    """Two threads with their own connections race for the day; one wins, the other does
    nothing (on a database of its own: the race needs committed transactions)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'race.db'}")
    schema.upgrade(engine)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        create_site(session, slug="luac", name="Blog", origins=["https://blog.example"])
        session.commit()
    settings = settings_for_tests()
    start = threading.Barrier(2)
    reports: list[object] = []

    def worker() -> None:
        start.wait()
        reports.append(purge_if_due(factory, settings, NOW))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(reports) == 2 and sum(r is not None for r in reports) == 1
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(MaintenanceRun)) == 1
    engine.dispose()


def test_after_erasure_no_trace_of_the_address_remains_in_tables_outbox_or_logs(
    client: FlaskClient, session: Session, connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole life of an address: submitted through the API and the no-JS form, moderated
    in the UI and the API, delivered to webhooks (one opted in to personal data, whose consumer
    echoes what it gets), exported, erased; then every column of every table, the outbox and
    every log record are searched."""
    caplog.set_level(logging.DEBUG)
    ids = seed(client, session)
    auth = {
        "Authorization": f"Bearer {make_token(session, session.scalars(select(Moderator)).one())}"
    }
    secrets = (ADDRESS.lower(), ADDRESS.split("@")[0].lower(), "erin private", "203.0.113")
    with running_consumer(default="echo") as personal, running_consumer() as plain:
        # Events wait undispatched in the outbox until a worker fans them out to the endpoints.
        create_endpoint(
            session,
            actor=Actor("test"),
            url=personal.url,
            allow_http=True,
            now=NOW,
            include_personal_data=True,
        )
        create_endpoint(session, actor=Actor("test"), url=plain.url, allow_http=True, now=NOW)
        session.commit()
        form = {**comment_json(author_email=ADDRESS, author_name="Erin Private"), "body": "Form"}
        posted = client.post(
            f"/embed/luac/thread?post={POST_KEY}",
            data=form,
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
        )
        assert posted.status_code == 303
        login(client)
        page = client.get("/moderate/").get_data(as_text=True)
        client.post(f"/moderate/comments/{ids[1]}/reject", data={"csrf_token": csrf_from(page)})
        client.post(
            f"/api/v1/moderation/comments/{ids[0]}/reply", json={"body": "Thanks"}, headers=auth
        )
        client.get(f"/moderate/?q={ADDRESS}")
        deliver = webhook_settings()
        while wd.deliver_due(session_factory(connection), deliver, now=NOW, limit=100):
            pass
        assert any(ADDRESS.lower() in r.body.decode().lower() for r in personal.received)
        assert ADDRESS.lower() in everything_stored(session).lower()

        admin = client.get("/moderate/admin/personal-data").get_data(as_text=True)
        exported = client.post(
            "/moderate/admin/personal-data",
            data={"csrf_token": csrf_from(admin), "email": ADDRESS, "action": "export"},
        )
        assert len(json.loads(exported.get_data(as_text=True))["comments"]) == 3
        erased = client.post(
            "/moderate/admin/personal-data",
            data={
                "csrf_token": csrf_from(admin),
                "email": ADDRESS,
                "action": "erase",
                "confirm": "1",
            },
        )
        assert erased.status_code == 303
        while wd.deliver_due(session_factory(connection), deliver, now=NOW, limit=100):
            pass
        assert any(r.payload["type"] == "comment.erased" for r in personal.received)

    stored = everything_stored(session).lower()
    logged = "\n".join(
        [caplog.text, *(f"{r.getMessage()} {r.args!r} {r.exc_text}" for r in caplog.records)]
    ).lower()
    for secret in secrets:
        assert secret not in stored, secret
        assert secret not in logged, secret
    assert session.scalar(select(func.count()).select_from(Comment)) == 5
    assert (session.scalar(select(func.count()).select_from(WebhookAttempt)) or 0) > 0


def test_addresses_with_non_ascii_capitals_are_found_on_every_database(
    client: FlaskClient, session: Session
) -> None:
    """SQLite's lower() folds ASCII only: matching is on the stored casefolded key instead."""
    site = make_site(session)
    response = client.post(
        "/api/v1/sites/luac/comments",
        json=comment_json(author_email="Ärger@Example.com", body="Grumble"),
    )
    assert response.status_code == 202
    document = export_personal_data(session, "ärger@example.com", now=NOW)
    assert [c["body_text"] for c in document["comments"]] == ["Grumble"]
    comment = session.scalars(select(Comment).where(Comment.body_text == "Grumble")).one()
    comment.status = CommentStatus.APPROVED
    session.flush()
    assert verification.has_approved(session, site, "ÄRGER@example.com")
    erased = erase_personal_data(session, "ÄRGER@EXAMPLE.COM", actor=Actor("dpo"), now=NOW)
    assert erased.comments == 1
    assert not verification.has_approved(session, site, "ärger@example.com")


def test_a_moderators_redaction_really_forgets(client: FlaskClient, session: Session) -> None:
    """A comment held for a phone number, edited to remove it and approved: the number is in
    no original, audit or outbox payload; the payloads of the held comment carry no text; the
    retention run clears the original."""
    make_site(session)
    auth = {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}
    number = "07700 900123"
    sent = client.post(
        "/api/v1/sites/luac/comments",
        json=comment_json(body=f"Ring me on {number} about the bus station plans."),
    )
    comment_id = json_of(sent)["id"]
    submitted = session.scalars(select(Event).where(Event.type == "comment.submitted")).one()
    assert submitted.payload["data"]["body_text"] is None
    assert submitted.payload["data"]["text_withheld"] is True
    edit = client.post(
        f"/api/v1/moderation/comments/{comment_id}/edit",
        json={"body": "Ring me about the bus station plans."},
        headers=auth,
    )
    assert edit.status_code == 200
    approved = client.post(f"/api/v1/moderation/comments/{comment_id}/approve", headers=auth)
    assert approved.status_code == 200
    shown = json_of(client.get(f"/api/v1/moderation/comments/{comment_id}", headers=auth))
    assert (
        shown["original_text"] == "Ring me on [phone number removed] about the bus station plans."
    )
    stored = "\n".join(
        json.dumps([str(value) for value in row])
        for table in (Comment, Event, AuditEvent)
        for row in session.execute(select(table.__table__))
    )
    assert number not in stored and "900123" not in stored
    last = session.scalars(select(Event).where(Event.type == "comment.approved")).one()
    assert last.payload["data"]["body_text"] == "Ring me about the bus station plans."
    report = purge_expired(session, Retention(), now=utcnow() + dt.timedelta(days=31))
    assert report.originals_cleared == 1
    comment = session.scalars(select(Comment).where(Comment.public_id == comment_id)).one()
    session.refresh(comment)
    assert comment.original_text is None
