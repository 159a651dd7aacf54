"""Webhooks against a real consumer on loopback, on an injected clock."""

from __future__ import annotations

import datetime as dt
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from moderation import schema
from moderation.actions import edit_comment, moderate_comment
from moderation.config import Settings
from moderation.db import make_engine
from moderation.events import Actor
from moderation.models import (
    DeliveryStatus,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from moderation.outbox import webhooks as wd
from moderation.outbox.worker import run_worker
from moderation.personal_data import erase_personal_data
from moderation.webhooks import network, signing
from moderation.webhooks.endpoints import create_endpoint, rotate_secret, send_test_event
from tests.consumer import Consumer, running_consumer
from tests.helpers import comment_json, make_moderator, make_site, webhook_settings

ROOT = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def factory(connection: Connection) -> sessionmaker[Session]:
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def consumer() -> Iterator[Consumer]:
    with running_consumer() as running:
        yield running


def add_endpoint(session: Session, url: str, **kwargs: object) -> WebhookEndpoint:
    endpoint = create_endpoint(
        session,
        actor=Actor("test"),
        url=url,
        allow_http=True,
        now=T0,
        **kwargs,  # type: ignore[arg-type]
    )
    session.commit()
    return endpoint


def submit(client: FlaskClient, **overrides: str) -> str:
    response = client.post("/api/v1/sites/luac/comments", json=comment_json(**overrides))
    assert response.status_code == 202, response.get_data(as_text=True)
    comment_id: str = response.get_json()["id"]
    return comment_id


def run(factory: sessionmaker[Session], now: dt.datetime, settings: Settings | None = None) -> int:
    return wd.deliver_due(
        factory, settings or webhook_settings(), now=now, owner="test", rng=random.Random(1)
    )


def only_delivery(session: Session) -> WebhookDelivery:
    session.expire_all()
    return session.scalars(select(WebhookDelivery)).one()


def test_a_submission_is_delivered_signed_and_without_the_email(
    client: FlaskClient, session: Session, factory: sessionmaker[Session], consumer: Consumer
) -> None:
    make_site(session)
    endpoint = add_endpoint(session, consumer.url)
    consumer.secrets = [endpoint.secret]
    comment_id = submit(client)

    assert run(factory, T0) == 1

    [got] = consumer.received
    assert got.verified_with == [0]
    event = session.scalars(select(Event)).one()
    assert got.headers["webhook-id"] == event.public_id
    assert got.headers["content-type"] == "application/json"
    assert got.payload["type"] == "comment.submitted"
    assert got.payload["data"]["id"] == comment_id
    assert "ada@example.com" not in got.body.decode() and "author_email" not in got.payload["data"]
    delivery = only_delivery(session)
    assert delivery.status is DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    attempt = session.scalars(select(WebhookAttempt)).one()
    assert attempt.status_code == 200 and attempt.error is None
    assert len(attempt.response_excerpt) == network.RESPONSE_CAP_BYTES
    assert run(factory, T0 + dt.timedelta(hours=1)) == 0


def test_personal_data_only_for_endpoints_that_opt_in(
    client: FlaskClient, session: Session, factory: sessionmaker[Session]
) -> None:
    make_site(session)
    with running_consumer() as plain, running_consumer() as personal:
        add_endpoint(session, plain.url)
        add_endpoint(session, personal.url, include_personal_data=True)
        submit(client)
        assert run(factory, T0) == 2
        assert "author_email" not in plain.received[0].payload["data"]
        assert personal.received[0].payload["data"]["author_email"] == "ada@example.com"


def test_subscriptions_filter_by_event_type_and_site(
    client: FlaskClient, session: Session, factory: sessionmaker[Session], consumer: Consumer
) -> None:
    make_site(session)
    make_site(session, "other", "https://other.example.org")
    add_endpoint(session, consumer.url, event_types=["comment.approved"])
    add_endpoint(session, consumer.url, site_slug="other")
    submit(client)
    assert run(factory, T0) == 0
    assert session.scalars(select(WebhookDelivery)).all() == []
    assert session.scalars(select(Event)).one().dispatched_at == T0


def test_tampered_body_id_or_timestamp_fail_verification(
    client: FlaskClient, session: Session, factory: sessionmaker[Session], consumer: Consumer
) -> None:
    make_site(session)
    endpoint = add_endpoint(session, consumer.url)
    submit(client)
    run(factory, T0)
    [got] = consumer.received
    hook = Webhook(endpoint.secret)
    hook.verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        hook.verify(got.body.replace(b"Ada", b"Eve"), got.headers)
    with pytest.raises(WebhookVerificationError):
        hook.verify(got.body, {**got.headers, "webhook-id": "msg_other"})
    later = str(int(got.headers["webhook-timestamp"]) + 1)
    with pytest.raises(WebhookVerificationError):
        hook.verify(got.body, {**got.headers, "webhook-timestamp": later})
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify(got.body, got.headers)


def test_signatures_match_the_reference_library() -> None:
    secret = signing.generate_secret(24)
    assert 24 <= len(signing.secret_key(secret)) <= 64
    reference = Webhook(secret).sign("msg_1", dt.datetime.fromtimestamp(1700000000, dt.UTC), "{}")
    assert signing.sign(secret, "msg_1", 1700000000, b"{}") == reference
    with pytest.raises(ValueError):
        signing.generate_secret(16)


def test_rotation_signs_with_both_secrets_during_the_overlap(
    client: FlaskClient, session: Session, factory: sessionmaker[Session], consumer: Consumer
) -> None:
    make_site(session)
    endpoint = add_endpoint(session, consumer.url)
    old = endpoint.secret
    new = rotate_secret(
        session, endpoint, actor=Actor("test"), overlap=dt.timedelta(hours=24), now=T0
    )
    session.commit()
    consumer.secrets = [old, new]
    submit(client)
    run(factory, T0 + dt.timedelta(hours=1))
    assert consumer.received[0].verified_with == [0, 1]
    assert len(consumer.received[0].headers["webhook-signature"].split(" ")) == 2

    send_test_event(session, endpoint, now=T0 + dt.timedelta(hours=25))
    session.commit()
    run(factory, T0 + dt.timedelta(hours=25))
    assert consumer.received[1].verified_with == [1]
    assert consumer.received[1].payload["type"] == "webhook.test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_consumer_down_then_up_is_delivered(
    client: FlaskClient, session: Session, factory: sessionmaker[Session]
) -> None:
    make_site(session)
    port = free_port()
    add_endpoint(session, f"http://127.0.0.1:{port}/hooks")
    submit(client)

    assert run(factory, T0) == 1
    delivery = only_delivery(session)
    assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.last_error == "connection refused"
    wait = delivery.next_attempt_at - T0
    assert dt.timedelta(seconds=4) <= wait <= dt.timedelta(seconds=6)
    assert run(factory, T0 + dt.timedelta(seconds=2)) == 0

    with running_consumer(port=port) as consumer:
        assert run(factory, T0 + dt.timedelta(seconds=7)) == 1
        assert len(consumer.received) == 1
    delivery = only_delivery(session)
    assert delivery.status is DeliveryStatus.SUCCEEDED and delivery.attempts == 2


