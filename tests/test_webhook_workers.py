"""Two `moderation worker` processes on PostgreSQL, one SIGKILLed again and again mid-delivery.

Every event must be delivered at least once, duplicates carry the same webhook-id, and no event
reaches the consumer before the transaction that recorded it has committed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from moderation.events import Actor
from moderation.models import DeliveryStatus, Event, WebhookDelivery
from moderation.webhooks.endpoints import create_endpoint
from tests.consumer import running_consumer
from tests.helpers import TEST_SECRET, make_site

pytestmark = [pytest.mark.postgres_only, pytest.mark.concurrency]

# The worker processes also run the daily purge on the real clock: its maintenance_runs row
# would otherwise outlive the test and surprise a later one that counts the runs.
TABLES = "webhook_attempts, webhook_deliveries, webhook_endpoints, events, sites, maintenance_runs"
EVENTS = 30


@pytest.fixture
def pg_engine(engine: Engine) -> Iterator[Engine]:
    if engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL (SKIP LOCKED between processes)")
    yield engine
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))


def start_worker(url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MODERATION_ENV": "testing",
        "MODERATION_SECRET_KEY": TEST_SECRET,
        "MODERATION_DATABASE_URL": url,
        "MODERATION_WEBHOOK_ALLOW_HTTP": "true",
        "MODERATION_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "MODERATION_WEBHOOK_TIMEOUT": "2",
        "MODERATION_WEBHOOK_CONNECT_TIMEOUT": "1",
        "MODERATION_WEBHOOK_LEASE_SECONDS": "3",
        "MODERATION_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from moderation.cli import main; main()",
            "worker",
            "--interval",
            "0.05",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_killed_worker_loses_no_event_and_nothing_is_sent_before_commit(
    pg_engine: Engine,
) -> None:
    url = os.environ["MODERATION_TEST_DATABASE_URL"]
    early: list[str] = []

    with running_consumer() as consumer:
        original = consumer.verify

        def verify_and_check_commit(headers: dict[str, str], body: bytes) -> list[int]:
            with pg_engine.connect() as connection:
                found = connection.scalar(
                    select(Event.id).where(Event.public_id == headers["webhook-id"])
                )
            if found is None:
                early.append(headers["webhook-id"])
            time.sleep(0.15)  # a slow consumer, so that kills land mid-delivery
            return original(headers, body)

        consumer.verify = verify_and_check_commit  # type: ignore[method-assign]
        with Session(pg_engine) as session:
            site = make_site(session)
            endpoint = create_endpoint(
                session, actor=Actor("test"), url=consumer.url, allow_http=True, now=site.created_at
            )
            session.commit()
            consumer.secrets = [endpoint.secret]
            site_id = site.id

        workers = [start_worker(url), start_worker(url)]
        produced: list[str] = []

        def produce() -> None:
            for n in range(EVENTS):
                with Session(pg_engine) as session:
                    event = Event(type="comment.submitted", site_id=site_id, payload={"n": n})
                    session.add(event)
                    session.flush()
                    produced.append(event.public_id)
                    time.sleep(0.1)  # the event exists, uncommitted, for a while
                    session.commit()

        producer = threading.Thread(target=produce)
        producer.start()
        rng = random.Random(5)
        kills = 0
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(rng.uniform(0.3, 0.9))
                if kills < 6:
                    workers[0].send_signal(signal.SIGKILL)
                    workers[0].wait(5)
                    kills += 1
                    workers[0] = start_worker(url)
                with Session(pg_engine) as session:
                    done = session.scalars(
                        select(WebhookDelivery.id).where(
                            WebhookDelivery.status == DeliveryStatus.SUCCEEDED
                        )
                    ).all()
                if not producer.is_alive() and len(done) == EVENTS:
                    break
        finally:
            producer.join(30)
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(10)
                except subprocess.TimeoutExpired:
                    worker.kill()

        received = list(consumer.received)

    assert kills == 6
    assert len(received) >= EVENTS
    assert early == []
    ids = [r.headers["webhook-id"] for r in received]
    assert set(ids) == set(produced), "every event delivered at least once"
    assert all(r.verified_with == [0] for r in received)
    by_id: dict[str, set[bytes]] = {}
    for r in received:
        by_id.setdefault(r.headers["webhook-id"], set()).add(r.body)
    assert all(len(bodies) == 1 for bodies in by_id.values()), "a duplicate is the same message"