def test_500_is_retried_on_the_backoff_schedule_then_failed(
    client: FlaskClient, session: Session, factory: sessionmaker[Session], consumer: Consumer
) -> None:
    consumer.default = "500"
    make_site(session)
    endpoint = add_endpoint(session, consumer.url)
    submit(client)
    now = T0
    waits = []
    for _ in range(wd.MAX_ATTEMPTS):
        assert run(factory, now) == 1
        delivery = only_delivery(session)
        if delivery.status is DeliveryStatus.PENDING:
            waits.append(delivery.next_attempt_at - now)
            now = delivery.next_attempt_at
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.attempts == wd.MAX_ATTEMPTS == 8
    assert delivery.last_status_code == 500 and delivery.last_error == "HTTP 500"
    for waited, planned in zip(waits, wd.RETRY_SCHEDULE, strict=True):
        assert planned * 0.8 <= waited <= planned * 1.2
    assert {r.headers["webhook-id"] for r in consumer.received} == {delivery.event.public_id}
    assert len(consumer.received) == 8
    session.refresh(endpoint)
    # About 28 hours of failures stay under the default 120 h: the endpoint stays enabled.
    assert endpoint.enabled and endpoint.failing_since == T0


def test_503_with_retry_after_is_honoured(
    client: FlaskClient, session: Session, factory: sessionmaker[Session], consumer: Consumer
) -> None:
    consumer.script = ["503:120", "429:7"]
    make_site(session)
    add_endpoint(session, consumer.url)
    submit(client)
    run(factory, T0)
    delivery = only_delivery(session)
    assert delivery.next_attempt_at == T0 + dt.timedelta(seconds=120)
    assert delivery.last_error == "HTTP 503"
    assert run(factory, T0 + dt.timedelta(seconds=119)) == 0
    run(factory, T0 + dt.timedelta(seconds=120))
    assert only_delivery(session).next_attempt_at == T0 + dt.timedelta(seconds=127)
    run(factory, T0 + dt.timedelta(seconds=127))
    assert only_delivery(session).status is DeliveryStatus.SUCCEEDED


def test_a_redirect_is_a_failure_and_is_not_followed(
    client: FlaskClient, session: Session, factory: sessionmaker[Session], consumer: Consumer
) -> None:
    make_site(session)
    with running_consumer() as canary:
        consumer.script = [f"301:{canary.url}"]
        add_endpoint(session, consumer.url)
        submit(client)
        run(factory, T0)
        assert canary.connections == 0
    delivery = only_delivery(session)
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.last_status_code == 301
    assert delivery.last_error == "redirect (301) not followed"


def test_410_fails_the_delivery_and_disables_the_endpoint(
    client: FlaskClient, session: Session, factory: sessionmaker[Session], consumer: Consumer
) -> None:
    consumer.default = "410"
    make_site(session)
    endpoint = add_endpoint(session, consumer.url)
    submit(client)
    submit(client, body="A second comment.")
    # Both are claimed; the first 410 disables the endpoint, so the second is not attempted.
    assert run(factory, T0) == 1
    session.expire_all()
    assert not endpoint.enabled and endpoint.disabled_reason == "the consumer answered 410 Gone"
    statuses = sorted(d.status.value for d in session.scalars(select(WebhookDelivery)))
    assert statuses == ["failed", "pending"]
    assert run(factory, T0 + dt.timedelta(days=1)) == 0


def test_a_hanging_consumer_times_out(
    client: FlaskClient, session: Session, factory: sessionmaker[Session], consumer: Consumer
) -> None:
    consumer.script = ["hang"]
    make_site(session)
    add_endpoint(session, consumer.url)
    submit(client)
    run(factory, T0, webhook_settings(webhook_timeout=0.5, webhook_connect_timeout=0.5))
    delivery = only_delivery(session)
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.last_error is not None and delivery.last_error.startswith("timed out")
    attempt = session.scalars(select(WebhookAttempt)).one()
    assert 400 <= attempt.duration_ms < 3000
    consumer.release.set()
    run(factory, delivery.next_attempt_at)
    assert only_delivery(session).status is DeliveryStatus.SUCCEEDED


def test_a_reset_connection_is_retried(
    client: FlaskClient, session: Session, factory: sessionmaker[Session], consumer: Consumer
) -> None:
    consumer.script = ["reset"]
    make_site(session)
    add_endpoint(session, consumer.url)
    submit(client)
    run(factory, T0)
    delivery = only_delivery(session)
    assert delivery.status is DeliveryStatus.PENDING and delivery.last_status_code is None
    assert delivery.last_error is not None
    assert "reset" in delivery.last_error or "Disconnected" in delivery.last_error
    run(factory, delivery.next_attempt_at)
    assert only_delivery(session).status is DeliveryStatus.SUCCEEDED


def test_an_endpoint_failing_for_the_configured_period_is_disabled(
    client: FlaskClient,
    session: Session,
    factory: sessionmaker[Session],
    consumer: Consumer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer.default = "500"
    make_site(session)
    endpoint = add_endpoint(session, consumer.url)
    submit(client)
    monkeypatch.setattr(wd, "DISABLE_AFTER", dt.timedelta(hours=1))
    settings = webhook_settings()
    run(factory, T0, settings)
    send_test_event(session, endpoint, now=T0 + dt.timedelta(hours=2))
    session.commit()
    now = T0 + dt.timedelta(hours=2)
    run(factory, now, settings)
    session.expire_all()
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "no successful delivery since 2026-11-29 12:00 UTC"


def test_an_expired_lease_is_taken_over(
    client: FlaskClient, session: Session, factory: sessionmaker[Session]
) -> None:
    make_site(session)
    add_endpoint(session, "http://127.0.0.1:9/")
    submit(client)
    lease = dt.timedelta(seconds=30)
    with factory() as s:
        wd.dispatch_events(s, now=T0)
        assert len(wd.claim_due(s, "a", now=T0, lease=lease)) == 1
        s.commit()
    with factory() as s:
        assert wd.claim_due(s, "b", now=T0 + dt.timedelta(seconds=10), lease=lease) == []
        assert len(wd.claim_due(s, "b", now=T0 + dt.timedelta(seconds=31), lease=lease)) == 1
        s.commit()
    assert only_delivery(session).lease_owner == "b"


def test_the_in_process_worker_thread_delivers_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'embedded.db'}")
    schema.upgrade(engine)
    factory = sessionmaker(engine, expire_on_commit=False)
    stop = threading.Event()
    with running_consumer() as consumer:
        with factory() as session:
            moment = dt.datetime.now(dt.UTC)
            endpoint = create_endpoint(
                session, actor=Actor("test"), url=consumer.url, allow_http=True, now=moment
            )
            send_test_event(session, endpoint, now=moment)
            session.commit()
            consumer.secrets = [endpoint.secret]
        thread = threading.Thread(
            target=run_worker,
            args=(factory, webhook_settings(), stop),
            kwargs={"interval": 0.05},
        )
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not consumer.received and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            stop.set()
            thread.join(10)
    assert not thread.is_alive()
    assert [r.verified_with for r in consumer.received] == [[0]]
    engine.dispose()


def test_every_event_type_matches_the_published_payload_schema(
    client: FlaskClient, session: Session, factory: sessionmaker[Session]
) -> None:
    """docs/webhook-payload.schema.json is what consumers build against: every payload fits it,
    with and without personal data."""
    published = json.loads((ROOT / "docs" / "webhook-payload.schema.json").read_text())
    validator = Draft202012Validator(published, format_checker=Draft202012Validator.FORMAT_CHECKER)
    make_site(session)
    moderator = make_moderator(session)
    actor = Actor("editor", moderator.id)
    with running_consumer() as plain, running_consumer() as personal:
        add_endpoint(session, plain.url)
        add_endpoint(session, personal.url, include_personal_data=True)
        first, second, third = (submit(client, body=f"Comment {n} on this post") for n in range(3))
        for public_id, action in ((first, "approve"), (second, "reject"), (third, "spam")):
            moderate_comment(session, moderator, public_id, action, actor=actor, now=T0)
        session.commit()
        reply = submit(client, body="A reply to the first", parent_id=first)
        edit_comment(session, moderator, first, "Edited by the blog team", actor=actor, now=T0)
        moderate_comment(session, moderator, reply, "delete", actor=actor, now=T0)
        moderate_comment(session, moderator, reply, "restore", actor=actor, now=T0)
        erase_personal_data(session, "ada@example.com", actor=actor, now=T0)
        session.commit()
        while run(factory, T0):
            pass
        received = plain.received + personal.received
    types = {got.payload["type"] for got in received}
    assert types >= {
        "comment.submitted", "comment.approved", "comment.rejected", "comment.spam",
        "comment.edited", "comment.deleted", "comment.restored", "comment.erased",
    }  # fmt: skip
    for got in received:
        errors = [m.message for e in validator.iter_errors(got.payload) for m in e.context or [e]]
        assert errors == [], (got.payload["type"], errors)
    assert any("author_email" in got.payload["data"] for got in personal.received)


def test_slack_and_teams_endpoints_get_one_line_and_a_link_to_the_queue(
    client: FlaskClient, session: Session, factory: sessionmaker[Session]
) -> None:
    """Their incoming-webhook JSON, through the same outbox and retries; never the comment's
    text, its author or an email; a hostile post title makes no mention, link or markup."""
    make_site(session)
    settings = webhook_settings(public_url="https://comments.example.org/")
    with running_consumer() as slack, running_consumer() as teams:
        slack.script = ["500"]  # the first attempt fails and is retried like any delivery
        add_endpoint(session, slack.url, fmt="slack", public_url=settings.public_url)
        add_endpoint(session, teams.url, fmt="teams", public_url=settings.public_url)
        comment_id = submit(
            client,
            post_title="<!channel> [Win](https://evil.example) & more",
            body="See https://a.example and https://b.example and https://c.example today",
        )
        assert run(factory, T0, settings) == 2
        assert run(factory, T0 + dt.timedelta(seconds=10), settings) == 1
        link = f"https://comments.example.org/moderate/comments/{comment_id}"
        assert [r.payload for r in slack.received][-1] == {
            "text": "Blog luac: new comment held on “&lt;!channel&gt;"
            " [Win](https://evil.example) &amp; more” (sent without a form token; 3 links;"
            " this site allows 2)"
            f" <{link}|Open it in the queue>"
        }
        [card] = teams.received[0].payload["attachments"]
        assert teams.received[0].payload["type"] == "message"
        assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert card["content"]["body"] == [
            {
                "type": "TextBlock",
                "text": "Blog luac: new comment held on “<!channel>"
                " (Win)(https://evil.example) & more” (sent without a form token; 3 links;"
                " this site allows 2)",
                "wrap": True,
            }
        ]
        assert card["content"]["actions"] == [
            {"type": "Action.OpenUrl", "title": "Open it in the queue", "url": link}
        ]
        for received in [*slack.received, *teams.received]:
            raw = received.body.decode()
            assert "Lovelace" not in raw and "ada@example.com" not in raw and "today" not in raw

        # A decision is one line too.
        moderate_comment(
            session, make_moderator(session), comment_id, "approve",
            actor=Actor("editor"), now=T0,
        )  # fmt: skip
        session.commit()
        run(factory, T0 + dt.timedelta(minutes=1), settings)
        assert (
            slack.received[-1]
            .payload["text"]
            .startswith("Blog luac: comment approved on “&lt;!channel&gt;")
        )
    statuses = {d.status for d in session.scalars(select(WebhookDelivery))}
    assert statuses == {DeliveryStatus.SUCCEEDED}


def test_a_chat_endpoint_needs_the_public_address_and_refuses_personal_data(
    session: Session,
) -> None:
    from moderation.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as no_address:
        create_endpoint(
            session,
            actor=Actor("test"),
            url="https://hooks.slack.com/services/x",
            fmt="slack",
            now=T0,
        )
    assert "public address is not set up" in no_address.value.fields["format"]
    with pytest.raises(ValidationFailed) as personal:
        create_endpoint(
            session, actor=Actor("test"), url="https://hooks.slack.com/services/x", fmt="teams",
            public_url="https://c.example", include_personal_data=True, now=T0,
        )  # fmt: skip
    assert "include_personal_data" in personal.value.fields
    with pytest.raises(ValidationFailed) as unknown:
        create_endpoint(
            session, actor=Actor("test"), url="https://x.example/", fmt="discord", now=T0
        )
    assert unknown.value.fields == {"format": "Choose standard, slack or teams."}
